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
// harmless devices, instead of the host's /dev with its disks.
func (s *setup) mountDev() error {
	dev, err := mountPoint(s.root, "/dev", false)
	if err != nil {
		return err
	}
	if err := s.mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, d := range devices {
		if err := s.makeDevice(dev, d.name, d.major, d.minor); err != nil {
			return err
		}
	}
	for _, step := range []func(string) error{s.mountPts, s.mountShm, s.mountMqueue, s.linkDev} {
		if err := step(dev); err != nil {
			return err
		}
	}
	return nil
}

// makeDevice creates /dev/name with mknod(2). Inside a user namespace the
// kernel refuses new device nodes (EPERM) whatever our capabilities, so
// there the host's node is bind-mounted onto an empty file instead.
func (s *setup) makeDevice(dev, name string, major, minor uint32) error {
	path := filepath.Join(dev, name)
	err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(major, minor)))
	if err == nil {
		s.t.Step(stage, fmt.Sprintf("mknod(%q, S_IFCHR|0666, makedev(%d, %d))", path, major, minor),
			fmt.Sprintf("mknod -m 666 %s c %d %d", path, major, minor))
		// mknod applies the umask; the device must be usable by every uid.
		if err := os.Chmod(path, 0o666); err != nil {
			return err
		}
		return nil
	}
	if !errors.Is(err, unix.EPERM) {
		return &os.PathError{Op: "mknod", Path: path, Err: err}
	}
	s.t.Step(stage, "mknod "+path+" refused (EPERM, user namespace): bind-mount the host's node", "")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.mount("/dev/"+name, path, "", unix.MS_BIND, "")
}

// mountPts mounts a new devpts instance: the container's terminals are
// numbered from 0 and it cannot open the host's. gid 5 is the "tty" group.
func (s *setup) mountPts(dev string) error {
	pts := filepath.Join(dev, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return err
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NOEXEC)
	err := s.mount("devpts", pts, "devpts", flags, "newinstance,ptmxmode=0666,mode=0620,gid=5")
	if errors.Is(err, unix.EINVAL) {
		// In a user namespace that does not map gid 5, the kernel
		// rejects gid=5; the terminals then belong to our own group.
		s.t.Step(stage, "devpts refused gid=5 (EINVAL, gid not mapped): mount without it", "")
		err = s.mount("devpts", pts, "devpts", flags, "newinstance,ptmxmode=0666,mode=0620")
	}
	return err
}

// mountShm gives POSIX shared memory (shm_open(3)) its own 64 MiB tmpfs.
func (s *setup) mountShm(dev string) error {
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o755); err != nil {
		return err
	}
	return s.mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k")
}

// mountMqueue shows the POSIX message queues of our IPC namespace.
func (s *setup) mountMqueue(dev string) error {
	mq := filepath.Join(dev, "mqueue")
	if err := os.Mkdir(mq, 0o755); err != nil {
		return err
	}
	return s.mount("mqueue", mq, "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// linkDev makes the usual /dev symlinks. They point into /proc, which is
// resolved when used, inside the container.
func (s *setup) linkDev(dev string) error {
	for _, l := range devLinks {
		path := filepath.Join(dev, l[0])
		if err := os.Symlink(l[1], path); err != nil {
			return err // *os.LinkError names symlink and both paths
		}
		s.t.Step(stage, fmt.Sprintf("symlink(%q, %q)", l[1], path), "ln -s "+l[1]+" "+path)
	}
	return nil
}
