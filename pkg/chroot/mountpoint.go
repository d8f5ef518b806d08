package chroot

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/resolve"
)

// mountPoint resolves p inside root as the container will see it, creating
// it when missing (a directory, or an empty file when file is true: a bind
// mount of a file needs a file to cover), and returns its host path.
//
// p is resolved by pkg/resolve in its InRoot mode: symlinks in the rootfs
// are followed as if root were "/", so an absolute link resolves against
// root and ".." never climbs above it. Mounting on the result cannot land
// outside the rootfs, which a plain filepath.Join(root, p) allows when the
// image holds, say, a symlink /data -> /etc (the mount would cover the
// host's /etc). The host path is the kernel's name for the descriptor the
// resolution opened (/proc/self/fd/N), not a string we put together.
//
// Setup mounts on that path afterwards: a second walk. Nothing of the
// container runs yet to change the rootfs in between; runc, which also
// serves rootfs directories that others can write, mounts through
// /proc/self/fd/N instead.
func mountPoint(root, p string, file bool) (string, error) {
	rf, err := resolve.OpenRoot(root)
	if err != nil {
		return "", err
	}
	defer rf.Close()
	f, err := resolve.Open(rf, p, resolve.InRoot, unix.O_PATH, 0)
	if errors.Is(err, unix.ENOENT) {
		f, err = createMountPoint(rf, p, file)
	}
	if err != nil {
		return "", fmt.Errorf("resolving %s in %s: %w", p, root, err)
	}
	defer f.Close()
	return os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
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
