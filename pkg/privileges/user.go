package privileges

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/resolve"
)

// MaxID is the largest uid or gid a user can have, as in runc (whose user
// package keeps ids within 31 bits, for 32-bit systems). The kernel takes
// 32 bits: setresuid(4294967296) is setresuid(0), and 4294967295,
// (uid_t)-1, means "leave unchanged", so either would keep the process
// root; anything above MaxID is refused.
const MaxID = 1<<31 - 1

// A User is who the container's process runs as.
type User struct {
	Name     string // "" when a numeric uid has no passwd entry
	UID, GID int
	Groups   []int // supplementary groups
	Home     string
}

// LookupUser resolves a docker --user spec against the image's own
// /etc/passwd and /etc/group under rootfs (os/user would read the host's).
// spec is "" (root), "name", "uid", and either followed by ":group" or
// ":gid". As in docker, a numeric uid or gid need not exist in the files (a
// missing uid gets gid 0), a name must. Supplementary groups are the groups
// that list the user by name, and only when no group was given; the primary
// group always leads the list, as in docker and containerd since
// CVE-2023-25173 (without it, a file's group-deny permission could be
// bypassed by a process whose primary group changes).
//
// A uid or gid out of 0-MaxID, given or read from the files, is an error.
//
// The files are opened as the container would open them, with pkg/resolve's
// InRoot mode (openat2 RESOLVE_IN_ROOT): an /etc/passwd that is a symlink
// to /usr/lib/passwd reads the image's /usr/lib/passwd, as in docker, and
// no symlink can make us read a host file.
func LookupUser(rootfs, spec string) (User, error) {
	if strings.ContainsFunc(spec, unicode.IsControl) {
		return User{}, fmt.Errorf("invalid user %q: it contains a control character", spec)
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	if _, _, err := numericID("uid", userPart); err != nil {
		return User{}, err
	}
	if _, _, err := numericID("gid", groupPart); hasGroup && err != nil {
		return User{}, err
	}
	root, err := resolve.OpenRoot(rootfs)
	if err != nil {
		return User{}, err
	}
	defer root.Close()
	users, err := readEntries(root, "etc/passwd")
	if err != nil {
		return User{}, err
	}
	groups, err := readEntries(root, "etc/group")
	if err != nil {
		return User{}, err
	}
	u, err := findUser(users, userPart)
	if err != nil {
		return User{}, err
	}
	if hasGroup {
		if u.GID, err = findGroup(groups, groupPart); err != nil {
			return User{}, err
		}
	}
	u.Groups = []int{u.GID}
	if !hasGroup && u.Name != "" {
		for _, g := range groups {
			if len(g) >= 4 && slices.Contains(strings.Split(g[3], ","), u.Name) {
				gid, ok, err := numericID("gid", g[2])
				if err != nil {
					return User{}, fmt.Errorf("group %s in /etc/group: %w", g[0], err)
				}
				if ok && !slices.Contains(u.Groups, gid) {
					u.Groups = append(u.Groups, gid)
				}
			}
		}
	}
	return u, nil
}

// findUser looks spec up by name or by uid in passwd entries
// (name:password:uid:gid:gecos:home:shell).
func findUser(users [][]string, spec string) (User, error) {
	for _, e := range users {
		if len(e) < 4 || (e[0] != spec && e[2] != spec) {
			continue
		}
		uid, ok1, err1 := numericID("uid", e[2])
		gid, ok2, err2 := numericID("gid", e[3])
		if err := errors.Join(err1, err2); err != nil {
			return User{}, fmt.Errorf("user %s in /etc/passwd: %w", e[0], err)
		}
		if !ok1 || !ok2 {
			continue
		}
		u := User{Name: e[0], UID: uid, GID: gid, Home: "/"}
		if len(e) >= 6 && e[5] != "" {
			u.Home = e[5]
		}
		return u, nil
	}
	if uid, ok, _ := numericID("uid", spec); ok { // range checked by LookupUser
		return User{UID: uid, Home: "/"}, nil
	}
	return User{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", spec)
}

// findGroup looks spec up by name or gid in group entries
// (name:password:gid:members).
func findGroup(groups [][]string, spec string) (int, error) {
	for _, e := range groups {
		if len(e) >= 3 && (e[0] == spec || e[2] == spec) {
			gid, ok, err := numericID("gid", e[2])
			if err != nil {
				return 0, fmt.Errorf("group %s in /etc/group: %w", e[0], err)
			}
			if ok {
				return gid, nil
			}
		}
	}
	if gid, ok, _ := numericID("gid", spec); ok { // range checked by LookupUser
		return gid, nil
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", spec)
}

// numericID reads s as a uid or gid (kind names which, for the error). ok
// is false when s is not a number, so a name; a number outside 0-MaxID is
// an error naming it.
func numericID(kind, s string) (id int, ok bool, err error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > MaxID {
		return 0, true, fmt.Errorf("%s %s is out of range (0-%d)", kind, s, uint64(MaxID))
	}
	return int(n), true, nil
}

// maxUserFile bounds what is read of /etc/passwd and /etc/group.
const maxUserFile = 16 << 20

// openUserFile opens /etc/passwd or /etc/group of the image: a regular
// file (read up to maxUserFile: a link to /dev/urandom never ends), or a
// FIFO, which blocks until a writer comes, as it does for runc and docker;
// a start stuck on one ends with Ctrl-C (run_start_edges proves it). A
// device, socket or directory is refused. O_NONBLOCK lets the first open
// look without blocking; a FIFO is then opened again to be read.
func openUserFile(root *os.File, name string) (*os.File, error) {
	f, err := resolve.Open(root, name, resolve.InRoot, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
		f.Close()
		return nil, err
	case fi.Mode().IsRegular():
		return f, nil
	case fi.Mode()&fs.ModeNamedPipe != 0:
		f.Close()
		return resolve.Open(root, name, resolve.InRoot, unix.O_RDONLY, 0)
	}
	f.Close()
	return nil, errors.New("not a regular file")
}

// readEntries splits each line of a colon-separated file into fields,
// skipping blank and comment lines. A missing file has no entries.
func readEntries(root *os.File, name string) ([][]string, error) {
	f, err := openUserFile(root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading /%s of the image: %w", name, err)
	}
	defer f.Close()
	var entries [][]string
	sc := bufio.NewScanner(io.LimitReader(f, maxUserFile))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		entries = append(entries, strings.Split(line, ":"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /%s of the image: %w", name, err)
	}
	return entries, nil
}
