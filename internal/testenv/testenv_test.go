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
