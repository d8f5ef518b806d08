package privileges

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
