package privileges

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

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
// The files are opened with os.OpenInRoot, so a symlinked /etc/passwd in an
// image cannot make us read a host file.
func LookupUser(rootfs, spec string) (User, error) {
	if strings.ContainsFunc(spec, unicode.IsControl) {
		return User{}, fmt.Errorf("invalid user %q: it contains a control character", spec)
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	users, err := readEntries(rootfs, "etc/passwd")
	if err != nil {
		return User{}, err
	}
	groups, err := readEntries(rootfs, "etc/group")
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
				if gid, err := strconv.Atoi(g[2]); err == nil && !slices.Contains(u.Groups, gid) {
					u.Groups = append(u.Groups, gid)
				}
			}
		}
	}
	if err := checkIDs(spec, u); err != nil {
		return User{}, err
	}
	return u, nil
}

// MaxID is the largest uid or gid a container's process may get, as in
// runc. The kernel takes 32 bits: setresuid(4294967296) is setresuid(0),
// and -1 means "leave unchanged", so either would keep the process root.
const MaxID = 1<<31 - 1

func checkIDs(spec string, u User) error {
	for _, id := range append([]int{u.UID}, u.Groups...) { // Groups[0] is the gid
		if id < 0 || id > MaxID {
			return fmt.Errorf("invalid user %q: uid or gid %d is out of the range 0-%d", spec, id, MaxID)
		}
	}
	return nil
}

// findUser looks spec up by name or by uid in passwd entries
// (name:password:uid:gid:gecos:home:shell).
func findUser(users [][]string, spec string) (User, error) {
	for _, e := range users {
		if len(e) < 4 || (e[0] != spec && e[2] != spec) {
			continue
		}
		uid, err1 := strconv.Atoi(e[2])
		gid, err2 := strconv.Atoi(e[3])
		if err1 != nil || err2 != nil {
			continue
		}
		u := User{Name: e[0], UID: uid, GID: gid, Home: "/"}
		if len(e) >= 6 && e[5] != "" {
			u.Home = e[5]
		}
		return u, nil
	}
	if uid, err := strconv.Atoi(spec); err == nil && uid >= 0 {
		return User{UID: uid, Home: "/"}, nil
	}
	return User{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", spec)
}

// findGroup looks spec up by name or gid in group entries
// (name:password:gid:members).
func findGroup(groups [][]string, spec string) (int, error) {
	for _, e := range groups {
		if len(e) >= 3 && (e[0] == spec || e[2] == spec) {
			if gid, err := strconv.Atoi(e[2]); err == nil {
				return gid, nil
			}
		}
	}
	if gid, err := strconv.Atoi(spec); err == nil && gid >= 0 {
		return gid, nil
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", spec)
}

// readEntries splits each line of a colon-separated file into fields,
// skipping blank and comment lines. A missing file has no entries.
func readEntries(rootfs, name string) ([][]string, error) {
	f, err := os.OpenInRoot(rootfs, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading /%s of the image: %w", name, err)
	}
	defer f.Close()
	var entries [][]string
	sc := bufio.NewScanner(f)
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
