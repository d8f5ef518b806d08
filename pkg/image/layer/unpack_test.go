package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/resolve"
	"github.com/minictr/minictr/pkg/trace"
	"golang.org/x/sys/unix"
)

func TestCleanName(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		bad        bool
	}{
		{"etc/passwd", "etc/passwd", false},
		{"./etc/passwd", "etc/passwd", false},
		{"etc/", "etc", false},
		{"./", "", false},
		{"a//b", "a/b", false},
		{"a..b/c..", "a..b/c..", false},
		// What umoci and other tools write: a root entry "/", absolute
		// names. As docker, containerd and GNU tar do, they land below
		// the layer directory.
		{"/", "", false},
		{"/etc/passwd", "etc/passwd", false},
		{"//etc/", "etc", false},
		{"/./etc", "etc", false},
		// ".." that stays inside is only a detour.
		{"a/../b", "b", false},
		{"a/..", "", false},
		// ".." that would land outside is refused.
		{"../x", "", true},
		{"..", "", true},
		{"a/../../x", "", true},
		{"/../x", "", true},
		{"./../x", "", true},
		{"", "", true},
		{"a\x00b", "", true},
	} {
		got, err := cleanName(tc.name)
		if tc.bad {
			if !errors.Is(err, ErrEscape) {
				t.Errorf("cleanName(%q) = %q, %v; want ErrEscape", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestParseWhiteout(t *testing.T) {
	for _, tc := range []struct {
		base, target string
		opaque, bad  bool
	}{
		{".wh.passwd", "passwd", false, false},
		{".wh..profile", ".profile", false, false},
		{".wh.a..b", "a..b", false, false},
		{".wh..wh..opq", "", true, false},
		{".wh.", "", false, true},
		{".wh..", "", false, true},
		{".wh...", "", false, true},
		{".wh..wh.plnk", "", false, true},
	} {
		target, opaque, err := parseWhiteout(tc.base)
		if tc.bad {
			if !errors.Is(err, ErrWhiteout) {
				t.Errorf("parseWhiteout(%q) = %q, %v, %v; want ErrWhiteout", tc.base, target, opaque, err)
			}
			continue
		}
		if err != nil || target != tc.target || opaque != tc.opaque {
			t.Errorf("parseWhiteout(%q) = %q, %v, %v; want %q, %v", tc.base, target, opaque, err, tc.target, tc.opaque)
		}
	}
}

// TestOpenDirStaysBeneath checks the layer's use of the resolver: symlinks
// that stay inside are followed, those that leave (relative or absolute,
// even to a path inside) are refused as ErrEscape.
func TestOpenDirStaysBeneath(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub/deeper"), 0o755)
	for name, target := range map[string]string{"in": "sub", "in2": "sub/../sub/deeper", "up": "..", "abs": "/", "absin": dir + "/sub"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := openRoot(dir, resolve.Beneath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for rel, escapes := range map[string]bool{"": false, "sub": false, "in": false, "in2": false, "in/deeper": false,
		"up": true, "abs": true, "absin": true, "sub/../up": true} {
		f, err := r.openDir(rel, unix.O_PATH)
		if err == nil {
			f.Close()
		}
		if escapes != errors.Is(err, ErrEscape) {
			t.Errorf("openDir(%q): err = %v, want escape %v", rel, err, escapes)
		}
		if f, err := r.mkdirAll(path.Join(rel, "new")); escapes != errors.Is(err, ErrEscape) {
			t.Errorf("mkdirAll(%q): err = %v, want escape %v", path.Join(rel, "new"), err, escapes)
		} else if err == nil {
			f.Close()
		}
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), "new")); err == nil {
		t.Errorf("mkdirAll made a directory beside the layer")
	}
}

// TestUnpackEntries unpacks every allowed kind of entry and checks what
// lands on disk, including a later entry replacing an earlier one.
func TestUnpackEntries(t *testing.T) {
	dir := t.TempDir()
	suid := reg("bin/tool", "#!/bin/sh\n")
	suid.mode = 0o4755
	fifo := ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o620}
	link := ent{name: "bin/tool-link", link: "bin/tool", typ: tar.TypeLink}
	rec := &trace.Recorder{}
	st, err := Unpack(tarOf(t,
		dirEnt("./"), dirEnt("etc/"), reg("etc/passwd", "old\n"), reg("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		suid, link, sym("etc/localtime", "/usr/share/zoneinfo/UTC"), fifo,
		dirEnt("var/"), reg("var/run", "a file, replaced below by a symlink"), sym("var/run", "../run"),
		reg("deep/no/parents/file", "x"),
	), dir, Options{Tracer: rec})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 12 || st.Bytes != int64(len("old\nroot:x:0:0::/root:/bin/sh\n#!/bin/sh\na file, replaced below by a symlinkx")) {
		t.Errorf("stats = %+v", st)
	}
	if got := readFile(t, filepath.Join(dir, "etc/passwd")); got != "root:x:0:0::/root:/bin/sh\n" {
		t.Errorf("etc/passwd = %q, want the later entry", got)
	}
	info, err := os.Stat(filepath.Join(dir, "bin/tool"))
	if err != nil || info.Mode() != fs.ModeSetuid|0o755 || !info.ModTime().Equal(testTime) {
		t.Errorf("bin/tool: %v %v, want setuid 0755 at %v", info.Mode(), info.ModTime(), testTime)
	}
	if a, b := info.Sys().(*syscall.Stat_t), lstat(t, filepath.Join(dir, "bin/tool-link")); a.Ino != b.Ino {
		t.Errorf("bin/tool-link is not a hard link of bin/tool")
	}
	for name, want := range map[string]string{"etc/localtime": "/usr/share/zoneinfo/UTC", "var/run": "../run"} {
		if got, err := os.Readlink(filepath.Join(dir, name)); got != want {
			t.Errorf("%s -> %q (%v), want %q", name, got, err, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "run/fifo")); err != nil || fi.Mode() != fs.ModeNamedPipe|0o620 {
		t.Errorf("run/fifo: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc")); err != nil || !fi.ModTime().Equal(testTime) {
		t.Errorf("etc mtime %v, want %v (set after its contents)", fi.ModTime(), testTime)
	}
	if len(rec.Steps) != 1 || rec.Steps[0].Shell != "tar -xf - -C "+dir {
		t.Errorf("trace = %+v, want one step per layer: tar -xf - -C %s", rec.Steps, dir)
	}
}

// TestUnpackReplacedParent: each entry's parent is where resolving its
// name afresh leads, even though the extractor keeps the last parent open:
// after an entry replaced something on the way to it, the parent is
// resolved again, never reused (a file would vanish into a deleted
// directory, or land where the name no longer leads).
func TestUnpackReplacedParent(t *testing.T) {
	dir := t.TempDir()
	_, err := Unpack(tarOf(t,
		dirEnt("y/"), dirEnt("x/"), sym("l", "x"), reg("l/f1", "1"),
		sym("x", "y"), // x, where l points, becomes a link to y
		reg("l/f2", "2"),
	), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "y/f2")); got != "2" {
		t.Errorf("y/f2 = %q", got)
	}
	_, err = Unpack(tarOf(t,
		dirEnt("x/"), sym("l", "x"), reg("l/f1", "1"),
		reg("x", "now a file"),
		reg("l/f2", "2"),
	), t.TempDir(), Options{})
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Name != "l/f2" || !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("err = %v, want ENOTDIR on l/f2 (l -> x, now a file)", err)
	}
	// The same parent name twice in a row, and between them an entry in
	// it replaces the directory that name resolved through: b -> real/x/..
	// leads through real/x, which becomes a file.
	_, err = Unpack(tarOf(t,
		dirEnt("real/"), dirEnt("real/x/"), sym("b", "real/x/.."), reg("b/f1", "1"),
		reg("b/x", "a file now"),
		reg("b/f2", "2"),
	), t.TempDir(), Options{})
	if !errors.As(err, &ee) || ee.Name != "b/f2" || !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("err = %v, want ENOTDIR on b/f2 (b -> real/x/.., x now a file)", err)
	}
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// TestApplyWhiteouts stacks two layers into one directory: the upper one
// deletes a file and makes a directory opaque.
func TestApplyWhiteouts(t *testing.T) {
	dir := t.TempDir()
	if _, err := Apply(lowerLayer(t), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(upperLayer(t), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	checkMerged(t, dir)
}

// The two layers of the whiteout tests.
func lowerLayer(t *testing.T) io.Reader {
	return tarOf(t, dirEnt("etc/"), reg("etc/passwd", "root\n"), reg("etc/motd", "hello\n"),
		dirEnt("data/"), reg("data/old1", "1"), dirEnt("data/olddir/"), reg("data/olddir/x", "x"), reg("keep/file", "k"))
}

func upperLayer(t *testing.T) io.Reader {
	// data/new comes before the opaque marker: an opaque whiteout hides
	// only what the layers below had, never this layer's own entries.
	return tarOf(t, reg("etc/.wh.motd", ""), dirEnt("data/"), reg("data/new", "new"), reg("data/sub/deep", "d"),
		reg("data/.wh..wh..opq", ""), reg("data/newer", "newer"), reg("etc/hostname", "box\n"))
}

// checkMerged checks the view of lowerLayer under upperLayer.
func checkMerged(t *testing.T, root string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, "etc/motd")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("etc/motd still visible (%v), the upper layer deleted it", err)
	}
	if got := names(t, filepath.Join(root, "data")); !slices.Equal(got, []string{"new", "newer", "sub"}) {
		t.Errorf("data holds %v, want only the upper layer's [new newer sub] (opaque)", got)
	}
	if got := names(t, filepath.Join(root, "etc")); !slices.Equal(got, []string{"hostname", "passwd"}) {
		t.Errorf("etc holds %v, want [hostname passwd]", got)
	}
	if got := readFile(t, filepath.Join(root, "keep/file")); got != "k" {
		t.Errorf("keep/file = %q", got)
	}
}

// TestMaxSize stops a layer at the entry that crosses the cap, before
// writing it.
func TestMaxSize(t *testing.T) {
	dir := t.TempDir()
	_, err := Unpack(tarOf(t, reg("a", "12345"), reg("b", "67890"), reg("c", "x")), dir, Options{MaxSize: 8})
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Name != "b" || !errors.Is(err, ErrTooBig) {
		t.Fatalf("err = %v, want ErrTooBig on entry b", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b was written despite the cap")
	}
}

// TestUnpackGNUTar unpacks what GNU tar makes of a busybox root filesystem
// (a "./" top entry, hundreds of absolute symlinks, a hard link) and checks
// that the tree comes back identical.
func TestUnpackGNUTar(t *testing.T) {
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	src, dst := t.TempDir(), t.TempDir()
	must(t, testenv.BusyboxRootfs(src))
	must(t, os.Link(filepath.Join(src, "bin/busybox"), filepath.Join(src, "bin/busybox-hardlink")))
	cmd := exec.Command("tar", "-C", src, "--xattrs", "-cf", "-", ".")
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	st, err := Unpack(out, dst, Options{})
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tree(t, src)) != fmt.Sprint(tree(t, dst)) {
		t.Errorf("unpacked tree differs from the source")
	}
	if a, b := lstat(t, filepath.Join(dst, "bin/busybox")), lstat(t, filepath.Join(dst, "bin/busybox-hardlink")); a.Ino != b.Ino {
		t.Errorf("hard link lost")
	}
	t.Logf("%d entries, %d bytes", st.Files, st.Bytes)
}

// TestApplyInRoot: layers stacked onto one directory see the symlinks of
// the layers below as the container will: with InRoot, a later layer's
// var/run/x lands in DIR/run/x through a lower layer's var/run -> /run, and
// nothing is written outside DIR. Without it (a layer in its own
// directory), the same path is an escape.
func TestApplyInRoot(t *testing.T) {
	name := fmt.Sprintf("minictr-applyinroot-%d", os.Getpid()) // would be /run/NAME on the host
	stack := func(opts Options) (string, error) {
		dir := t.TempDir()
		if _, err := Apply(tarOf(t, dirEnt("run/"), dirEnt("var/"), sym("var/run", "/run")), dir, opts); err != nil {
			t.Fatal(err)
		}
		_, err := Apply(tarOf(t, reg("var/run/"+name, "pid\n")), dir, opts)
		return dir, err
	}
	dir, err := stack(Options{InRoot: true})
	if err != nil {
		t.Fatalf("applying through a lower layer's absolute symlink: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "run", name)); err != nil || string(data) != "pid\n" {
		t.Errorf("DIR/run/%s = %q, %v; want the upper layer's file", name, data, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "var/run")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("var/run is no longer the lower layer's symlink: %v, %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join("/run", name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/run/%s exists on the host (%v)", name, err)
		os.Remove(filepath.Join("/run", name))
	}
	if _, err := stack(Options{}); !errors.Is(err, ErrEscape) {
		t.Errorf("without InRoot: %v, want ErrEscape", err)
	}
}
