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
// either way the container finds d at d.Path.
func (s *setup) makeNode(d Device) error {
	rf, err := resolve.OpenRoot(s.root)
	if err != nil {
		return err
	}
	defer rf.Close()
	dir, err := resolve.MkdirAll(rf, path.Dir(d.Path), resolve.InRoot, 0o755)
	if err != nil {
		return err
	}
	defer dir.Close()
	dfd, name := int(dir.Fd()), path.Base(d.Path)
	kind, ifmt := "c", "S_IFCHR"
	if d.Mode&unix.S_IFMT == unix.S_IFBLK {
		kind, ifmt = "b", "S_IFBLK"
	}
	err = unix.Mknodat(dfd, name, d.Mode, int(unix.Mkdev(d.Major, d.Minor)))
	switch {
	case err == nil:
		// mknod applies the umask: set the host node's bits again.
		if err := unix.Fchmodat(dfd, name, d.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: d.Path, Err: err}
		}
		if err := unix.Fchownat(dfd, name, int(d.UID), int(d.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "chown", Path: d.Path, Err: err}
		}
		// Traced with the host's name of the node, as the other steps
		// before pivot_root are.
		where, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", dfd))
		where = path.Join(where, name)
		s.t.Step(stage, fmt.Sprintf("mknod(%q, %s|%#o, makedev(%d, %d)), chown(%d, %d)", where, ifmt, d.Mode&0o7777, d.Major, d.Minor, d.UID, d.GID),
			fmt.Sprintf("mknod -m %o %s %s %d %d && chown %d:%d %s", d.Mode&0o7777, where, kind, d.Major, d.Minor, d.UID, d.GID, where))
		return nil
	case errors.Is(err, unix.EPERM):
		s.t.Step(stage, "mknod "+d.Path+" refused (EPERM, user namespace): bind-mount the host's node", "")
	case errors.Is(err, unix.EEXIST):
		s.t.Step(stage, d.Path+" exists: bind-mount the host's node over it", "")
	default:
		return &os.PathError{Op: "mknod", Path: d.Path, Err: err}
	}
	target, err := mountPoint(s.root, d.Path, true)
	if err != nil {
		return err
	}
	return s.mount(d.HostPath, target, "", unix.MS_BIND, "")
}
