package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestBusyboxRootfs(t *testing.T) {
	if err := StaticBusybox(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	if err := BusyboxRootfs(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bin/sh", "bin/busybox", "etc/passwd", "proc", "tmp"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Errorf("rootfs lacks %s: %v", p, err)
		}
	}
	if target, _ := os.Readlink(filepath.Join(dir, "bin/sh")); target != "/bin/busybox" {
		t.Errorf("bin/sh -> %q, want /bin/busybox", target)
	}
}

func TestConditionUnknownIsError(t *testing.T) {
	if _, err := Condition("cgroup3"); err == nil {
		t.Fatal("unknown condition accepted")
	}
	if _, err := Condition("root"); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotLeaks(t *testing.T) {
	a := Snapshot{Links: map[string]bool{"lo": true}}
	b := Snapshot{Links: map[string]bool{"lo": true, "veth0": true}}
	if got := a.Leaks(b); len(got) != 1 || got[0] != "link veth0" {
		t.Fatalf("Leaks = %v", got)
	}
}

func TestReleaseAtLeast(t *testing.T) {
	for release, want := range map[string]bool{
		"6.1.0-56-amd64\n": true, "5.19.0": true, "5.19-rc1": true, "6.18.0": true,
		"5.18.19": false, "5.4.0-150-generic": false, "4.19.0-26-amd64": false,
	} {
		if got, err := releaseAtLeast(release, 5, 19); got != want || err != nil {
			t.Errorf("releaseAtLeast(%q, 5, 19) = %v, %v; want %v", release, got, err, want)
		}
	}
	if _, err := releaseAtLeast("linux", 5, 19); err == nil {
		t.Error("releaseAtLeast(\"linux\") gave no error")
	}
	if _, err := Condition("kernel:x"); err == nil {
		t.Error("a malformed [kernel:] condition was accepted")
	}
	if ok, err := Condition("kernel:2.6"); !ok || err != nil {
		t.Errorf("[kernel:2.6] = %v, %v; want true", ok, err)
	}
}

// TestSnapshotSeesOddNames: the leak check reads the kernel's tables through
// internal/procfs, so a child whose command name holds parentheses and
// spaces, and a mount point with a space, are named as they are.
func TestSnapshotSeesOddNames(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "a) b (c")
	if err := os.Symlink("/bin/sleep", odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "30")
	// The kernel names the process after the file it ran (comm); argv[0]
	// stays "sleep", so that a busybox /bin/sleep (the lab VM's) still
	// knows which applet to be.
	cmd.Args[0] = "sleep"
	if err := cmd.Start(); err != nil {
		t.Skipf("needs /bin/sleep: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	want := fmt.Sprintf("%d a) b (c", cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); !children()[want]; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) { // the name changes at exec: wait for it
			t.Fatalf("children() = %v, want %q among them", children(), want)
		}
	}
	if !IsRoot() {
		return
	}
	point := filepath.Join(dir, "my mounts")
	if err := os.Mkdir(point, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", point, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(point, unix.MNT_DETACH)
	if !mountPoints()[point] {
		t.Errorf("mountPoints() lacks %q", point)
	}
}
