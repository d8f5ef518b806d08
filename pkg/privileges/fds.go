package privileges

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// MarkCloexecFrom sets FD_CLOEXEC on every open file descriptor >= from,
// so that the container's process inherits only stdio (and whatever lies
// below from) at execve(2). The engine's sockets, pipes and files opened
// without O_CLOEXEC would otherwise leak into the container, where a
// process could use them to reach back to the host.
func MarkCloexecFrom(from int) error {
	// Listing /proc/self/fd finds every open descriptor, however high.
	dir, err := os.OpenFile("/proc/self/fd", os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return err
	}
	self := int(dir.Fd()) // the listing's own descriptor, closed below
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd < from || fd == self {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && err != unix.EBADF {
			// EBADF: a descriptor closed since the listing, fine.
			return os.NewSyscallError("fcntl F_SETFD FD_CLOEXEC fd "+name, err)
		}
	}
	return nil
}
