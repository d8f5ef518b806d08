package resolve

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// A walker resolves a path one component at a time in user space, for
// kernels without openat2(2). It holds a descriptor of every directory it
// has entered below the root, so ".." is a pop of its own stack: the kernel
// is never asked for a parent, and a directory moved meanwhile cannot lead
// the walk out of the root. A magic link (/proc/self/root) is read like any
// other symlink, as its text: that keeps the walk inside the root, where
// openat2 would refuse it with ELOOP.
type walker struct {
	root  int   // the root's descriptor (the caller's: never closed here)
	mode  Mode  //
	dirs  []int // directories entered below the root, innermost last
	links int   // symlinks followed so far
}

// walkOpen is Open for kernels without openat2.
func walkOpen(rootfd int, name string, mode Mode, flags int, perm uint32) (int, error) {
	w := &walker{root: rootfd, mode: mode}
	defer w.close()
	last, err := w.walk(name, flags&unix.O_NOFOLLOW != 0, false, 0)
	if err != nil {
		return -1, err
	}
	// The walk expanded a symlink in last already; O_NOFOLLOW makes a
	// symlink put there since fail (ELOOP) instead of being followed
	// unchecked.
	return unix.Openat(w.dir(), last, flags|unix.O_NOFOLLOW, perm)
}

// walk resolves name and leaves the walker in the directory that holds its
// last component, which it returns ("." when name ends at a directory).
// Every symlink on the way is read and expanded here, the last component's
// too unless nofollow. With mkdir, missing directories are created (perm)
// and the last component is entered as well.
func (w *walker) walk(name string, nofollow, mkdir bool, perm uint32) (string, error) {
	if strings.HasPrefix(name, "/") && w.mode == Beneath {
		return "", ErrOutside
	}
	parts := strings.Split(name, "/")
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if err := w.up(); err != nil {
				return "", err
			}
			continue
		}
		if len(parts) == 0 && !mkdir {
			if nofollow {
				return c, nil
			}
			target, err := readlinkat(w.dir(), c)
			switch {
			case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
				return c, nil // not a symlink, or not there (yet: O_CREAT)
			case err != nil:
				return "", err
			}
			if parts, err = w.follow(target, parts); err != nil {
				return "", err
			}
			continue
		}
		fd, err := unix.Openat(w.dir(), c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && mkdir {
			if err = unix.Mkdirat(w.dir(), c, perm); err == nil || errors.Is(err, unix.EEXIST) {
				fd, err = unix.Openat(w.dir(), c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		if err == nil {
			w.dirs = append(w.dirs, fd)
			continue
		}
		if !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
			return "", err
		}
		// Not a directory: a symlink to expand, or a file in the middle
		// of the path.
		target, lerr := readlinkat(w.dir(), c)
		if errors.Is(lerr, unix.EINVAL) {
			return "", unix.ENOTDIR
		}
		if lerr != nil {
			return "", lerr
		}
		if parts, err = w.follow(target, parts); err != nil {
			return "", err
		}
	}
	return ".", nil
}

// follow puts a symlink's target in front of what is left of the path.
func (w *walker) follow(target string, rest []string) ([]string, error) {
	if w.links++; w.links > maxSymlinks {
		return nil, unix.ELOOP
	}
	if target == "" {
		return nil, unix.ENOENT // as the kernel answers for an empty symlink
	}
	if strings.HasPrefix(target, "/") {
		if w.mode == Beneath {
			return nil, ErrOutside
		}
		w.toRoot()
	}
	return append(strings.Split(target, "/"), rest...), nil
}

// up steps to the parent directory: the walker's own, never the kernel's
// "..". At the root, InRoot stays there and Beneath refuses.
func (w *walker) up() error {
	if len(w.dirs) == 0 {
		if w.mode == Beneath {
			return ErrOutside
		}
		return nil
	}
	unix.Close(w.dirs[len(w.dirs)-1])
	w.dirs = w.dirs[:len(w.dirs)-1]
	return nil
}

// dir is the directory the walk is in.
func (w *walker) dir() int {
	if len(w.dirs) == 0 {
		return w.root
	}
	return w.dirs[len(w.dirs)-1]
}

// toRoot starts again from the root, for an absolute symlink.
func (w *walker) toRoot() {
	for _, fd := range w.dirs {
		unix.Close(fd)
	}
	w.dirs = w.dirs[:0]
}

func (w *walker) close() { w.toRoot() }

// readlinkat reads the symlink name in dirfd: EINVAL if it is not one.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
