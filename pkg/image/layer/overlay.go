package layer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minictr/minictr/pkg/trace"
	"golang.org/x/sys/unix"
)

// mountOverlay mounts m on target. mount(2) copies its options into one
// page (4096 bytes), so many long lowerdir paths do not fit. Then we use the
// new mount API (fsopen(2), fsconfig(2), fsmount(2), move_mount(2)), which
// takes the lower layers one at a time ("lowerdir+", Linux 6.8): no limit
// but the 500-layer stack of overlayfs. (The other way out, short relative
// paths from a chdir'd parent, needs a thread with its own working directory
// in a Go program: unshare(CLONE_FS) on a locked thread.)
func mountOverlay(m Mount, lowers []string, upper, work, target string, t trace.Tracer) error {
	data := strings.Join(m.Options, ",")
	shell := "mount -t overlay overlay -o " + data + " " + target
	if len(data) < os.Getpagesize() {
		t.Step("image", "mount overlay on "+target, shell)
		if err := unix.Mount(m.Source, target, m.Type, 0, data); err != nil {
			return &os.PathError{Op: "mount overlay", Path: target, Err: err}
		}
		return nil
	}
	t.Step("image", fmt.Sprintf("mount overlay on %s: %d bytes of options exceed a page, so fsopen, fsconfig lowerdir+ (%d layers), fsmount, move_mount",
		target, len(data), len(lowers)), shell)
	return mountNewAPI(lowers, upper, work, target, len(data))
}

func mountNewAPI(lowers []string, upper, work, target string, size int) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("fsopen overlay", err)
	}
	defer unix.Close(fsfd)
	for _, l := range lowers {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
			return fmt.Errorf("%d layers need %d bytes of mount options, more than a page, and this kernel cannot take them one by one (lowerdir+ needs Linux 6.8): %w",
				len(lowers), size, os.NewSyscallError("fsconfig lowerdir+ "+l, err))
		}
	}
	for key, val := range map[string]string{"upperdir": upper, "workdir": work} {
		if err := unix.FsconfigSetString(fsfd, key, val); err != nil {
			return os.NewSyscallError("fsconfig "+key+" "+val, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return os.NewSyscallError("fsconfig create overlay", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fsmount overlay", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount", Path: target, Err: err}
	}
	return nil
}

// Snapshotter says which snapshotter Prepare would use in dir (an existing
// directory) and why, e.g. "copy", "overlay unavailable on this filesystem
// (no d_type)". It probes rather than guesses: it checks that the filesystem
// reports file types in directory entries (overlayfs needs d_type; xfs
// formatted with ftype=0 does not) and then mounts a tiny overlay in dir.
// Prepare asks only when a real overlay mount has failed, so there is
// nothing to cache.
func Snapshotter(dir string) (kind, reason string) {
	if r := probe(dir); r != "" {
		return KindCopy, r
	}
	return KindOverlay, "overlayfs works in " + dir
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
	err = unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work)
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
