package chroot

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/resolve"
)

// mountPoint resolves p inside the rootfs root as the container will see
// it, creating it when missing (a directory, or an empty file when file is
// true: a bind mount of a file needs a file to cover), and returns it open
// (O_PATH), for a mount onto /proc/self/fd/N. The caller closes it once the
// mount is done: until then the descriptor pins what the mount will cover.
//
// p is resolved by pkg/resolve in its InRoot mode: symlinks in the rootfs
// are followed as if root were "/", so an absolute link resolves against
// root and ".." never climbs above it. Mounting on the result cannot land
// outside the rootfs, which a plain filepath.Join(root, p) allows when the
// image holds, say, a symlink /data -> /etc (the mount would cover the
// host's /etc). Nor can a rename after the resolution move the mount: it
// goes where the descriptor points, not where the name leads by then. The
// file is named by the kernel's name for it (/proc/self/fd/N's target),
// for traces and errors.
func mountPoint(root *os.File, p string, file bool) (*os.File, error) {
	f, err := resolve.Open(root, p, resolve.InRoot, unix.O_PATH, 0)
	if errors.Is(err, unix.ENOENT) {
		f, err = createMountPoint(root, p, file)
	}
	if err != nil {
		return nil, fmt.Errorf("resolving %s in %s: %w", p, root.Name(), err)
	}
	name, err := os.Readlink(fdPath(f))
	if err != nil {
		f.Close()
		return nil, err
	}
	return renamed(f, name)
}

// renamed returns f under another name (for traces and errors): a
// duplicate of its descriptor, f itself closed.
func renamed(f *os.File, name string) (*os.File, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// createMountPoint makes the missing mount point p: its directories with
// resolve.MkdirAll, a file with O_CREAT, which through a dangling symlink
// creates the file the link names, inside the root (the directory it names
// must exist: O_CREAT makes none).
func createMountPoint(rf *os.File, p string, file bool) (*os.File, error) {
	if !file {
		return resolve.MkdirAll(rf, p, resolve.InRoot, 0o755)
	}
	dir, err := resolve.MkdirAll(rf, path.Dir(p), resolve.InRoot, 0o755)
	if err != nil {
		return nil, err
	}
	dir.Close()
	return resolve.Open(rf, p, resolve.InRoot, unix.O_CREAT|unix.O_WRONLY, 0o644)
}
