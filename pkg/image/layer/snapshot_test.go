package layer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/trace"
	"golang.org/x/sys/unix"
)

// unpackLayers unpacks lowerLayer and upperLayer into their own directories
// and returns them top first, as Prepare wants them.
func unpackLayers(t *testing.T, base string) []string {
	t.Helper()
	lower, upper := filepath.Join(base, "layers/1"), filepath.Join(base, "layers/2")
	for dir, r := range map[string]io.Reader{lower: lowerLayer(t), upper: upperLayer(t)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Unpack(r, dir, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return []string{upper, lower}
}

// TestUnpackOverlayWhiteouts checks the overlayfs form of whiteouts: a 0/0
// character device and the opaque xattr.
func TestUnpackOverlayWhiteouts(t *testing.T) {
	testenv.SkipIfNotRoot(t) // trusted.* xattrs need CAP_SYS_ADMIN
	layers := unpackLayers(t, t.TempDir())
	st := lstat(t, filepath.Join(layers[0], "etc/motd"))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/motd: mode %o rdev %d, want a character device 0/0", st.Mode, st.Rdev)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(layers[0], "data"), opaqueXattr, buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("data: %s = %q (%v), want y", opaqueXattr, buf[:n], err)
	}
}

func TestOverlaySnapshot(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	base := t.TempDir()
	if kind, why := Snapshotter(base); kind != KindOverlay {
		t.Fatalf("Snapshotter(%s) = %s (%s), want overlay on this host", base, kind, why)
	}
	rec := &trace.Recorder{}
	testSnapshot(t, base, func(lowers []string, dir string) (*Snapshot, error) { return Prepare(lowers, dir, rec) })
	want := "mount -t overlay overlay -o lowerdir=" + base + "/layers/2:" + base + "/layers/1,upperdir="
	if len(rec.Steps) == 0 || !strings.HasPrefix(rec.Steps[0].Shell, want) {
		t.Errorf("trace %+v, want a mount step starting %q", rec.Steps, want)
	}
}

func TestCopySnapshot(t *testing.T) {
	testenv.SkipIfNotRoot(t) // the layers' whiteouts are in overlayfs form (trusted xattrs)
	testSnapshot(t, t.TempDir(), func(lowers []string, dir string) (*Snapshot, error) { return PrepareCopy(lowers, dir, nil) })
}

// testSnapshot checks a snapshotter: the merged view, writes that reach only
// the snapshot, and a Remove that leaves nothing, twice.
func testSnapshot(t *testing.T, base string, prepare func([]string, string) (*Snapshot, error)) {
	layers := unpackLayers(t, base)
	before := map[string]map[string]string{}
	for _, l := range layers {
		before[l] = tree(t, l)
	}
	dir := filepath.Join(base, "snap")
	s, err := prepare(layers, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove() })
	checkMerged(t, s.Rootfs)

	// Writes: a new file, a change to a lower file, a deletion.
	must(t, os.WriteFile(filepath.Join(s.Rootfs, "etc/new"), []byte("new"), 0o644))
	must(t, os.WriteFile(filepath.Join(s.Rootfs, "etc/passwd"), []byte("changed"), 0o644))
	must(t, os.Remove(filepath.Join(s.Rootfs, "keep/file")))
	for _, l := range layers {
		if after := tree(t, l); fmt.Sprint(after) != fmt.Sprint(before[l]) {
			t.Errorf("layer %s changed by writes to the snapshot:\nbefore %v\nafter  %v", l, before[l], after)
		}
	}
	if s.Kind == KindOverlay {
		if got := readFile(t, filepath.Join(dir, "upper/etc/passwd")); got != "changed" {
			t.Errorf("upper/etc/passwd = %q: the change did not land in the upper dir", got)
		}
	}

	must(t, s.Remove())
	if mounted(s.Rootfs) {
		t.Errorf("%s still mounted after Remove", s.Rootfs)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists after Remove (%v)", dir, err)
	}
	must(t, s.Remove()) // idempotent
}

// TestOverlayManyLayers stacks more layers than mount(2) options can name
// in one page, which the new mount API (lowerdir+) handles.
func TestOverlayManyLayers(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	base := t.TempDir()
	var lowers []string
	for i := range 40 {
		l := filepath.Join(base, fmt.Sprintf("layer-%03d-%s", i, strings.Repeat("x", 80)))
		must(t, os.MkdirAll(l, 0o755))
		must(t, os.WriteFile(filepath.Join(l, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644))
		lowers = append([]string{l}, lowers...) // top first
	}
	rec := &trace.Recorder{}
	s, err := PrepareOverlay(lowers, filepath.Join(base, "snap"), rec)
	if !testenv.KernelAtLeast(6, 8) {
		// Before lowerdir+, so many layers cannot be mounted: the error
		// must say why, and nothing may stay mounted.
		if err == nil || !strings.Contains(err.Error(), "lowerdir+ needs Linux 6.8") {
			t.Fatalf("PrepareOverlay on Linux before 6.8 = %v, want the lowerdir+ error", err)
		}
		if mounted(filepath.Join(base, "snap", "rootfs")) {
			t.Errorf("a failed PrepareOverlay left a mount")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove() })
	if len(strings.Join(s.Mounts[0].Options, ",")) < os.Getpagesize() {
		t.Fatalf("options fit in a page: the test does not test the long path")
	}
	if n := len(names(t, s.Rootfs)); n != 40 {
		t.Errorf("merged view holds %d files, want one from each of the 40 layers", n)
	}
	if !strings.Contains(rec.Steps[0].Action, "lowerdir+") {
		t.Errorf("trace %q does not say it used lowerdir+", rec.Steps[0].Action)
	}
	must(t, s.Remove())
	if mounted(s.Rootfs) {
		t.Errorf("%s still mounted after Remove", s.Rootfs)
	}
}

// TestRemoveBusy detaches an overlay whose root is some process's cwd.
func TestRemoveBusy(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	base := t.TempDir()
	rec := &trace.Recorder{}
	s, err := PrepareOverlay(unpackLayers(t, base), filepath.Join(base, "snap"), rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove() })
	f, err := os.Open(filepath.Join(s.Rootfs, "etc/passwd")) // an open file keeps the mount busy
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	must(t, s.Remove())
	if mounted(s.Rootfs) {
		t.Errorf("%s still mounted after Remove", s.Rootfs)
	}
	if !slices.ContainsFunc(rec.Steps, func(r trace.Recorded) bool { return r.Shell == "umount -l "+s.Rootfs }) {
		t.Errorf("steps %+v, want a lazy unmount of the busy mount", rec.Steps)
	}
}

// TestOwnership keeps owner, setuid bit and extended attributes, through
// Unpack and through the copy snapshotter.
func TestOwnership(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	base := t.TempDir()
	probe := filepath.Join(base, "probe")
	must(t, os.WriteFile(probe, nil, 0o644))
	if err := unix.Lsetxattr(probe, "user.probe", []byte("1"), 0); errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("%s has no user.* xattrs (tmpfs before Linux 6.6): nothing to keep", base)
	}
	layer := filepath.Join(base, "layer")
	must(t, os.Mkdir(layer, 0o755))
	e := reg("usr/bin/passwd", "binary")
	e.mode, e.uid, e.gid, e.xattrs = 0o4755, 1000, 29, map[string]string{"user.minictr": "yes"}
	d := dirEnt("home/student/")
	d.uid, d.gid, d.mode = 1000, 1000, 0o700
	if _, err := Unpack(tarOf(t, e, d), layer, Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := PrepareCopy([]string{layer}, filepath.Join(base, "snap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove() })
	for _, root := range []string{layer, s.Rootfs} {
		st := lstat(t, filepath.Join(root, "usr/bin/passwd"))
		if st.Uid != 1000 || st.Gid != 29 || st.Mode&0o7777 != 0o4755 {
			t.Errorf("%s/usr/bin/passwd: uid %d gid %d mode %o, want 1000 29 4755", root, st.Uid, st.Gid, st.Mode&0o7777)
		}
		buf := make([]byte, 16)
		if n, err := unix.Lgetxattr(filepath.Join(root, "usr/bin/passwd"), "user.minictr", buf); err != nil || string(buf[:n]) != "yes" {
			t.Errorf("%s/usr/bin/passwd: user.minictr = %q (%v)", root, buf[:n], err)
		}
		if st := lstat(t, filepath.Join(root, "home/student")); st.Uid != 1000 || st.Mode&0o7777 != 0o700 {
			t.Errorf("%s/home/student: uid %d mode %o", root, st.Uid, st.Mode&0o7777)
		}
	}
}

// TestLoadRemove removes a snapshot from its directory alone, as another
// process (the container monitor) would.
func TestLoadRemove(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	base := t.TempDir()
	dir := filepath.Join(base, "snap")
	s, err := PrepareOverlay(unpackLayers(t, base), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove() })
	loaded := Load(dir, nil)
	if loaded.Kind != KindOverlay {
		t.Errorf("Load says %s, want overlay", loaded.Kind)
	}
	must(t, loaded.Remove())
	if mounted(s.Rootfs) {
		t.Errorf("%s still mounted", s.Rootfs)
	}
}

func TestSnapshotterWithoutRoot(t *testing.T) {
	if testenv.IsRoot() {
		t.Skip("checks the answer a user without CAP_SYS_ADMIN gets")
	}
	kind, why := Snapshotter(t.TempDir())
	if kind != KindCopy || !strings.Contains(why, "needs root") {
		t.Errorf("Snapshotter = %s, %q; want copy because mounting needs root", kind, why)
	}
}

func mounted(p string) bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
