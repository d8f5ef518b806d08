package chroot

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/resolve"
)

// A Device is a host device node to make in the container, as docker's
// --device asks. The engine lets the container open it (a device cgroup
// rule); this only makes the node.
type Device struct {
	Path     string `json:"path"`     // inside the container: "/dev/fuse", or anywhere, as in docker
	HostPath string `json:"hostPath"` // the host's node, bound where mknod(2) is refused
	// Mode is the node's st_mode, as mknod(2) takes it: S_IFCHR or
	// S_IFBLK, and the permission bits.
	Mode         uint32 `json:"mode"`
	Major, Minor uint32
	UID, GID     uint32 // the node's owner
}

// makeDevices makes each of cfg.Devices, after the volumes (as runc
// does, so that a device may land in a volume) and before pivot_root (a
// bind needs the host's node in sight).
func (s *setup) makeDevices() error {
	for _, d := range s.cfg.Devices {
		if err := s.makeNode(d); err != nil {
			return fmt.Errorf("%s (from %s): %w", d.Path, d.HostPath, err)
		}
	}
	return nil
}

// makeNode mknods d where the container will see it: the path resolves in
// the root (pkg/resolve's InRoot mode, symlinks and ".." included), its
// directories are made when missing, and the node gets the host node's
// mode and owner. Where mknod is refused (EPERM: a user namespace) or a
// file is there already (a default node such as /dev/null, or the image's
// own file), the host's node is bind-mounted there instead, as runc does:
// either way the container finds d at d.Path. As in the rest of Setup, the
// node is reached from descriptors only (see fd.go).
func (s *setup) makeNode(d Device) error {
	dir, err := resolve.MkdirAll(s.rootfs, path.Dir(d.Path), resolve.InRoot, 0o755)
	if err != nil {
		return err
	}
	defer dir.Close()
	// The host's name of the node, for traces and errors, as the other
	// steps before pivot_root name what they make.
	where, err := os.Readlink(fdPath(dir))
	if err != nil {
		return err
	}
	name := path.Base(d.Path)
	where = path.Join(where, name)
	kind, ifmt := "c", "S_IFCHR"
	if d.Mode&unix.S_IFMT == unix.S_IFBLK {
		kind, ifmt = "b", "S_IFBLK"
	}
	rdev := unix.Mkdev(d.Major, d.Minor)
	err = unix.Mknodat(int(dir.Fd()), name, d.Mode, int(rdev))
	switch {
	case err == nil:
		s.t.Step(stage, fmt.Sprintf("mknodat(%s's fd, %q, %s|%#o, makedev(%d, %d)), chown(%d, %d)", path.Dir(where), name, ifmt, d.Mode&0o7777, d.Major, d.Minor, d.UID, d.GID),
			fmt.Sprintf("mknod -m %o %s %s %d %d && chown %d:%d %s", d.Mode&0o7777, where, kind, d.Major, d.Minor, d.UID, d.GID, where))
		s.at("mknod " + name)
		return s.ownNode(dir, name, where, d, rdev)
	case errors.Is(err, unix.EPERM):
		s.t.Step(stage, "mknod "+where+" refused (EPERM, user namespace): bind-mount the host's node", "")
	case errors.Is(err, unix.EEXIST):
		s.t.Step(stage, where+" exists: bind-mount the host's node over it", "")
	default:
		return &os.PathError{Op: "mknodat", Path: where, Err: err}
	}
	target, err := mountPoint(s.rootfs, d.Path, true)
	if err != nil {
		return err
	}
	defer target.Close()
	return s.mount(d.HostPath, target, "", unix.MS_BIND, "")
}

// ownNode gives the node just made the host node's mode (mknod applied the
// umask) and owner. As chmodDevice does, and for its reasons, it opens the
// node O_PATH|O_NOFOLLOW, checks it is the device just made, and changes
// that inode only: chmod through /proc/self/fd/N, fchownat(AT_EMPTY_PATH).
func (s *setup) ownNode(dir *os.File, name, where string, d Device, rdev uint64) error {
	f, err := openPath(dir, name, 0, where)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: where, Err: err}
	}
	if st.Mode&unix.S_IFMT != d.Mode&unix.S_IFMT || st.Rdev != rdev {
		return fmt.Errorf("%s: not the device just made (mode %o): %w", where, st.Mode, errRedirected)
	}
	if err := unix.Chmod(fdPath(f), d.Mode&0o7777); err != nil {
		return &os.PathError{Op: "chmod", Path: where, Err: err}
	}
	if err := unix.Fchownat(int(f.Fd()), "", int(d.UID), int(d.GID), unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "chown", Path: where, Err: err}
	}
	return nil
}
