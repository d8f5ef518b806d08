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
func Probe(dir string) (kind Kind, reason string) {
	answer := make(chan string)
	go func() {
		// Never unlocked: when this goroutine ends, the Go runtime ends the
		// thread, and with it the mount namespace it alone was in.
		runtime.LockOSThread()
		answer <- probe(dir)
	}()
	if r := <-answer; r != "" {
		return Copy, r
	}
	return Overlay, "overlayfs works in " + dir
}

// probe returns "" when overlayfs works in dir, else the reason it does not.
func probe(dir string) string {
	tmp, err := os.MkdirTemp(dir, ".overlay-probe-")
	if err != nil {
		return fmt.Sprintf("overlay unavailable (%v)", err)
	}
	defer os.RemoveAll(tmp)
	if !hasDType(tmp) {
		return "overlay unavailable on this filesystem (no d_type)"
	}
	lower, upper, work, merged := filepath.Join(tmp, "l"), filepath.Join(tmp, "u"), filepath.Join(tmp, "w"), filepath.Join(tmp, "m")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Sprintf("overlay unavailable (%v)", err)
		}
	}
	// unshare(CLONE_NEWNS) gives this thread its own copy of the mount
	// table; rprivate, so the probe's mount does not propagate back.
	err = unix.Unshare(unix.CLONE_NEWNS)
	if err == nil {
		err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
	}
	if err == nil {
		err = unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work)
	}
	if err == nil {
		unix.Unmount(merged, unix.MNT_DETACH)
		return ""
	}
	switch {
	case errors.Is(err, unix.EPERM):
		return "overlay unavailable: mounting needs root (CAP_SYS_ADMIN)"
	case errors.Is(err, unix.ENODEV):
		return "overlay unavailable: the kernel has no overlayfs (modprobe overlay)"
	}
	var fs unix.Statfs_t
	if unix.Statfs(dir, &fs) == nil && fs.Type == unix.OVERLAYFS_SUPER_MAGIC {
		return "overlay unavailable on this filesystem (it is overlayfs itself)"
	}
	return fmt.Sprintf("overlay unavailable on this filesystem (mount: %v)", err)
}

// hasDType reports whether getdents(2) in dir gives file types, which
// overlayfs needs to find whiteouts without a stat per entry.
func hasDType(dir string) bool {
	if os.WriteFile(filepath.Join(dir, "f"), nil, 0o600) != nil {
		return false
	}
	defer os.Remove(filepath.Join(dir, "f"))
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, err := unix.Getdents(fd, buf)
	if err != nil {
		return false
	}
	for off := 0; off < n; {
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
		typ, name := buf[off+18], buf[off+19:off+reclen]
		if strings.TrimRight(string(name), "\x00") == "f" {
			return typ != unix.DT_UNKNOWN
		}
		off += reclen
	}
	return false
}
