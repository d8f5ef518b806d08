package privileges

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// maxID is the largest uid or gid a container may get, as in runc: above
// it (or below 0) setresuid(2) would take the value modulo 2^32 or as
// "leave unchanged" (-1), and the process would stay root.
const maxID = 1<<31 - 1

// FuzzLookupUser feeds an image's /etc/passwd and /etc/group and a -u spec
// to LookupUser. What it resolves is a user the kernel takes as given:
// uid, gid and every group within 0..2^31-1; the primary group first and
// no group twice; a home directory. A named user is a passwd entry with
// that name and uid (checked here by hand); an unnamed one is the number
// the spec gave. Errors are one line.
func FuzzLookupUser(f *testing.F) {
	passwd := "root:x:0:0:root:/root:/bin/sh\nstudent:x:1000:1000:Student:/home/student:/bin/sh\n# c\nbroken\n"
	group := "root:x:0:root\naudio:x:29:student\nstudent:x:1000:\n"
	for _, s := range []struct{ passwd, group, spec string }{
		{passwd, group, ""}, {passwd, group, "student"}, {passwd, group, "1000:29"}, {passwd, group, "4242"},
		{passwd, group, "student:audio"}, {passwd, group, "ghost"}, {passwd, group, "0:ghost"},
		{passwd, group, "4294967296"}, {passwd, group, "0:4294967296"}, {passwd, group, "-1"}, {passwd, group, "+5"},
		{"neg:x:-1:-1::/:/bin/sh\n", "", "neg"}, {"big:x:4294967296:0::/:/bin/sh\n", "", "big"},
		{"u:x:5:5::/:/bin/sh\n", "g:x:99999999999:u\n", "u"}, {"", "", "ghost\nsecond line"},
		{"a:b:c\n::0:0\n", "::\n", ":"}, {"\x00:x:0:0\n", "", "\x00"},
	} {
		f.Add([]byte(s.passwd), []byte(s.group), s.spec)
	}
	f.Fuzz(func(t *testing.T, passwd, group []byte, spec string) {
		root := t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{"passwd": passwd, "group": group} {
			if err := os.WriteFile(filepath.Join(root, "etc", name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		u, err := LookupUser(root, spec)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error of more than one line: %q", err)
			}
			return
		}
		for what, id := range map[string]int{"uid": u.UID, "gid": u.GID} {
			if id < 0 || id > maxID {
				t.Errorf("LookupUser(%q) gave %s %d", spec, what, id)
			}
		}
		if len(u.Groups) == 0 || u.Groups[0] != u.GID {
			t.Errorf("LookupUser(%q): groups %v do not begin with gid %d", spec, u.Groups, u.GID)
		}
		for i, g := range u.Groups {
			if g < 0 || g > maxID || slices.Contains(u.Groups[:i], g) {
				t.Errorf("LookupUser(%q): groups %v", spec, u.Groups)
			}
		}
		if u.Home == "" {
			t.Errorf("LookupUser(%q): no home", spec)
		}
		userPart, _, _ := strings.Cut(spec, ":")
		if u.Name == "" {
			if n, err := strconv.Atoi(userPart); userPart != "" && (err != nil || n != u.UID) {
				t.Errorf("LookupUser(%q) = unnamed uid %d, not the number asked for", spec, u.UID)
			}
			return
		}
		found := false
		for _, line := range strings.Split(string(passwd), "\n") {
			fields := strings.Split(strings.TrimSpace(line), ":")
			if len(fields) >= 4 && fields[0] == u.Name {
				if uid, err := strconv.Atoi(fields[2]); err == nil && uid == u.UID { // "00" is uid 0, as for runc
					found = true
				}
			}
		}
		if !found {
			t.Errorf("LookupUser(%q) = %q uid %d: no such passwd entry", spec, u.Name, u.UID)
		}
	})
}
