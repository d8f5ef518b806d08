package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/trace"
)

// An IDMap is one line of a user namespace's uid_map or gid_map
// (user_namespaces(7)): Size IDs from ContainerID inside are HostID and up
// on the host. A snapshot made for a container with a user namespace of its
// own carries its maps, so that its root, which is an unprivileged ID on
// the host, can use the image's files, which host root owns.
type IDMap struct{ ContainerID, HostID, Size int }

// The options of an overlay Mount that are not the kernel's but say how to
// mount it (containerd's spelling): the lower layers must be idmapped mounts
// (mount_setattr(2) MOUNT_ATTR_IDMAP) through a user namespace with these
// maps. Detach does it.
const (
	uidmapOption = "uidmap="
	gidmapOption = "gidmap="
)

// hostID maps id through ms, as the kernel would for a file that a
// process with that ID inside creates; ok is false for an unmapped id.
func hostID(ms []IDMap, id int) (int, bool) {
	for _, m := range ms {
		if id >= m.ContainerID && id < m.ContainerID+m.Size {
			return m.HostID + id - m.ContainerID, true
		}
	}
	return 0, false
}

// formatMaps is the uidmap= / gidmap= value: CONTAINER:HOST:SIZE, comma
// free (it travels inside a comma-separated option list), ';' between lines.
func formatMaps(ms []IDMap) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
	}
	return strings.Join(parts, ";")
}

// chownRoot gives the directories a container writes to its root: for an
// overlay, the upper and work directories (where each write lands, so a
// file the container makes is owned by its mapped uid on the host) and the
// mount point; for a copy, the whole copy, every file's owner moved into
// the range (a "chown'd copy"). DIR itself goes to the mapped root too, so
// that the container's init, an unprivileged user on the host, can reach
// the mount point through it; nobody else can (0700).
func (s *Snapshot) chownRoot(t trace.Tracer) error {
	uid, ok1 := hostID(s.UIDMap, 0)
	gid, ok2 := hostID(s.GIDMap, 0)
	if !ok1 || !ok2 {
		return errors.New("snapshot id maps do not map root (0)")
	}
	if s.Kind == Copy {
		t.Step(stage, fmt.Sprintf("shift the owners of the copy into the container's range (0 -> %d)", uid),
			fmt.Sprintf("find %s -exec chown -h ... (each uid + %d)", s.Rootfs(), uid))
		if err := shiftOwners(s.Rootfs(), s.UIDMap, s.GIDMap); err != nil {
			return fmt.Errorf("chowning the copy: %w", err)
		}
	} else {
		for _, d := range []string{"upper", "work", "rootfs"} {
			p := filepath.Join(s.Dir, d)
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
		}
		t.Step(stage, fmt.Sprintf("upper/ and work/ belong to the container's root, host uid %d", uid),
			fmt.Sprintf("chown %d:%d %s/upper %s/work %s/rootfs", uid, gid, s.Dir, s.Dir, s.Dir))
	}
	return os.Lchown(s.Dir, uid, gid)
}

// shiftOwners moves every file under root into the maps' range. chown(2)
// clears the setuid and setgid bits of a file, so they are set again: a
// setuid-root binary of the image stays setuid to the container's root. An
// ID the maps leave out becomes the overflow ID (65534), as the kernel
// shows unmapped IDs.
func shiftOwners(root string, uids, gids []IDMap) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*unix.Stat_t)
		if !ok {
			var sst unix.Stat_t
			if err := unix.Lstat(p, &sst); err != nil {
				return &os.PathError{Op: "lstat", Path: p, Err: err}
			}
			st = &sst
		}
		uid, ok := hostID(uids, int(st.Uid))
		if !ok {
			uid, _ = hostID(uids, 65534)
		}
		gid, ok := hostID(gids, int(st.Gid))
		if !ok {
			gid, _ = hostID(gids, 65534)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		if mode := info.Mode(); mode.IsRegular() && mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			return os.Chmod(p, mode)
		}
		return nil
	})
}

// IDMapped reports whether m's lower layers must be idmapped mounts, which
// only Detach can make.
func IDMapped(m Mount) bool {
	for _, o := range m.Options {
		if strings.HasPrefix(o, uidmapOption) {
			return true
		}
	}
	return false
}

// Detach makes the overlay m, whose lower layers are idmapped through the
// user namespace userns (an open /proc/PID/ns/user with the maps m names),
// as a detached mount: a mount in no mount namespace (fsmount(2)), which
// vanishes when the returned file closes unless someone attached it
// first. The container's init attaches it on its root with move_mount(2),
// in its own mount namespace: nothing appears on the host.
//
// Only host root can make an idmapped mount of the layers' filesystem,
// and only the overlay's mounter reads the layers' trusted.overlay.*
// attributes (the opaque directories): so the engine, not the init in its
// user namespace, makes the mount. The upper directory is not idmapped: a
// file the container's root makes lands there owned by its host uid.
//
// Each lower layer is cloned (open_tree(2) OPEN_TREE_CLONE) and given
// MOUNT_ATTR_IDMAP and MOUNT_ATTR_RDONLY; overlayfs accepts idmapped
// lower layers since Linux 5.19.
func Detach(m Mount, userns *os.File, t trace.Tracer) (*os.File, error) {
	t = trace.Or(t)
	var lowers []string
	var rest [][2]string
	for _, o := range m.Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			lowers = strings.Split(v, ":")
		case "uidmap", "gidmap":
			// the user namespace's: userns carries them
		default:
			rest = append(rest, [2]string{k, v})
		}
	}
	var clones []*os.File
	defer func() {
		// The overlay holds its own references to the layers now. Closing
		// a detached mount unmounts it, which waits for an RCU grace
		// period (up to milliseconds on a busy host): off the start's path.
		go closeAll(clones)
	}()
	for _, l := range lowers {
		f, err := idmappedClone(l, userns)
		if err != nil {
			return nil, err
		}
		clones = append(clones, f)
	}
	t.Step(stage, fmt.Sprintf("idmap %d lower layers through the container's user namespace (%s)", len(lowers), userns.Name()),
		"mount --bind -o X-mount.idmap="+userns.Name()+",ro LAYER CLONE  # for each layer")
	f, err := fsmountOverlay(m.Source, clones, rest)
	if err != nil {
		return nil, err
	}
	t.Step(stage, "mount the overlay detached (fsopen, fsconfig, fsmount): the init attaches it with move_mount", "")
	return f, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// idmappedClone returns a detached, read-only copy of the mount at dir,
// idmapped through userns.
func idmappedClone(dir string, userns *os.File) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, &os.PathError{Op: "open_tree", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "mount_setattr MOUNT_ATTR_IDMAP", Path: dir, Err: err}
	}
	return f, nil
}

// fsmountOverlay makes the overlay (named source in mountinfo) of the
// lower clones (top first) with the other options (upperdir, workdir) as a
// detached mount. Each clone exists in no directory: overlayfs finds it by
// its descriptor, /proc/self/fd/N. fsconfig(2) takes at most 255 bytes per
// value, and kernels before 6.8 take the lower layers only as one value:
// some 15 such paths. Beyond that the overlay is made on a thread whose
// working directory is /proc/self/fd, where a layer is just "N" (some 80
// of them); beyond that again, one "lowerdir+" per layer (Linux 6.8).
func fsmountOverlay(source string, lowers []*os.File, opts [][2]string) (*os.File, error) {
	fds := make([]string, len(lowers))
	for i, f := range lowers {
		fds[i] = strconv.Itoa(int(f.Fd()))
	}
	abs := "/proc/self/fd/" + strings.Join(fds, ":/proc/self/fd/")
	if len(abs) <= maxFsconfigValue {
		return fsmount(source, []string{"lowerdir", abs}, opts)
	}
	if rel := strings.Join(fds, ":"); len(rel) <= maxFsconfigValue {
		return fsmountIn("/proc/self/fd", source, []string{"lowerdir", rel}, opts)
	}
	var lowerdirs []string
	for _, fd := range fds {
		lowerdirs = append(lowerdirs, "lowerdir+", "/proc/self/fd/"+fd)
	}
	return fsmount(source, lowerdirs, opts)
}

// maxFsconfigValue is the longest string fsconfig(2) takes.
const maxFsconfigValue = 255

// fsmountIn is fsmount on a thread of its own whose working directory is
// dir (unshare(CLONE_FS), so the process's stays), for relative paths. The
// thread is never unlocked: it ends with its goroutine.
func fsmountIn(dir, source string, lowers []string, opts [][2]string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- result{nil, os.NewSyscallError("unshare(CLONE_FS)", err)}
			return
		}
		if err := unix.Chdir(dir); err != nil {
			done <- result{nil, &os.PathError{Op: "chdir", Path: dir, Err: err}}
			return
		}
		f, err := fsmount(source, lowers, opts)
		done <- result{f, err}
	}()
	r := <-done
	return r.f, r.err
}

// fsmount makes an overlay as a detached mount: fsopen, the options
// (lowers as key, value pairs, then opts), FSCONFIG_CMD_CREATE, fsmount.
func fsmount(source string, lowers []string, opts [][2]string) (*os.File, error) {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("fsopen overlay", err)
	}
	defer unix.Close(fsfd)
	params := [][2]string{{"source", source}}
	for i := 0; i+1 < len(lowers); i += 2 {
		params = append(params, [2]string{lowers[i], lowers[i+1]})
	}
	for _, o := range append(params, opts...) {
		var err error
		if o[1] == "" {
			err = unix.FsconfigSetFlag(fsfd, o[0])
		} else {
			err = unix.FsconfigSetString(fsfd, o[0], o[1])
		}
		if err != nil {
			return nil, os.NewSyscallError("fsconfig overlay "+o[0], err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		if lowers[0] == "lowerdir+" {
			return nil, fmt.Errorf("idmapped overlay of %d layers (this many need lowerdir+, Linux 6.8): %w", len(lowers)/2, os.NewSyscallError("fsconfig FSCONFIG_CMD_CREATE", err))
		}
		return nil, os.NewSyscallError("fsconfig overlay FSCONFIG_CMD_CREATE", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fsmount overlay", err)
	}
	return os.NewFile(uintptr(mfd), "overlay"), nil
}

// ProbeIDMap says whether Detach works for snapshots in dir (an existing
// directory) with the user namespace userns, and if not why: it makes a
// tiny idmapped overlay there, which it never attaches anywhere. The engine
// asks once per host and keeps the answer, as for Probe.
func ProbeIDMap(dir string, userns *os.File) (ok bool, reason string) {
	tmp, err := os.MkdirTemp(dir, ".idmap-probe-")
	if err != nil {
		return false, fmt.Sprintf("idmapped mounts unavailable (%v)", err)
	}
	defer os.RemoveAll(tmp)
	lower, upper, work := filepath.Join(tmp, "l"), filepath.Join(tmp, "u"), filepath.Join(tmp, "w")
	for _, d := range []string{lower, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return false, fmt.Sprintf("idmapped mounts unavailable (%v)", err)
		}
	}
	f, err := Detach(Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work}}, userns, nil)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOSYS):
			return false, "idmapped mounts unavailable: the kernel lacks mount_setattr (Linux 5.12) or fsopen"
		case errors.Is(err, unix.EINVAL):
			return false, fmt.Sprintf("idmapped mounts unavailable on this filesystem or kernel (%v)", err)
		}
		return false, fmt.Sprintf("idmapped mounts unavailable (%v)", err)
	}
	f.Close()
	return true, "idmapped overlay layers work in " + dir
}
