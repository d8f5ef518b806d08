package flock

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestDeadOwnerIsReclaimed: a directory locked by another process is alive
// while that process runs and dead once it is killed; then exactly one
// taker gets it.
func TestDeadOwnerIsReclaimed(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("needs flock(1) from util-linux to hold a lock in another process")
	}
	dir := filepath.Join(t.TempDir(), "owned")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("flock", "--exclusive", "--close", dir, "sh", "-c", "echo locked; exec sleep 60")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // flock(1) and its sleep, killed together
	kill := func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() }
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kill) // by process group: ours
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("the holder did not lock: %q, %v", buf, err)
	}
	if l, err := Try(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Try while the owner lives = %v, %v; want ErrLocked", l, err)
	}
	kill()
	l, err := Try(dir)
	if err != nil {
		t.Fatalf("Try after the owner was killed: %v", err)
	}
	if l2, err := Try(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("a second taker got the lock too: %v, %v", l2, err)
	}
	// The taker removes it; a taker that waited for it finds it gone.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	if _, err := Try(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Try of a removed directory = %v, want ErrNotExist", err)
	}
}

// TestLockIsNotInherited: a program the owner starts does not keep the
// lock (O_CLOEXEC): once the owner lets go, the lock is free although the
// child still runs. A container's processes must never keep their engine
// alive in everyone's eyes.
func TestLockIsNotInherited(t *testing.T) {
	root := t.TempDir()
	dir, file := filepath.Join(root, "d"), filepath.Join(root, "f")
	ld, err := Mkdir(dir, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := Create(file, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Try(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Try of a directory Mkdir holds = %v, want ErrLocked", err)
	}
	if _, err := Try(file); !errors.Is(err, ErrLocked) {
		t.Fatalf("Try of a file Create holds = %v, want ErrLocked", err)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	// Under the same lock? The child's fds say.
	fds, _ := os.ReadDir("/proc/" + itoa(child.Process.Pid) + "/fd")
	for _, fd := range fds {
		target, _ := os.Readlink("/proc/" + itoa(child.Process.Pid) + "/fd/" + fd.Name())
		if strings.HasPrefix(target, root) {
			t.Errorf("the child inherited fd %s -> %s", fd.Name(), target)
		}
	}
	ld.Unlock()
	lf.Unlock()
	for _, p := range []string{dir, file} {
		l, err := Try(p)
		if err != nil {
			t.Errorf("Try(%s) after the owner let go, its child still running: %v", filepath.Base(p), err)
			continue
		}
		l.Unlock()
	}
	if _, err := Create(file, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of an existing file = %v, want ErrExist", err)
	}
	if _, err := Mkdir(dir, 0o700); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Mkdir of an existing directory = %v, want ErrExist", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
