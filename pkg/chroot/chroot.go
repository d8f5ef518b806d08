package chroot

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/trace"
)

const stage = "chroot"

// PivotRoot makes the directory newroot holds the root mount of the calling
// process's mount namespace and detaches the old root, so that no path
// leads back to the host. newroot must be the root of a mount (Setup
// bind-mounts the rootfs onto itself) in a mount namespace whose mounts are
// not shared with the host.
//
// It takes a descriptor, not a path, and needs no path at all (runc's way):
// fchdir into newroot, then pivot_root(".", "."). A chdir by name would
// walk the rootfs's path once more, and a host user who renamed a
// directory on it meanwhile could make us pivot into a tree of theirs.
func PivotRoot(newroot *os.File, t trace.Tracer) error {
	t = trace.Or(t)
	if err := unix.Fchdir(int(newroot.Fd())); err != nil {
		return &os.PathError{Op: "fchdir", Path: newroot.Name(), Err: err}
	}
	t.Step(stage, fmt.Sprintf("fchdir(%d) (%s, opened once)", newroot.Fd(), newroot.Name()), "cd "+newroot.Name())
	// pivot_root(".", ".") is runc's trick: the new root and the place to
	// put the old one are the same directory. The kernel stacks the old root
	// on top of "." and makes the new root "/" underneath it, so no temporary
	// "put_old" directory has to be created in (and later removed from) the
	// container's filesystem, which may even be read-only.
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: newroot.Name(), Err: err}
	}
	t.Step(stage, "pivot_root . . (in "+newroot.Name()+")", "pivot_root . .")
	// "." is now the old root, stacked on the new one. A lazy unmount
	// detaches it and every mount below it (the host's /proc, /home, ...)
	// from this namespace; what was underneath, the new root, shows again.
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount2", Path: "(old root)", Err: err}
	}
	t.Step(stage, "umount2 . MNT_DETACH (the old root)", "umount -l .")
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	t.Step(stage, "chdir /", "cd /")
	return nil
}
