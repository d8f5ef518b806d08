package chroot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/resolve"
)

// TestMountPointStaysInside builds a rootfs full of hostile symlinks and
// checks that every mount point resolves, and is created, inside it.
func TestMountPointStaysInside(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	for _, d := range []string{"etc", "data", "a/b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"escape-abs": "/etc",           // absolute: resolves against root
		"escape-rel": "../../../../..", // climbs above root: stops at root
		"a/b/up":     "../../data",
		"loop1":      "loop2",
		"loop2":      "loop1",
		"host":       "/proc/self/root/etc", // a path that exists on the host
		"vol":        outside,               // a directory that exists on the host
	}
	for name, dest := range links {
		if err := os.Symlink(dest, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"/data", "/data"},
		{"data/../../../etc", "/etc"},
		{"/escape-abs/passwd", "/etc/passwd"},
		{"/escape-rel", "/"},
		{"/escape-rel/etc", "/etc"},
		{"/a/b/up/x", "/data/x"},
		{"/host", "/proc/self/root/etc"},
		{"/vol/sub", outside + "/sub"},
		{"/new/dir", "/new/dir"},
		{"", "/"},
	} {
		got, err := mountPointPath(t, root, tc.in, false)
		if err != nil {
			t.Errorf("mountPoint(%q): %v", tc.in, err)
			continue
		}
		want := filepath.Join(root, tc.want)
		if got != want {
			t.Errorf("mountPoint(%q) = %q, want %q", tc.in, got, want)
		}
		if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
			t.Errorf("mountPoint(%q) made %v, %v; want a directory", tc.in, fi, err)
		}
	}
	if _, err := mountPointPath(t, root, "/loop1/x", false); !errors.Is(err, unix.ELOOP) {
		t.Errorf("mountPoint(loop) err = %v, want ELOOP", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("mountPoint created %v outside the rootfs", entries)
	}
}

// TestMountPointCreatesInside checks that a missing mount point behind an
// escaping symlink is created inside the rootfs, never on the host, for a
// directory and for a file.
func TestMountPointCreatesInside(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "vol")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An image's /etc/resolv.conf is often a dangling absolute link.
	if err := os.Symlink(outside+"/resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	got, err := mountPointPath(t, root, "/vol/sub", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, outside, "sub"); got != want {
		t.Errorf("mountPoint = %q, want %q", got, want)
	}
	for p, want := range map[string]string{"/etc/hosts": "etc/hosts", "/vol/file": outside[1:] + "/file", "/etc/resolv.conf": outside[1:] + "/resolv.conf"} {
		file, err := mountPointPath(t, root, p, true)
		if err != nil {
			t.Errorf("mountPoint(%q): %v", p, err)
			continue
		}
		if file != filepath.Join(root, want) {
			t.Errorf("mountPoint(%q) = %q, want root/%s", p, file, want)
		}
		if fi, err := os.Stat(file); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("file mount point %s: %v %v", file, fi, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("mountPoint created %v outside the rootfs", entries)
	}
}

// mountPointPath calls mountPoint in the directory root and returns the
// kernel's name for what it opened.
func mountPointPath(t *testing.T, root, p string, file bool) (string, error) {
	t.Helper()
	rf, err := resolve.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	f, err := mountPoint(rf, p, file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return os.Readlink(fdPath(f))
}

func TestMountShell(t *testing.T) {
	for _, tc := range []struct {
		source, target, fstype string
		flags                  uintptr
		data, want             string
	}{
		{"", "/", "", unix.MS_REC | unix.MS_PRIVATE, "", "mount --make-rprivate /"},
		{"/r", "/r", "", unix.MS_BIND | unix.MS_REC, "", "mount --rbind /r /r"},
		{"proc", "/r/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", "mount -t proc -o nosuid,nodev,noexec proc /r/proc"},
		{"/dev/null", "/proc/kcore", "", unix.MS_BIND, "", "mount --bind /dev/null /proc/kcore"},
		{"", "/proc/sys", "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID, "", "mount -o remount,bind,ro,nosuid /proc/sys"},
		{"shm", "/r/dev/shm", "tmpfs", unix.MS_NOSUID, "mode=1777", "mount -t tmpfs -o nosuid,mode=1777 shm /r/dev/shm"},
	} {
		if got := mountShell(tc.source, tc.target, tc.fstype, tc.flags, tc.data); got != tc.want {
			t.Errorf("mountShell = %q, want %q", got, tc.want)
		}
	}
	got := mountCall("proc", "/r/proc", "proc", unix.MS_NOSUID|unix.MS_NOEXEC, "")
	if want := `mount("proc", "/r/proc", "proc", MS_NOSUID|MS_NOEXEC, "")`; got != want {
		t.Errorf("mountCall = %q, want %q", got, want)
	}
}

// TestMountOfFallback checks that the pre-5.8 way of telling a file's
// mount (fdinfo's mnt_id, a look at "..") agrees with statx(2). Not on
// "/": the namespace's root is its own "..", and Setup never asks there.
func TestMountOfFallback(t *testing.T) {
	roots := 0
	for _, p := range []string{"/proc", "/proc/self", "/proc/self/status", "/sys", "/sys/kernel", "/etc"} {
		f, err := os.OpenFile(p, unix.O_PATH, 0)
		if err != nil {
			t.Fatal(err)
		}
		id, root, err := mountOf(f)
		fid, froot, ferr := mountOfFdinfo(f)
		f.Close()
		if err != nil || ferr != nil || id != fid || (root != froot && !strings.HasSuffix(p, "status")) {
			t.Errorf("%s: statx says mount %d root %v (%v), fdinfo says %d root %v (%v)", p, id, root, err, fid, froot, ferr)
		}
		if root {
			roots++
		}
	}
	if roots < 2 { // "/proc" and "/sys" at least
		t.Errorf("only %d mount roots among the paths: the test tells nothing", roots)
	}
}
