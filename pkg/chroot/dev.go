package chroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// devices are the character devices every container gets (docker's list),
// with their fixed major and minor numbers (Documentation/admin-guide/devices.txt).
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3},
	{"zero", 1, 5},
	{"full", 1, 7},
	{"random", 1, 8},
	{"urandom", 1, 9},
	{"tty", 5, 0},
}

// devLinks are the symlinks of a usual /dev, name -> target.
var devLinks = [][2]string{
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
	{"core", "/proc/kcore"},
	{"ptmx", "pts/ptmx"},
}

// mountDev gives the container its own small /dev: a tmpfs holding only the
// harmless devices, instead of the host's /dev with its disks. Everything
// in it is made relative to the tmpfs's own descriptor (mknodat, mkdirat,
// symlinkat): a name in the rootfs renamed meanwhile cannot send a device
// node or a chmod onto the host's disk.
func (s *setup) mountDev() error {
	target, err := mountPoint(s.rootfs, "/dev", false)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := s.mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	dev, err := s.inRootMount(target, "/dev", unix.TMPFS_MAGIC)
	if err != nil {
		return err
	}
	s.dev = dev // kept for the masks' /dev/null
	for _, d := range devices {
		if err := s.makeDevice(dev, d.name, d.major, d.minor); err != nil {
			return err
		}
	}
	for _, step := range []func(*os.File) error{s.mountPts, s.mountShm, s.mountMqueue, s.linkDev} {
		if err := step(dev); err != nil {
			return err
		}
	}
	return nil
}

// makeDevice creates name in dev with mknodat(2). Inside a user namespace
// the kernel refuses new device nodes (EPERM) whatever our capabilities, so
// there the host's node is bind-mounted onto an empty file instead.
func (s *setup) makeDevice(dev *os.File, name string, major, minor uint32) error {
	path := filepath.Join(dev.Name(), name)
	err := unix.Mknodat(int(dev.Fd()), name, unix.S_IFCHR|0o666, int(unix.Mkdev(major, minor)))
	if err == nil {
		s.t.Step(stage, fmt.Sprintf("mknodat(/dev's fd, %q, S_IFCHR|0666, makedev(%d, %d))", name, major, minor),
			fmt.Sprintf("mknod -m 666 %s c %d %d", path, major, minor))
		s.at("mknod " + name)
		// mknod applies the umask; the device must be usable by every uid.
		return s.chmodDevice(dev, name, path, unix.Mkdev(major, minor))
	}
	if !errors.Is(err, unix.EPERM) {
		return &os.PathError{Op: "mknodat", Path: path, Err: err}
	}
	s.t.Step(stage, "mknod "+path+" refused (EPERM, user namespace): bind-mount the host's node", "")
	fd, err := unix.Openat(int(dev.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o666)
	if err != nil {
		return &os.PathError{Op: "openat", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	return s.mount("/dev/"+name, f, "", unix.MS_BIND, "")
}

// chmodDevice makes the node just made world-usable. chmod(2) follows
// symlinks and fchmodat(2) refuses AT_SYMLINK_NOFOLLOW before Linux 6.6
// (fchmodat2), and fchmod(2) refuses an O_PATH descriptor, while opening
// the node for reading or writing would open the device. So the node is
// opened O_PATH|O_NOFOLLOW, checked to be the device just made (not a
// symlink or file put there since), and chmod'ed through /proc/self/fd/N,
// which reaches that inode and no other.
func (s *setup) chmodDevice(dev *os.File, name, path string, rdev uint64) error {
	f, err := openPath(dev, name, 0, path)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != rdev {
		return fmt.Errorf("%s: not the device just made (mode %o): %w", path, st.Mode, errRedirected)
	}
	if err := unix.Chmod(fdPath(f), 0o666); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

// mkdirDev makes the directory name in dev and opens it for a mount.
func (s *setup) mkdirDev(dev *os.File, name string) (*os.File, error) {
	path := filepath.Join(dev.Name(), name)
	if err := unix.Mkdirat(int(dev.Fd()), name, 0o755); err != nil {
		return nil, &os.PathError{Op: "mkdirat", Path: path, Err: err}
	}
	return openPath(dev, name, unix.O_DIRECTORY, path)
}

// mountPts mounts a new devpts instance: the container's terminals are
// numbered from 0 and it cannot open the host's. gid 5 is the "tty" group.
func (s *setup) mountPts(dev *os.File) error {
	pts, err := s.mkdirDev(dev, "pts")
	if err != nil {
		return err
	}
	defer pts.Close()
	flags := uintptr(unix.MS_NOSUID | unix.MS_NOEXEC)
	err = s.mount("devpts", pts, "devpts", flags, "newinstance,ptmxmode=0666,mode=0620,gid=5")
	if errors.Is(err, unix.EINVAL) {
		// In a user namespace that does not map gid 5, the kernel
		// rejects gid=5; the terminals then belong to our own group.
		s.t.Step(stage, "devpts refused gid=5 (EINVAL, gid not mapped): mount without it", "")
		err = s.mount("devpts", pts, "devpts", flags, "newinstance,ptmxmode=0666,mode=0620")
	}
	return err
}

// mountShm gives POSIX shared memory (shm_open(3)) its own 64 MiB tmpfs.
func (s *setup) mountShm(dev *os.File) error {
	shm, err := s.mkdirDev(dev, "shm")
	if err != nil {
		return err
	}
	defer shm.Close()
	return s.mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k")
}

// mountMqueue shows the POSIX message queues of our IPC namespace.
func (s *setup) mountMqueue(dev *os.File) error {
	mq, err := s.mkdirDev(dev, "mqueue")
	if err != nil {
		return err
	}
	defer mq.Close()
	return s.mount("mqueue", mq, "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// linkDev makes the usual /dev symlinks. They point into /proc, which is
// resolved when used, inside the container.
func (s *setup) linkDev(dev *os.File) error {
	for _, l := range devLinks {
		path := filepath.Join(dev.Name(), l[0])
		if err := unix.Symlinkat(l[1], int(dev.Fd()), l[0]); err != nil {
			return &os.LinkError{Op: "symlinkat", Old: l[1], New: path, Err: err}
		}
		s.t.Step(stage, fmt.Sprintf("symlinkat(%q, /dev's fd, %q)", l[1], l[0]), "ln -s "+l[1]+" "+path)
	}
	return nil
}
