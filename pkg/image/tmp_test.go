package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

// interferingWriter runs another command on the store the first time the
// archive is written to, while save is in the middle of its work.
type interferingWriter struct {
	bytes.Buffer
	during func()
}

func (w *interferingWriter) Write(p []byte) (int, error) {
	if w.during != nil {
		w.during()
		w.during = nil
	}
	return w.Buffer.Write(p)
}

// TestSaveSurvivesOtherCommands: save --format oci-archive keeps its
// layout in tmp/ without the lock; a tag (which takes the lock) and an
// Open (which reclaims tmp/) by other commands meanwhile must not remove
// it. They did, in 2 of 6 runs, when the lock holder emptied tmp/.
func TestSaveSurvivesOtherCommands(t *testing.T) {
	s, img, ref := pulledStore(t)
	w := &interferingWriter{during: func() {
		other := openStoreAt(t, s.root) // reclaims dead work directories
		if err := other.Tag(context.Background(), ref, "other/command:1"); err != nil {
			t.Error(err)
		}
	}}
	if err := s.Save(w, []string{ref}, OCIArchive); err != nil {
		t.Fatalf("save with another command in the middle: %v", err)
	}
	if w.during != nil {
		t.Fatal("the other command never ran")
	}
	loaded := openStore(t)
	if _, err := loaded.Load(context.Background(), &w.Buffer); err != nil {
		t.Fatal(err)
	}
	if got, err := loaded.Get(ref); err != nil || got.ID != img.ID {
		t.Fatalf("the saved archive loads as %v, %v", got, err)
	}
}

// TestDeadOperationsAreReclaimed: what a dead operation left in tmp/ is
// removed by the next command that opens the store, however young it is;
// the work of a live process is kept, however old.
func TestDeadOperationsAreReclaimed(t *testing.T) {
	root := filepath.Join(t.TempDir(), "image")
	openStoreAt(t, root)
	tmp := filepath.Join(root, "tmp")

	// A process of ours, alive, then killed.
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() }) // by PID: our child
	sleeperStart, err := processStart(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	myStart, err := selfStart()
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{ // name -> kept
		fmt.Sprintf("%d.%d.pull.1", os.Getpid(), myStart):              true,  // this process: alive
		fmt.Sprintf("%d.%d.load.2", sleeper.Process.Pid, sleeperStart): true,  // alive until killed below
		fmt.Sprintf("%d.%d.pull.3", os.Getpid(), myStart+1):            false, // our PID, another start: a reused PID
		"layer-0123456789ab-42":                                        false, // names no owner: an older minictr's
	}
	for name := range dirs {
		if err := os.MkdirAll(filepath.Join(tmp, name, "rootfs"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name, "blob"), make([]byte, 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		for name, kept := range dirs {
			_, err := os.Stat(filepath.Join(tmp, name))
			if kept && err != nil {
				t.Errorf("%s: %s was removed: its owner lives", when, name)
			}
			if !kept && err == nil {
				t.Errorf("%s: %s was kept: its owner is dead", when, name)
			}
		}
	}
	openStoreAt(t, root)
	check("first open")

	sleeper.Process.Kill()
	sleeper.Wait()
	dirs[fmt.Sprintf("%d.%d.load.2", sleeper.Process.Pid, sleeperStart)] = false
	openStoreAt(t, root)
	check("open after the kill")
}

// TestFullDiskCanBeEmptied: on a full disk, rmi and image prune free what
// they remove; they used to fail writing index.json before freeing
// anything.
func TestFullDiskCanBeEmptied(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	host := startRegistry(t)
	pushTo(t, host+"/full/rmi:1", busyboxImage(t, "rmi"))
	pushTo(t, host+"/full/prune:1", busyboxImage(t, "old"))
	for _, verb := range []string{"rmi", "prune"} {
		t.Run(verb, func(t *testing.T) {
			dir := t.TempDir()
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
				t.Skipf("cannot mount a tmpfs: %v", err)
			}
			t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
			s := openStoreAt(t, filepath.Join(dir, "image"))
			ref := host + "/full/rmi:1"
			if verb == "prune" {
				ref = host + "/full/prune:1"
			}
			img, err := s.Pull(context.Background(), ref, PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if verb == "prune" {
				// The tag moves to a new image: the old one is dangling.
				pushTo(t, ref, busyboxImage(t, "new"))
				if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			fill(t, filepath.Join(dir, "filler"))
			if err := os.WriteFile(filepath.Join(dir, "probe"), []byte("x"), 0o600); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("the disk is not full: writing a byte gave %v", err)
			}
			switch verb {
			case "rmi":
				rm, err := s.Remove(context.Background(), ref, RemoveOptions{})
				if err != nil || len(rm.Deleted) != 1 {
					t.Fatalf("rmi on a full disk: %+v, %v", rm, err)
				}
				if _, err := s.Get(ref); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get after rmi: %v", err)
				}
				for _, d := range []string{"blobs/sha256", "layers"} {
					if entries, _ := os.ReadDir(filepath.Join(s.root, d)); len(entries) != 0 {
						t.Errorf("%s still holds %d entries", d, len(entries))
					}
				}
			case "prune":
				removed, _, err := s.Prune(context.Background(), PruneOptions{})
				if err != nil || len(removed) != 1 || removed[0] != img.ID {
					t.Fatalf("prune on a full disk: %v, %v; want %s", removed, err, img.ID)
				}
				got, err := s.Get(ref)
				if err != nil {
					t.Fatalf("the tagged image broke: %v", err)
				}
				if data, err := os.ReadFile(filepath.Join(got.Layers[0], "etc/marker")); err != nil || string(data) != "new" {
					t.Errorf("etc/marker = %q, %v", data, err)
				}
			}
			// And the disk has room again.
			if err := os.WriteFile(filepath.Join(dir, "probe"), []byte("x"), 0o600); err != nil {
				t.Errorf("still full after %s: %v", verb, err)
			}
		})
	}
}

// fill writes to path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = io.Copy(f, io.LimitReader(zeros{}, 1<<30))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v, want ENOSPC", err)
	}
	t.Logf("filled: %v", strings.TrimPrefix(err.Error(), "write "))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
