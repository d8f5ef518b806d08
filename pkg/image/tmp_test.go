package image

import (
	"bufio"
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
	"time"

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
// the work of a live process is kept, however old, and whatever its PID
// means here: the work directory's lock says.
func TestDeadOperationsAreReclaimed(t *testing.T) {
	root := filepath.Join(t.TempDir(), "image")
	s := openStoreAt(t, root)
	tmp := filepath.Join(root, "tmp")

	// Another process of ours works in the store, alive, then killed.
	worker := exec.Command(os.Args[0], "-test.run=^$")
	worker.Env = append(os.Environ(), "MINICTR_TEST_WORK="+root)
	worker.Stderr = os.Stderr
	out, err := worker.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { worker.Process.Kill(); worker.Wait() }) // by PID: our child
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the worker made no work directory: %v", err)
	}
	theirs := filepath.Base(strings.TrimSpace(line))
	mine, done, err := s.workDir("pull")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	dirs := map[string]bool{ // name -> kept
		filepath.Base(mine): true, // this process: alive
		theirs:              true, // alive until killed below
		fmt.Sprintf("%d.%d.pull.3", os.Getpid(), 1): false, // names an owner by PID, as older versions did: no one holds it
		"layer-0123456789ab-42":                     false, // names no owner: an older minictr's
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

	worker.Process.Kill()
	worker.Wait()
	dirs[theirs] = false
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

// TestWorkInAnotherPIDNamespace: a minictr in another PID namespace that
// shares the store (a save in a container, `unshare -pf`) keeps its work
// directory while it lives: its PID means nothing here, its lock does.
// Reclaiming by PID deleted a save's layout in the middle of its stream.
func TestWorkInAnotherPIDNamespace(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) from util-linux")
	}
	root := filepath.Join(t.TempDir(), "image")
	openStoreAt(t, root)
	worker := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount-proc", os.Args[0], "-test.run=^$")
	worker.Env = append(os.Environ(), "MINICTR_TEST_WORK="+root)
	worker.Stderr = os.Stderr
	out, err := worker.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { worker.Process.Kill(); worker.Wait() }) // unshare, which kills its child
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the worker made no work directory: %v", err)
	}
	dir := strings.TrimSpace(line)
	openStoreAt(t, root) // reclaims what it judges dead
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the work directory of a live process in another PID namespace was reclaimed: %v", err)
	}
	worker.Process.Kill()
	worker.Wait()
	// --kill-child: the worker gets SIGKILL when unshare dies; wait for it
	// to be gone, then its work is garbage.
	for i := 0; ; i++ {
		openStoreAt(t, root)
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			break
		}
		if i == 100 {
			t.Fatal("the killed worker's directory is kept")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
