package resolve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// backends runs fn once with openat2 and once with the user-space walk:
// both must give every answer the same.
func backends(t *testing.T, fn func(t *testing.T)) {
	t.Run("openat2", func(t *testing.T) {
		fd, err := unix.Openat2(unix.AT_FDCWD, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
		if err != nil {
			t.Skipf("this kernel has no openat2 (%v): the walk below is what runs", err)
		}
		unix.Close(fd)
		fn(t)
	})
	t.Run("walk", func(t *testing.T) {
		noOpenat2.Store(true)
		defer noOpenat2.Store(false)
		fn(t)
	})
}

// tree makes a root full of the links a hostile image holds, next to a
// directory "outside" that nothing may touch. It returns the root, opened,
// and the outside directory.
func tree(t *testing.T) (root *os.File, dir, outside string) {
	t.Helper()
	base := t.TempDir()
	dir, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{dir + "/etc", dir + "/usr/lib", dir + "/data", dir + "/a/b", dir + "/outside", outside} {
		must(t, os.MkdirAll(d, 0o755))
	}
	for name, content := range map[string]string{
		dir + "/etc/passwd":     "in-root etc\n",
		dir + "/usr/lib/passwd": "in-root usr/lib\n",
		dir + "/outside/secret": "in-root copy\n",
		outside + "/secret":     "the host's\n",
	} {
		must(t, os.WriteFile(name, []byte(content), 0o644))
	}
	links := map[string]string{
		"abs-etc":      "/etc",
		"abs-passwd":   "/usr/lib/passwd",
		"rel-in":       "data",
		"rel-up":       "../../../../../../..",
		"a/b/up":       "../../data",
		"a/b/out":      "../../..",
		"host":         outside,      // an absolute path on the host
		"rel-host":     "../outside", // one step above the root
		"loop1":        "loop2",
		"loop2":        "loop1",
		"dangling-rel": "nowhere",
		"dangling-abs": "/nowhere/deeper",
	}
	// A chain: c1 -> c2 -> ... -> c40 -> data is 40 symlinks, the most one
	// lookup follows; c0 -> c1 makes 41, one too many; c21 is 20.
	for i := range 41 {
		links[fmt.Sprintf("c%d", i)] = fmt.Sprintf("c%d", i+1)
	}
	links["c40"] = "data"
	for name, target := range links {
		must(t, os.Symlink(target, filepath.Join(dir, name)))
	}
	root, err := OpenRoot(dir)
	must(t, err)
	t.Cleanup(func() { root.Close() })
	return root, dir, outside
}

// A resolution case: where name must land, given as a path below the root
// ("." for the root itself), or the error it must give.
type resolution struct {
	name string
	mode Mode
	want string
	err  error
}

var resolutions = []resolution{
	// Plain paths and links that stay inside: both modes agree.
	{"data", Beneath, "data", nil},
	{"data", InRoot, "data", nil},
	{"", Beneath, ".", nil},
	{"rel-in", Beneath, "data", nil},
	{"a/b/up", Beneath, "data", nil},
	{"a/b/up", InRoot, "data", nil},
	{"a/../data", Beneath, "data", nil},
	{"a/b/../../etc/passwd", InRoot, "etc/passwd", nil},

	// ".." above the root: refused beneath, clamped in the root.
	{"..", Beneath, "", ErrOutside},
	{"..", InRoot, ".", nil},
	{"data/../..", Beneath, "", ErrOutside},
	{"../../etc/passwd", InRoot, "etc/passwd", nil},
	{"/../etc/passwd", InRoot, "etc/passwd", nil},

	// Absolute paths and absolute symlinks: refused beneath, even when
	// they would land inside; resolved against the root in it.
	{"/data", Beneath, "", ErrOutside},
	{"/data", InRoot, "data", nil},
	{"abs-etc/passwd", Beneath, "", ErrOutside},
	{"abs-etc/passwd", InRoot, "etc/passwd", nil},
	{"abs-passwd", Beneath, "", ErrOutside},
	{"abs-passwd", InRoot, "usr/lib/passwd", nil},
	{"host", Beneath, "", ErrOutside},
	{"host/secret", InRoot, "", unix.ENOENT}, // root/<outside's path>/secret: not there

	// Relative symlinks climbing out.
	{"rel-up", Beneath, "", ErrOutside},
	{"rel-up", InRoot, ".", nil},
	{"rel-up/etc/passwd", InRoot, "etc/passwd", nil},
	{"a/b/out", Beneath, "", ErrOutside},
	{"a/b/out", InRoot, ".", nil},
	{"rel-host/secret", Beneath, "", ErrOutside},
	{"rel-host/secret", InRoot, "outside/secret", nil}, // the root's own copy

	// Symlink loops and the 40-link limit (exactly 40: TestWalkLinkLimit).
	{"loop1", Beneath, "", unix.ELOOP},
	{"loop1/x", InRoot, "", unix.ELOOP},
	{"c21", Beneath, "data", nil}, // 20 links
	{"c21", InRoot, "data", nil},
	{"c0", Beneath, "", unix.ELOOP}, // 41 links
	{"c0", InRoot, "", unix.ELOOP},

	// Dangling links.
	{"dangling-rel", Beneath, "", unix.ENOENT},
	{"dangling-rel", InRoot, "", unix.ENOENT},
	{"dangling-abs", Beneath, "", ErrOutside},
	{"dangling-abs", InRoot, "", unix.ENOENT},

	// A file where a directory must be.
	{"etc/passwd/x", Beneath, "", unix.ENOTDIR},
	{"etc/passwd/x", InRoot, "", unix.ENOTDIR},
	{"etc/passwd/", InRoot, "", unix.ENOTDIR},
	{"etc/passwd/..", Beneath, "", unix.ENOTDIR},
}

func TestOpen(t *testing.T) {
	backends(t, func(t *testing.T) {
		root, dir, outside := tree(t)
		for _, tc := range resolutions {
			f, err := Open(root, tc.name, tc.mode, unix.O_PATH, 0)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("Open(%q, %v) = %v, want %v", tc.name, tc.mode, err, tc.err)
				}
				if f != nil {
					f.Close()
				}
				continue
			}
			if err != nil {
				t.Errorf("Open(%q, %v): %v, want %s", tc.name, tc.mode, err, tc.want)
				continue
			}
			if !sameFile(t, f, filepath.Join(dir, tc.want)) {
				t.Errorf("Open(%q, %v) opened %s, want %s", tc.name, tc.mode, fdPath(t, f), tc.want)
			}
			f.Close()
		}
		checkOutside(t, outside)
	})
}

// TestWalkLinkLimit: the walk follows exactly 40 symlinks, as the kernel's
// MAXSYMLINKS says, and fails the 41st with ELOOP. (openat2 is not held to
// exactly 40 here: when its lockless walk falls back to a locked one
// midway, the links already counted stay counted, so 40 sometimes fails
// there; 41 always does.)
func TestWalkLinkLimit(t *testing.T) {
	noOpenat2.Store(true)
	defer noOpenat2.Store(false)
	root, dir, _ := tree(t)
	for _, mode := range []Mode{Beneath, InRoot} {
		f, err := Open(root, "c1", mode, unix.O_PATH, 0)
		if err != nil {
			t.Errorf("%v: 40 links: %v", mode, err)
		} else {
			if !sameFile(t, f, filepath.Join(dir, "data")) {
				t.Errorf("%v: 40 links opened %s, want data", mode, fdPath(t, f))
			}
			f.Close()
		}
		if _, err := Open(root, "c0", mode, unix.O_PATH, 0); !errors.Is(err, unix.ELOOP) {
			t.Errorf("%v: 41 links: err = %v, want ELOOP", mode, err)
		}
	}
}

// TestOpenReads opens for reading: the LookupUser case, an image whose
// /etc/passwd is an absolute symlink to /usr/lib/passwd inside it.
func TestOpenReads(t *testing.T) {
	backends(t, func(t *testing.T) {
		root, dir, _ := tree(t)
		must(t, os.Remove(filepath.Join(dir, "etc/passwd")))
		must(t, os.Symlink("/usr/lib/passwd", filepath.Join(dir, "etc/passwd")))
		f, err := Open(root, "/etc/passwd", InRoot, unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		data := make([]byte, 64)
		n, _ := f.Read(data)
		if got := string(data[:n]); got != "in-root usr/lib\n" {
			t.Errorf("read %q through /etc/passwd -> /usr/lib/passwd, want the image's usr/lib/passwd", got)
		}
	})
}

// TestOpenNoFollow opens a symlink itself: nothing is followed, so even a
// link out of the root is fine beneath it.
func TestOpenNoFollow(t *testing.T) {
	backends(t, func(t *testing.T) {
		root, _, _ := tree(t)
		for _, mode := range []Mode{Beneath, InRoot} {
			f, err := Open(root, "host", mode, unix.O_PATH|unix.O_NOFOLLOW, 0)
			if err != nil {
				t.Errorf("%v: %v", mode, err)
				continue
			}
			var st unix.Stat_t
			must(t, unix.Fstat(int(f.Fd()), &st))
			if st.Mode&unix.S_IFMT != unix.S_IFLNK {
				t.Errorf("%v: opened mode %o, want the symlink itself", mode, st.Mode)
			}
			f.Close()
		}
	})
}

// TestOpenCreate creates a file through an absolute symlink: in the root,
// never on the host.
func TestOpenCreate(t *testing.T) {
	backends(t, func(t *testing.T) {
		root, dir, outside := tree(t)
		must(t, os.Symlink(outside+"/created", filepath.Join(dir, "outside/link")))
		must(t, os.Symlink(outside+"/created", filepath.Join(dir, "hostlink")))
		if _, err := Open(root, "hostlink", Beneath, unix.O_CREAT|unix.O_WRONLY, 0o644); !errors.Is(err, ErrOutside) {
			t.Errorf("beneath: err = %v, want ErrOutside", err)
		}
		f, err := Open(root, "outside/link", InRoot, unix.O_CREAT|unix.O_WRONLY, 0o644)
		if !errors.Is(err, unix.ENOENT) { // root/<outside's path>/ is not there, and O_CREAT makes no parents
			t.Errorf("in root, missing parents: err = %v, want ENOENT", err)
		}
		if f != nil {
			f.Close()
		}
		must(t, os.MkdirAll(filepath.Join(dir, outside), 0o755))
		f, err = Open(root, "hostlink", InRoot, unix.O_CREAT|unix.O_WRONLY, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if fi, err := os.Lstat(filepath.Join(dir, outside, "created")); err != nil || fi.Mode() != 0o640 {
			t.Errorf("created %v, %v; want a 0640 file at root/%s/created", fi, err, outside)
		}
		checkOutside(t, outside)
	})
}

func TestMkdirAll(t *testing.T) {
	backends(t, func(t *testing.T) {
		root, dir, outside := tree(t)
		for _, tc := range []resolution{
			{"new1/new2", Beneath, "new1/new2", nil},
			{"data", Beneath, "data", nil},
			{"rel-in/sub", Beneath, "data/sub", nil},
			{"dangling-rel/sub", Beneath, "nowhere/sub", nil}, // made where the link points
			{"dangling-abs/sub", InRoot, "nowhere/deeper/sub", nil},
			{"host/new", InRoot, outside[1:] + "/new", nil}, // the host's path, recreated in the root
			{"rel-up/top", InRoot, "top", nil},
			{"/../abs-etc/x", InRoot, "etc/x", nil},
			{"host/new", Beneath, "", ErrOutside},
			{"a/b/out/new", Beneath, "", ErrOutside},
			{"dangling-abs/sub", Beneath, "", ErrOutside},
			{"../new", Beneath, "", ErrOutside},
			{"loop1/new", InRoot, "", unix.ELOOP},
			{"etc/passwd/new", InRoot, "", unix.ENOTDIR},
		} {
			f, err := MkdirAll(root, tc.name, tc.mode, 0o755)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("MkdirAll(%q, %v) = %v, want %v", tc.name, tc.mode, err, tc.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("MkdirAll(%q, %v): %v", tc.name, tc.mode, err)
				continue
			}
			if fi, err := os.Lstat(filepath.Join(dir, tc.want)); err != nil || !fi.IsDir() {
				t.Errorf("MkdirAll(%q, %v): %s is %v, %v; want a directory", tc.name, tc.mode, tc.want, fi, err)
			} else if !sameFile(t, f, filepath.Join(dir, tc.want)) {
				t.Errorf("MkdirAll(%q, %v) opened %s, want %s", tc.name, tc.mode, fdPath(t, f), tc.want)
			}
			f.Close()
		}
		checkOutside(t, outside)
	})
}

func TestRemoveAll(t *testing.T) {
	backends(t, func(t *testing.T) {
		root, dir, outside := tree(t)
		must(t, os.WriteFile(filepath.Join(dir, "a/b/file"), []byte("x"), 0o644))
		for _, tc := range []struct {
			name string
			mode Mode
			err  error
			gone string // what must no longer exist, below the root
		}{
			{"host/secret", Beneath, ErrOutside, ""},
			{"host/secret", InRoot, nil, ""}, // root/<outside's path>/secret: nothing there
			{"rel-host/secret", InRoot, nil, "outside/secret"},
			{"host", Beneath, nil, "host"}, // the link, not what it points at
			{"a", Beneath, nil, "a"},       // a tree with links in it
			{"missing/x", InRoot, nil, ""},
			{"data/..", InRoot, unix.EINVAL, ""},
		} {
			err := RemoveAll(root, tc.name, tc.mode)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Errorf("RemoveAll(%q, %v) = %v, want %v", tc.name, tc.mode, err, tc.err)
			}
			if tc.gone != "" {
				if _, err := os.Lstat(filepath.Join(dir, tc.gone)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("RemoveAll(%q, %v) left %s (%v)", tc.name, tc.mode, tc.gone, err)
				}
			}
		}
		checkOutside(t, outside)
	})
}

// TestEmptySymlink: a symlink with an empty target (symlink(2) refuses to
// make one, a tar archive can) resolves to nothing, as in the kernel.
func TestEmptySymlink(t *testing.T) {
	root, _, _ := tree(t)
	w := &walker{root: int(root.Fd()), mode: InRoot}
	if _, err := w.follow("", nil); !errors.Is(err, unix.ENOENT) {
		t.Errorf("follow(\"\") = %v, want ENOENT", err)
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{Beneath: "beneath", InRoot: "in-root", 7: "Mode(7)"} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(m), got, want)
		}
	}
}

// checkOutside fails the test if the directory beside the root holds
// anything but its secret, unchanged.
func checkOutside(t *testing.T, outside string) {
	t.Helper()
	entries, err := os.ReadDir(outside)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"secret"}) {
		t.Errorf("outside the root: %v, want only [secret]", names)
	}
	if data, err := os.ReadFile(outside + "/secret"); err != nil || string(data) != "the host's\n" {
		t.Errorf("outside/secret = %q, %v", data, err)
	}
}

func sameFile(t *testing.T, f *os.File, p string) bool {
	t.Helper()
	var a, b unix.Stat_t
	must(t, unix.Fstat(int(f.Fd()), &a))
	if err := unix.Lstat(p, &b); err != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func fdPath(t *testing.T, f *os.File) string {
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		return err.Error()
	}
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWalkAgreesWithKernel resolves thousands of paths made of the tree's
// names, "." and "..", in both modes, with openat2 and with the walk: the
// kernel is the walk's oracle, so the two must open the same file or fail
// with the same error.
func TestWalkAgreesWithKernel(t *testing.T) {
	if fd, err := unix.Openat2(unix.AT_FDCWD, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC}); err != nil {
		t.Skipf("this kernel has no openat2 (%v): nothing to compare the walk with", err)
	} else {
		unix.Close(fd)
	}
	root, _, _ := tree(t)
	parts := []string{"", ".", "..", "data", "etc", "passwd", "usr", "lib", "a", "b", "up", "out", "abs-etc",
		"abs-passwd", "rel-in", "rel-up", "host", "rel-host", "outside", "secret", "loop1", "c38", "dangling-rel", "dangling-abs", "x"}
	// c38 is 3 links, so a path of 6 names follows at most 18: even
	// counted twice (see TestWalkLinkLimit) the kernel stays under 40.
	seed := uint64(1)
	next := func(n int) int { // a fixed xorshift sequence: the same paths every run
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	resolveWith := func(walk bool, name string, mode Mode) (unix.Stat_t, error) {
		noOpenat2.Store(walk)
		defer noOpenat2.Store(false)
		var st unix.Stat_t
		f, err := Open(root, name, mode, unix.O_PATH, 0)
		if err != nil {
			var pe *os.PathError
			errors.As(err, &pe)
			return st, pe.Err
		}
		defer f.Close()
		return st, unix.Fstat(int(f.Fd()), &st)
	}
	for range 3000 {
		var p []string
		for range 1 + next(6) {
			p = append(p, parts[next(len(parts))])
		}
		name := strings.Join(p, "/")
		if next(4) == 0 {
			name = "/" + name
		}
		for _, mode := range []Mode{Beneath, InRoot} {
			kst, kerr := resolveWith(false, name, mode)
			wst, werr := resolveWith(true, name, mode)
			if kerr != werr || kst.Dev != wst.Dev || kst.Ino != wst.Ino {
				t.Errorf("%v %q: openat2 gives inode %d, %v; the walk inode %d, %v", mode, name, kst.Ino, kerr, wst.Ino, werr)
			}
		}
	}
}
