package container

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/chroot"
	"github.com/minictr/minictr/pkg/namespaces"
	"github.com/minictr/minictr/pkg/snapshot"
	"github.com/minictr/minictr/pkg/trace"
)

// The user namespace modes of Spec.UserNS.
const (
	// UserNSHost (or "") keeps the host's user namespace, as docker does by
	// default: root in the container is root on the host, held back by
	// capabilities, seccomp and the other walls.
	UserNSHost = "host"
	// UserNSAuto gives the container a user namespace of its own in which
	// root is an unprivileged ID on the host: podman's --userns=auto. The
	// engine takes a free range of UserNSSize IDs from the subordinate
	// ranges that /etc/subuid and /etc/subgid give the user SubIDUser, one
	// range per running container.
	UserNSAuto = "auto"
)

// SubIDUser is the name whose lines in /etc/subuid and /etc/subgid hold the
// IDs --userns=auto hands out (podman's is "containers", docker's
// "dockremap"); it needs no /etc/passwd entry.
const SubIDUser = "minictr"

// UserNSSize is how many IDs each container gets: 0..65535 inside, every
// ID an image may use.
const UserNSSize = 65536

// DefaultSubUIDFile and DefaultSubGIDFile are where the ranges are
// (subuid(5), subgid(5)); RunOptions can name others.
const (
	DefaultSubUIDFile = "/etc/subuid"
	DefaultSubGIDFile = "/etc/subgid"
)

// idRange is one subordinate range: Size IDs from Start.
type idRange struct{ Start, Size int }

// usernsRecord is the range a container holds, in its state record: the
// record is the allocation, so it goes when the container's state does
// (Run's undo, or Reap for a container whose engine died).
type usernsRecord struct {
	UID  int `json:"uid"` // host uid of the container's root
	GID  int `json:"gid"`
	Size int `json:"size"`
}

func (u *usernsRecord) uidMap() []namespaces.IDMap {
	return []namespaces.IDMap{{ContainerID: 0, HostID: u.UID, Size: u.Size}}
}

func (u *usernsRecord) gidMap() []namespaces.IDMap {
	return []namespaces.IDMap{{ContainerID: 0, HostID: u.GID, Size: u.Size}}
}

// checkUserNS refuses a mode that is not known, and --privileged with a
// user namespace, as docker does: privileged means the host's root.
func (s *Spec) checkUserNS() error {
	switch s.UserNS {
	case "", UserNSHost:
		return nil
	case UserNSAuto:
		if s.Privileged {
			return fmt.Errorf("%w: --privileged needs --userns=host (a privileged container is the host's root)", ErrInvalidSpec)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown --userns %q (want host or auto)", ErrInvalidSpec, s.UserNS)
}

// readSubIDs returns user's ranges in a subuid(5)-format file: lines
// NAME:START:COUNT. A range that would reach the host's ID 0 is refused:
// it would make the container's root the host's.
func readSubIDs(path, user string) ([]idRange, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rs []idRange
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		if fields[0] != user {
			continue
		}
		var start, size int
		var err1, err2 error = errBadLine, nil
		if len(fields) == 3 {
			start, err1 = strconv.Atoi(fields[1])
			size, err2 = strconv.Atoi(fields[2])
		}
		if err1 != nil || err2 != nil || start < 0 || size <= 0 || start > 1<<32-1-size {
			return nil, fmt.Errorf("%s line %d: %q is not NAME:START:COUNT", path, n, line)
		}
		if start == 0 {
			return nil, fmt.Errorf("%s line %d: the range of %q starts at 0, which would make the container's root the host's", path, n, user)
		}
		rs = append(rs, idRange{start, size})
	}
	return rs, sc.Err()
}

var errBadLine = errors.New("not NAME:START:COUNT")

// blocks cuts the ranges into the UserNSSize pieces containers get.
func blocks(rs []idRange) []int {
	var starts []int
	for _, r := range rs {
		for s := r.Start; s+UserNSSize <= r.Start+r.Size; s += UserNSSize {
			starts = append(starts, s)
		}
	}
	return starts
}

// subIDBlocks reads the blocks of one file, with the one-line errors a
// user can act on.
func subIDBlocks(path string) ([]int, error) {
	rs, err := readSubIDs(path, SubIDUser)
	if err != nil {
		return nil, fmt.Errorf("--userns=auto: %w", err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("--userns=auto: %s has no range for %q (add a line such as %s:100000:%d)", path, SubIDUser, SubIDUser, 10*UserNSSize)
	}
	bs := blocks(rs)
	if len(bs) == 0 {
		total := 0
		for _, r := range rs {
			total += r.Size
		}
		return nil, fmt.Errorf("--userns=auto: the ranges of %q in %s are too small: a container needs %d IDs in one range, the largest holds %d", SubIDUser, path, UserNSSize, largest(rs))
	}
	return bs, nil
}

func largest(rs []idRange) int {
	m := 0
	for _, r := range rs {
		m = max(m, r.Size)
	}
	return m
}

// allocateUserNS is the start step that gives an --userns=auto container
// its range: under an exclusive lock on <run-root>/userns.lock, it reads
// the ranges the live containers' records hold and writes the first free
// one into this container's record, so that two concurrent starts never
// take the same. A container whose engine died holds nothing: its
// processes died with that engine (their parent-death signal), and Reap
// removes its record.
func (r *run) allocateUserNS() error {
	if r.o.Spec.UserNS != UserNSAuto {
		return nil
	}
	uidFile, gidFile := or(r.o.SubUIDFile, DefaultSubUIDFile), or(r.o.SubGIDFile, DefaultSubGIDFile)
	uids, err := subIDBlocks(uidFile)
	if err != nil {
		return &StartError{Code: 125, Err: err}
	}
	gids, err := subIDBlocks(gidFile)
	if err != nil {
		return &StartError{Code: 125, Err: err}
	}
	unlock, err := lockFile(filepath.Join(r.o.RunRoot, "userns.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	usedUIDs, usedGIDs := map[int]bool{}, map[int]bool{}
	parent := filepath.Join(r.o.RunRoot, "containers")
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == r.id || strings.HasPrefix(e.Name(), ".") {
			continue // ours; a record being written (no range yet) or removed (no process)
		}
		s, err := readState(filepath.Join(parent, e.Name()))
		if err != nil || s.UserNS == nil || !held(filepath.Join(parent, e.Name())) {
			continue
		}
		usedUIDs[s.UserNS.UID], usedGIDs[s.UserNS.GID] = true, true
	}
	uid, ok1 := firstFree(uids, usedUIDs)
	gid, ok2 := firstFree(gids, usedGIDs)
	if !ok1 || !ok2 {
		return &StartError{Code: 125, Err: fmt.Errorf("--userns=auto: all %d ranges of %d IDs for %q in %s and %s are in use by running containers", min(len(uids), len(gids)), UserNSSize, SubIDUser, uidFile, gidFile)}
	}
	r.st.UserNS = &usernsRecord{UID: uid, GID: gid, Size: UserNSSize}
	if err := rewriteLiveState(filepath.Join(parent, r.id), r.st); err != nil {
		return err
	}
	r.t.Step("engine", fmt.Sprintf("user namespace: container IDs 0-%d are host uids %d-%d and gids %d-%d (from %s and %s), recorded in the container's state",
		UserNSSize-1, uid, uid+UserNSSize-1, gid, gid+UserNSSize-1, uidFile, gidFile), "grep "+SubIDUser+" "+uidFile+" "+gidFile)
	return nil
}

// rewriteLiveState replaces state.json by rename, as writeState does, but
// without its fsync: the run root is live state that a reboot forgets (as
// createState's first record), and this write sits under the lock every
// --userns=auto start waits for.
func rewriteLiveState(dir string, s state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".state.json.userns")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

func firstFree(starts []int, used map[int]bool) (int, bool) {
	for _, s := range starts {
		if !used[s] {
			return s, true
		}
	}
	return 0, false
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// lockFile takes an exclusive flock(2) on path, creating it; the returned
// function releases it.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// userNamespace adds the container's user namespace, if it has one, to the
// init's namespaces: the init is then root inside, an unprivileged uid on
// the host.
func (r *run) userNamespace(cfg *namespaces.Config) {
	u := r.st.UserNS
	if u == nil {
		return
	}
	cfg.Namespaces = append(cfg.Namespaces[:len(cfg.Namespaces):len(cfg.Namespaces)], namespaces.User)
	cfg.UIDMappings, cfg.GIDMappings = u.uidMap(), u.gidMap()
}

// snapshotIDMaps are the container's maps for the snapshot stage (the
// stages share no types).
func (u *usernsRecord) snapshotIDMaps() (uids, gids []snapshot.IDMap) {
	return []snapshot.IDMap{{ContainerID: 0, HostID: u.UID, Size: u.Size}},
		[]snapshot.IDMap{{ContainerID: 0, HostID: u.GID, Size: u.Size}}
}

// userNSSnapshot completes the snapshot options of a container with a user
// namespace: its maps, and the kind. The image's layers belong to host
// root; the container's root must see them as its own. Where the kernel
// makes idmapped mounts of the layers' filesystem, the overlay stays (its
// layers idmapped: nothing is copied, the start costs a few system calls);
// elsewhere each container gets a chown'd copy, slow and big, as a copy
// snapshot is anyway.
func (r *run) userNSSnapshot(o *snapshot.Options, facts snapshotFacts) error {
	u := r.st.UserNS
	if u == nil {
		return nil
	}
	o.UIDMap, o.GIDMap = u.snapshotIDMaps()
	if o.Kind == snapshot.Overlay && !facts.IDMap {
		o.Kind, o.Reason = snapshot.Copy, facts.IDMapReason
	}
	return r.reachableByRoot(filepath.Join(r.o.Root, "containers"), true)
}

// reachableByRoot checks that the container's root, an unprivileged uid on
// the host, can walk down to dir, which its init must reach to mount the
// root filesystem there. minictr's own directories (own) get o+x, as
// docker's root directory does under userns-remap (0711): entering, not
// listing, and each container's directory is 0700 and its root's. Another
// directory on the way that shuts it out is an error naming it.
func (r *run) reachableByRoot(dir string, own bool) error {
	u := r.st.UserNS
	if own {
		for _, d := range []string{r.o.Root, dir} {
			fi, err := os.Stat(d)
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
					return err
				}
			}
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return &os.PathError{Op: "stat", Path: p, Err: err}
		}
		mode := st.Mode & 0o777
		ok := mode&0o001 != 0 || int(st.Uid) == u.UID && mode&0o100 != 0 || int(st.Gid) == u.GID && mode&0o010 != 0
		if !ok {
			return &StartError{Code: 125, Err: fmt.Errorf("--userns=auto: the container's root (host uid %d) cannot enter %s (mode %04o, owner %d): give it o+x to run %s", u.UID, p, mode, st.Uid, abs)}
		}
		if p == "/" {
			return nil
		}
	}
}

// idmapRoot is the start step that makes an --userns=auto container's
// overlay, once its init (and so its user namespace) exists: the layers
// idmapped through that namespace, the overlay a detached mount that goes
// to the init with its spec and that the init attaches on its root.
func (r *run) idmapRoot() error {
	if r.st.UserNS == nil || r.snap == nil {
		return nil
	}
	for i, m := range r.snap.Mounts() {
		if !snapshot.IDMapped(m) {
			continue
		}
		userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", r.child.Pid))
		if err != nil {
			return err
		}
		f, err := snapshot.Detach(m, userns, r.t)
		userns.Close()
		if err != nil {
			return err
		}
		r.files = append(r.files, f)
		r.undo.push(r.closeFiles)
		r.init.Mounts[i] = chroot.Mount{Source: m.Source, Target: "/", Type: m.Type}
		r.init.FileMounts = append(r.init.FileMounts, i)
	}
	return nil
}

// closeFiles closes the engine's copies of the files sent to the init:
// once the init holds them (or is gone) the engine must not keep the
// container's root mount alive. It is idempotent.
func (r *run) closeFiles() error {
	for _, f := range r.files {
		f.Close()
	}
	r.files = nil
	return nil
}

// receiveMounts gives the mounts the engine sent as files (idmapRoot) their
// descriptors, in the order they came.
func (s *initSpec) receiveMounts(files []*os.File) error {
	if len(files) != len(s.FileMounts) {
		return fmt.Errorf("the engine sent %d mounts, the spec names %d", len(files), len(s.FileMounts))
	}
	for i, idx := range s.FileMounts {
		if idx < 0 || idx >= len(s.Mounts) {
			return fmt.Errorf("the spec's mount %d does not exist", idx)
		}
		s.Mounts[idx].FD = int(files[i].Fd())
	}
	return nil
}

// probeIDMap asks once per host and boot (kept with the snapshot facts)
// whether idmapped overlay layers work in the snapshots' directory. It
// needs a user namespace to idmap through: that of a throwaway init, which
// is killed before it runs anything.
func probeIDMap(dir string, u *usernsRecord, t trace.Tracer) (bool, string, error) {
	child, err := namespaces.Start(namespaces.Config{
		Args:        []string{"minictr", initArg},
		Env:         []string{initEnv},
		Namespaces:  []namespaces.Kind{namespaces.User},
		UIDMappings: u.uidMap(),
		GIDMappings: u.gidMap(),
	})
	if err != nil {
		return false, "", err
	}
	defer func() {
		_ = child.Signal(unix.SIGKILL)
		_, _ = child.Wait()
	}()
	userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", child.Pid))
	if err != nil {
		return false, "", err
	}
	defer userns.Close()
	ok, reason := snapshot.ProbeIDMap(dir, userns)
	t.Step("engine", "probe idmapped overlay layers in "+dir+": "+reason, "")
	return ok, reason, nil
}

// rootfsReachable checks, for a --rootfs container with a user namespace,
// that its root can reach the directory. The directory is used as it is,
// not idmapped: its files keep their owners, and those the range does not
// map (host root's) are nobody's inside (65534): readable if the mode lets
// others read, never writable by the container's root.
func (r *run) rootfsReachable() error {
	if r.st.UserNS == nil {
		return nil
	}
	return r.reachableByRoot(r.o.Spec.Rootfs, false)
}
