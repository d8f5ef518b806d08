package testenv

import (
	"os"
	"path/filepath"
	"testing"
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
