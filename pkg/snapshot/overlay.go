package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Probe says which kind of snapshot works with its directories in dir (an
// existing directory) and why, e.g. Copy, "overlay unavailable on this
// filesystem (no d_type)". It probes rather than guesses: it checks that the
// filesystem reports file types in directory entries (overlayfs needs
// d_type; xfs formatted with ftype=0 does not) and then mounts a tiny
// overlay in dir. The mount is made in a private mount namespace of a thread
// that dies afterwards, so even a probe killed halfway leaves no mount on
// the host. It costs a few milliseconds: the engine asks once per host and
// keeps the answer.
//
// The answer is definite or an error: a probe that cannot set itself up
// (mkdir fails on a full disk) or a mount that fails for another reason
// than "not here" (no overlayfs, no privilege, a filesystem it refuses)
// says nothing about overlayfs, and returns the error instead of a Copy
// that would be kept until the next boot.
func Probe(dir string) (kind Kind, reason string, err error) {
	type answer struct {
		reason string
		err    error
	}
	done := make(chan answer)
	go func() {
		// Never unlocked: when this goroutine ends, the Go runtime ends the
		// thread, and with it the mount namespace it alone was in.
		runtime.LockOSThread()
		r, err := probe(dir)
		done <- answer{r, err}
	}()
	a := <-done
	switch {
	case a.err != nil:
		return "", "", a.err
	case a.reason != "":
		return Copy, a.reason, nil
	}
	return Overlay, "overlayfs works in " + dir, nil
}

// probe returns "" when overlayfs works in dir, else the reason it does
// not, or an error when it cannot tell.
func probe(dir string) (string, error) {
	tmp, err := os.MkdirTemp(dir, ".overlay-probe-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ok, err := hasDType(tmp)
	if err != nil {
		return "", err
	}
	if !ok {
		return "overlay unavailable on this filesystem (no d_type)", nil
	}
	lower, upper, work, merged := filepath.Join(tmp, "l"), filepath.Join(tmp, "u"), filepath.Join(tmp, "w"), filepath.Join(tmp, "m")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", err
		}
	}
	// unshare(CLONE_NEWNS) gives this thread its own copy of the mount
	// table; rprivate, so the probe's mount does not propagate back.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		if errors.Is(err, unix.EPERM) {
			return "overlay unavailable: mounting needs root (CAP_SYS_ADMIN)", nil
		}
		return "", os.NewSyscallError("unshare", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", &os.PathError{Op: "mount --make-rprivate", Path: "/", Err: err}
	}
	err = unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work)
	if err == nil {
		unix.Unmount(merged, unix.MNT_DETACH)
		return "", nil
	}
	var fs unix.Statfs_t
	switch {
	case errors.Is(err, unix.EPERM):
		return "overlay unavailable: mounting needs root (CAP_SYS_ADMIN)", nil
	case errors.Is(err, unix.ENODEV):
		return "overlay unavailable: the kernel has no overlayfs (modprobe overlay)", nil
	case unix.Statfs(dir, &fs) == nil && fs.Type == unix.OVERLAYFS_SUPER_MAGIC:
		return "overlay unavailable on this filesystem (it is overlayfs itself)", nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		// The kernel refuses these directories for an overlay.
		return fmt.Sprintf("overlay unavailable on this filesystem (mount: %v)", err), nil
	}
	return "", &os.PathError{Op: "mount overlay", Path: merged, Err: err}
}

// hasDType reports whether getdents(2) in dir gives file types, which
// overlayfs needs to find whiteouts without a stat per entry.
func hasDType(dir string) (bool, error) {
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		return false, err
	}
	defer os.Remove(filepath.Join(dir, "f"))
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, err := unix.Getdents(fd, buf)
	if err != nil {
		return false, &os.PathError{Op: "getdents", Path: dir, Err: err}
	}
	for off := 0; off < n; {
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
		typ, name := buf[off+18], buf[off+19:off+reclen]
		if strings.TrimRight(string(name), "\x00") == "f" {
			return typ != unix.DT_UNKNOWN, nil
		}
		off += reclen
	}
	return false, nil
}
