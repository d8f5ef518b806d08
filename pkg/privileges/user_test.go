package privileges

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func testRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "# comment\n" +
			"root:x:0:0:root:/root:/bin/sh\n" +
			"student:x:1000:1000:Student:/home/student:/bin/sh\n" +
			"nohome:x:1001:1001::\n" +
			"broken line\n",
		"etc/group": "root:x:0:root\n" +
			"wheel:x:10:root\n" +
			"student:x:1000:\n" +
			"audio:x:29:other,student\n" +
			"video:x:44:student\n" +
			"staff:x:50:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLookupUser(t *testing.T) {
	root := testRootfs(t)
	for _, tc := range []struct {
		spec string
		want User
	}{
		{"", User{Name: "root", UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root"}},
		{"root", User{Name: "root", UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root"}},
		{"student", User{Name: "student", UID: 1000, GID: 1000, Groups: []int{1000, 29, 44}, Home: "/home/student"}},
		{"1000", User{Name: "student", UID: 1000, GID: 1000, Groups: []int{1000, 29, 44}, Home: "/home/student"}},
		{"student:staff", User{Name: "student", UID: 1000, GID: 50, Groups: []int{50}, Home: "/home/student"}},
		{"1000:44", User{Name: "student", UID: 1000, GID: 44, Groups: []int{44}, Home: "/home/student"}},
		{"student:4242", User{Name: "student", UID: 1000, GID: 4242, Groups: []int{4242}, Home: "/home/student"}},
		{"4242", User{UID: 4242, GID: 0, Groups: []int{0}, Home: "/"}},
		{"4242:4242", User{UID: 4242, GID: 4242, Groups: []int{4242}, Home: "/"}},
		{"nohome", User{Name: "nohome", UID: 1001, GID: 1001, Groups: []int{1001}, Home: "/"}},
	} {
		got, err := LookupUser(root, tc.spec)
		if err != nil {
			t.Errorf("LookupUser(%q): %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("LookupUser(%q) = %+v, want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestLookupUserMissing(t *testing.T) {
	root := testRootfs(t)
	for spec, want := range map[string]string{
		"ghost":         "unable to find user ghost: no matching entries in passwd file",
		"student:ghost": "unable to find group ghost: no matching entries in group file",
	} {
		if _, err := LookupUser(root, spec); err == nil || err.Error() != want {
			t.Errorf("LookupUser(%q) err = %v, want %q", spec, err, want)
		}
	}
}

func TestLookupUserNoFiles(t *testing.T) {
	root := t.TempDir() // an image without /etc, like FROM scratch
	got, err := LookupUser(root, "")
	if err != nil || !reflect.DeepEqual(got, User{Groups: []int{0}, Home: "/"}) {
		t.Errorf("LookupUser(scratch, \"\") = %+v, %v", got, err)
	}
	if _, err := LookupUser(root, "nobody"); err == nil {
		t.Error("a name without a passwd file was accepted")
	}
}

// TestLookupUserSymlinkEscape checks that an image's /etc/passwd symlinked
// to an absolute path is not read from the host.
func TestLookupUserSymlinkEscape(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if u, err := LookupUser(root, "root"); err == nil {
		t.Errorf("read the host's passwd through a symlink: %+v", u)
	}
}

// TestLookupUserPasswdSymlinkInImage: an image whose /etc/passwd and
// /etc/group are absolute symlinks into the image itself (as images that
// keep them in /usr/lib do) works, as in docker: the links are followed
// inside the root filesystem.
func TestLookupUserPasswdSymlinkInImage(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(root, "usr/lib/passwd"), "app:x:4000:4000:App:/srv/app:/bin/sh\n")
	write(t, filepath.Join(root, "usr/lib/group"), "app:x:4000:\nlogs:x:4100:app\n")
	for _, name := range []string{"passwd", "group"} {
		if err := os.Symlink("/usr/lib/"+name, filepath.Join(root, "etc", name)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LookupUser(root, "app")
	if want := (User{Name: "app", UID: 4000, GID: 4000, Groups: []int{4000, 4100}, Home: "/srv/app"}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LookupUser(app) = %+v, %v; want %+v", got, err, want)
	}
}

// TestLookupUserHostFileOutOfReach: symlinks that name a host file,
// absolute or climbing with "..", resolve inside the image, where there is
// no such file: the host's users stay unknown.
func TestLookupUserHostFileOutOfReach(t *testing.T) {
	host := t.TempDir()
	write(t, filepath.Join(host, "passwd"), "hostonly:x:4242:4242::/:/bin/sh\n")
	for _, target := range []string{host + "/passwd", "../../../../../../../../.." + host + "/passwd"} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		want := "unable to find user hostonly: no matching entries in passwd file"
		if u, err := LookupUser(root, "hostonly"); err == nil || err.Error() != want {
			t.Errorf("/etc/passwd -> %s: LookupUser(hostonly) = %+v, %v; want %q", target, u, err, want)
		}
	}
}

// TestLookupUserIDRange: ids are 32 bits and 4294967295 is (uid_t)-1;
// like runc, anything above 2147483647 is refused, naming the value,
// instead of wrapping around (4294967296 would be root).
func TestLookupUserIDRange(t *testing.T) {
	root := testRootfs(t)
	for spec, want := range map[string]string{
		"4294967295":           "uid 4294967295 is out of range (0-2147483647)",
		"4294967296":           "uid 4294967296 is out of range (0-2147483647)",
		"99999999999":          "uid 99999999999 is out of range (0-2147483647)",
		"99999999999999999999": "uid 99999999999999999999 is out of range (0-2147483647)",
		"0:4294967295":         "gid 4294967295 is out of range (0-2147483647)",
		"2147483648":           "uid 2147483648 is out of range (0-2147483647)",
		"student:4294967296":   "gid 4294967296 is out of range (0-2147483647)",
		"4294967296:0":         "uid 4294967296 is out of range (0-2147483647)",
	} {
		if u, err := LookupUser(root, spec); err == nil || err.Error() != want {
			t.Errorf("LookupUser(%q) = %+v, %v; want %q", spec, u, err, want)
		}
	}
	for spec, want := range map[string]User{
		"2147483647":            {UID: 2147483647, GID: 0, Groups: []int{0}, Home: "/"},
		"2147483647:2147483647": {UID: 2147483647, GID: 2147483647, Groups: []int{2147483647}, Home: "/"},
	} {
		if got, err := LookupUser(root, spec); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("LookupUser(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
}

// TestLookupUserIDRangeInFiles: an image's own files can hold ids out of
// range too; they are refused when used, never wrapped.
func TestLookupUserIDRangeInFiles(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "etc/passwd"), "big:x:4294967296:0::/:/bin/sh\nok:x:1000:1000::/:/bin/sh\n")
	write(t, filepath.Join(root, "etc/group"), "huge:x:99999999999:ok\n")
	for spec, want := range map[string]string{
		"big":     "user big in /etc/passwd: uid 4294967296 is out of range (0-2147483647)",
		"ok":      "group huge in /etc/group: gid 99999999999 is out of range (0-2147483647)",
		"ok:huge": "group huge in /etc/group: gid 99999999999 is out of range (0-2147483647)",
	} {
		if u, err := LookupUser(root, spec); err == nil || err.Error() != want {
			t.Errorf("LookupUser(%q) = %+v, %v; want %q", spec, u, err, want)
		}
	}
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLookupUserNonRegularFiles: a link to a device that never ends would
// read without end, and is refused. (A FIFO blocks, as for docker, until
// Ctrl-C: cmd/minictr/cli's run_start_edges relies on it.)
func TestLookupUserNonRegularFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string) error
	}{
		// A zero device of the image's own, linked to as an image would.
		{"device", func(t *testing.T, p string) error {
			if os.Geteuid() != 0 {
				t.Skip("needs root to make a device node")
			}
			dev := filepath.Join(filepath.Dir(filepath.Dir(p)), "dev")
			if err := os.MkdirAll(dev, 0o755); err != nil {
				return err
			}
			if err := unix.Mknod(filepath.Join(dev, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
				return err
			}
			return os.Symlink("/dev/zero", p)
		}},
		{"directory", func(_ *testing.T, p string) error { return os.Mkdir(p, 0o755) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testRootfs(t)
			p := filepath.Join(root, "etc/passwd")
			os.Remove(p)
			if err := tc.make(t, p); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := LookupUser(root, "root"); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "not a regular file") {
					t.Errorf("LookupUser = %v, want a refusal of a non-regular /etc/passwd", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("LookupUser hangs")
			}
		})
	}
}
