package chroot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/procfs"
	"github.com/minictr/minictr/pkg/resolve"
)

// Why descriptors, not paths
//
// The rootfs may sit in a tree that another host user can write: they can
// rename any directory they own on the way to it, at any moment, even one
// that is a mount point in our namespace. A set-up that walks the path again
// after checking it (mount on "rootfs/dev", then chmod "rootfs/dev/null")
// can be sent elsewhere between the two walks: the reviewer's attack renamed
// the rootfs's parent and put a symlink to a tree whose dev/null pointed at
// a host file, and the init's chmod made that file 0666. runc fixed this
// class of bug again and again (CVE-2021-30465 swapped a mount target for a
// symlink between its check and the mount). So Setup resolves the rootfs by
// name once, holds it open, and reaches everything else from descriptors:
// the kernel's /proc/self/fd/N names the very file a descriptor holds, and
// mount(2), chmod(2) and friends go there whatever the names are by then.

// fdPath is the name by which the kernel reaches the file f holds, whatever
// it is called now: mount(2) follows it to that very file.
func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// fdPath is fdPath(f) as Setup may use it: after pivot_root, "/proc" is a
// name in the container's root, which the rootfs's owner can rename, so
// Setup then works from inside its own /proc mount (pivotRoot fchdirs
// there) and names descriptors relative to it: self/fd/N.
func (s *setup) fdPath(f *os.File) string {
	if s.inProc {
		return "self/fd/" + strconv.Itoa(int(f.Fd()))
	}
	return fdPath(f)
}

// openPath opens name in the directory dir as an O_PATH descriptor, never
// following a symlink in name, and calls the result display (for traces).
func openPath(dir *os.File, name string, flags int, display string) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: display, Err: err}
	}
	return os.NewFile(uintptr(fd), display), nil
}

// openRootfs resolves the rootfs by name: the only walk of its path. It
// keeps the directory and the directory that holds it: the mount Setup
// stacks on the rootfs is reached through the parent later (a descriptor of
// the directory itself keeps showing what is underneath the mount).
func (s *setup) openRootfs() error {
	dir, err := resolve.OpenRoot(s.root)
	if err != nil {
		return err
	}
	s.rootfs = dir
	s.t.Step(stage, fmt.Sprintf("open(%q, O_PATH|O_DIRECTORY) = %d: the one lookup of the rootfs's path; later steps use descriptors", s.root, dir.Fd()), "")
	// Where the kernel found it: the name in its parent, symlinks resolved.
	real, err := os.Readlink(fdPath(dir))
	if err != nil {
		return err
	}
	if s.parent, err = openPath(dir, "..", unix.O_DIRECTORY, filepath.Dir(s.root)); err != nil {
		return err
	}
	s.base = filepath.Base(real)
	// Every mount in our namespace now is a copy of one the host had; none
	// is ours. A descriptor that lands on one of them later was redirected.
	ms, err := procfs.Mounts()
	if err != nil {
		return err
	}
	s.before = map[uint64]bool{}
	for _, m := range ms {
		s.before[uint64(m.ID)] = true
	}
	return nil
}

// errRedirected says that a name Setup looked up again led somewhere other
// than the mount it had just made: someone renamed a directory meanwhile.
var errRedirected = errors.New("not the mount just made there: the rootfs changed during set-up")

// mountedAt returns the root of the mount just made on dir, looked up again
// by lookup (a descriptor of dir itself keeps showing what is underneath
// the mount), and checks that the name led where it should: to the root of
// a mount Setup made (none of the mounts that were there before it began),
// of filesystem type magic (0: any), other than dir's own mount.
func (s *setup) mountedAt(dir *os.File, magic int64, lookup func() (*os.File, error)) (*os.File, error) {
	f, err := lookup()
	if err != nil {
		return nil, err
	}
	if err := s.checkMounted(f, dir, magic); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	s.t.Step(stage, fmt.Sprintf("open %s again = %d: checked to be the root of the mount just made there", f.Name(), f.Fd()), "")
	return f, nil
}

func (s *setup) checkMounted(f, dir *os.File, magic int64) error {
	id, root, err := mountOf(f)
	if err != nil {
		return err
	}
	under, _, err := mountOf(dir)
	if err != nil {
		return err
	}
	if !root || id == under || s.before[id] {
		return errRedirected
	}
	if magic != 0 {
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
			return &os.PathError{Op: "fstatfs", Path: f.Name(), Err: err}
		}
		if st.Type != magic {
			return fmt.Errorf("filesystem type %#x, want %#x: %w", st.Type, magic, errRedirected)
		}
	}
	return nil
}

// mountOf returns the ID of the mount f lies on (as mountinfo numbers it)
// and whether f is that mount's root: statx(2) STATX_MNT_ID (Linux 5.8),
// else /proc/self/fdinfo and a look at "..", which leaves a mount only from
// its root.
func mountOf(f *os.File) (id uint64, root bool, err error) {
	var stx unix.Statx_t
	err = unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx)
	if err != nil {
		return 0, false, &os.PathError{Op: "statx", Path: f.Name(), Err: err}
	}
	if stx.Mask&unix.STATX_MNT_ID != 0 && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Mnt_id, stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
	}
	return mountOfFdinfo(f)
}

// mountOfFdinfo is mountOf before Linux 5.8.
func mountOfFdinfo(f *os.File) (id uint64, root bool, err error) {
	if id, err = fdinfoMount(f); err != nil {
		return 0, false, err
	}
	up, err := openPath(f, "..", 0, f.Name()+"/..")
	if errors.Is(err, unix.ENOTDIR) {
		// A file has no "..". Only a bind mount puts a mount on a file,
		// so a file on a new mount is taken for that mount's root.
		return id, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer up.Close()
	upID, err := fdinfoMount(up)
	return id, upID != id, err
}

// fdinfoMount reads the mnt_id line of /proc/self/fdinfo/N.
func fdinfoMount(f *os.File) (uint64, error) {
	info, err := os.Open("/proc/self/fdinfo/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return 0, err
	}
	defer info.Close()
	sc := bufio.NewScanner(info)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "mnt_id:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no mnt_id in %s", info.Name())
}
