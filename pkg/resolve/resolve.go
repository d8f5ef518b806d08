package resolve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A Mode is the rule every step of a resolution must keep.
type Mode int

const (
	// Beneath refuses, with ErrOutside, any path that would leave the root:
	// openat2(2) RESOLVE_BENEATH. For input that must not even try (layers).
	Beneath Mode = iota + 1
	// InRoot resolves as a process whose root directory is the root would:
	// "/" and ".." at the top are the root itself. openat2(2)
	// RESOLVE_IN_ROOT. For what a container will see (mounts, workdir,
	// /etc/passwd).
	InRoot
)

func (m Mode) String() string {
	switch m {
	case Beneath:
		return "beneath"
	case InRoot:
		return "in-root"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// resolveFlags are the openat2(2) resolve flags of each mode. Both refuse
// magic links (/proc/self/fd/N), which would jump anywhere.
func (m Mode) resolveFlags() uint64 {
	if m == InRoot {
		return unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
	}
	return unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS
}

// ErrOutside is Beneath's refusal of a path that would leave the root (the
// kernel's EXDEV). Test for it with errors.Is.
var ErrOutside = errors.New("resolves outside the root")

// maxSymlinks is the kernel's MAXSYMLINKS (include/linux/namei.h): one
// lookup follows at most 40 symlinks, the 41st fails with ELOOP.
const maxSymlinks = 40

// noOpenat2 is set once openat2 has answered ENOSYS: from then on, every
// resolution walks in user space. Tests set it to check the walk.
var noOpenat2 atomic.Bool

// OpenRoot opens dir as a root for Open, MkdirAll and RemoveAll: an O_PATH
// descriptor, which names the directory without reading it. The caller
// closes it.
func OpenRoot(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// Open opens name inside root, every component resolved by mode's rule,
// with the open(2) flags (O_CLOEXEC is added) and, with O_CREAT, perm. A
// symlink as the last component is followed unless flags has O_NOFOLLOW;
// O_CREAT creates the last component, never missing directories before it.
// Errors are *os.PathError; Beneath's refusal wraps ErrOutside, a 41st
// symlink gives ELOOP.
func Open(root *os.File, name string, mode Mode, flags int, perm os.FileMode) (*os.File, error) {
	defer runtime.KeepAlive(root)
	fd, err := open(int(root.Fd()), name, mode, flags|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: join(root, name), Err: err}
	}
	return os.NewFile(uintptr(fd), join(root, name)), nil
}

// MkdirAll opens the directory name inside root (O_PATH), creating what is
// missing as mkdir -p would, each directory with mkdirat(2) in the
// descriptor of the one before it, so that no symlink can redirect a
// creation out of the root. Missing directories behind a symlink are
// created where the symlink points, resolved by mode's rule.
func MkdirAll(root *os.File, name string, mode Mode, perm os.FileMode) (*os.File, error) {
	defer runtime.KeepAlive(root)
	rootfd := int(root.Fd())
	fd, err := open(rootfd, name, mode, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) { // the usual case is one openat2 that succeeds
		w := &walker{root: rootfd, mode: mode}
		if _, err = w.walk(name, false, true, uint32(perm.Perm())); err == nil {
			fd, err = unix.Openat(w.dir(), ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
		w.close()
	}
	if err != nil {
		return nil, &os.PathError{Op: "mkdir", Path: join(root, name), Err: err}
	}
	return os.NewFile(uintptr(fd), join(root, name)), nil
}

// RemoveAll removes name inside root and, for a directory, everything
// below it, like os.RemoveAll. The directory holding name is resolved by
// mode's rule; name's last component and everything below it are removed
// with unlinkat(2), never followed, so a symlink is removed, not what it
// points at. A name that does not exist is not an error.
func RemoveAll(root *os.File, name string, mode Mode) error {
	defer runtime.KeepAlive(root)
	dir, base := splitLast(name)
	if base == "" || base == "." || base == ".." {
		return &os.PathError{Op: "remove", Path: join(root, name), Err: unix.EINVAL}
	}
	pfd, err := open(int(root.Fd()), dir, mode, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err == nil {
		err = removeAt(pfd, base)
		unix.Close(pfd)
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: join(root, name), Err: err}
	}
	return nil
}

// open resolves name below rootfd with openat2, or with the user-space walk
// where the kernel has no openat2.
func open(rootfd int, name string, mode Mode, flags int, perm uint32) (int, error) {
	if name == "" {
		name = "." // openat2 has no AT_EMPTY_PATH
	}
	if !noOpenat2.Load() {
		fd, err := openat2(rootfd, name, mode, flags, perm)
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
		if errors.Is(err, unix.ENOSYS) {
			noOpenat2.Store(true)
		}
	}
	return walkOpen(rootfd, name, mode, flags, perm)
}

// openat2 is one openat2(2) call, retried when the kernel answers EAGAIN:
// with RESOLVE_IN_ROOT or RESOLVE_BENEATH it gives up on a ".." if any
// rename or mount happened on the system meanwhile, rather than risk an
// escape. After many retries the walk takes over (the caller sees EAGAIN).
func openat2(rootfd int, name string, mode Mode, flags int, perm uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Resolve: mode.resolveFlags()}
	if flags&(unix.O_CREAT|unix.O_TMPFILE) != 0 {
		how.Mode = uint64(perm) // must be 0 otherwise (EINVAL)
	}
	for range 64 {
		fd, err := unix.Openat2(rootfd, name, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.EXDEV):
			return -1, ErrOutside
		}
		return -1, err
	}
	return -1, unix.EAGAIN
}

// removeAt removes base in the directory dirfd, and everything below it
// when it is a directory, without following any symlink.
func removeAt(dirfd int, base string) error {
	err := unix.Unlinkat(dirfd, base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	names, err := f.Readdirnames(-1)
	for _, n := range names {
		if err == nil {
			err = removeAt(fd, n)
		}
	}
	f.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR)
}

// splitLast splits name into the directory before its last component and
// that component, ignoring trailing slashes. No cleaning: "a/.." must go
// through the resolution of a, which may be a symlink.
func splitLast(name string) (dir, base string) {
	name = strings.TrimRight(name, "/")
	i := strings.LastIndexByte(name, '/')
	return name[:i+1], name[i+1:]
}

// join names a path below root for error messages and *os.File names.
func join(root *os.File, name string) string {
	return filepath.Join(root.Name(), name)
}
