package chroot

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/resolve"
)

// maskPaths hides each masked path that exists: a file under a bind mount
// of /dev/null (reads return nothing, writes vanish), a directory under an
// empty read-only tmpfs. It runs after pivot_root, so the paths and
// /dev/null are the container's own; each is found from the descriptor of
// the /proc or /sys mount Setup made (see maskedPath), and /dev/null from
// the container's /dev, so a directory of the rootfs renamed meanwhile
// cannot make a mask miss.
func (s *setup) maskPaths() error {
	if s.cfg.Privileged {
		return nil
	}
	paths := s.cfg.MaskedPaths
	if paths == nil {
		paths = DefaultMaskedPaths
	}
	var null *os.File
	defer func() {
		if null != nil {
			null.Close()
		}
	}()
	for _, p := range paths {
		f, err := s.maskedPath(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // this kernel has no such file: nothing to hide
		}
		if err != nil {
			return err
		}
		err = s.mask(f, &null)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// mask covers f: a directory with an empty read-only tmpfs, anything else
// with the container's /dev/null, opened on first use into *null.
func (s *setup) mask(f *os.File, null **os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return s.mount("tmpfs", f, "tmpfs", unix.MS_RDONLY, "")
	}
	if *null == nil {
		n, err := openPath(s.dev, "null", 0, "/dev/null")
		if err != nil {
			return err
		}
		*null = n
	}
	return s.bind(*null, f, 0)
}

// maskedPath opens p (O_PATH) as the container sees it: a path under /proc
// or /sys inside the proc or sysfs mount Setup made, found from its
// descriptor; any other inside the root.
func (s *setup) maskedPath(p string) (*os.File, error) {
	dir := s.rootfs
	for _, m := range []*os.File{s.proc, s.sys} {
		if rest, ok := strings.CutPrefix(p, m.Name()+"/"); ok {
			dir, p = m, rest
		}
	}
	return resolve.Open(dir, p, resolve.InRoot, unix.O_PATH, 0)
}

// readonlyPaths bind-mounts each read-only path onto itself and remounts
// that bind read-only: the files stay readable, writes fail with EROFS. The
// remount needs the new bind's root: the path is looked up again, from the
// same descriptor, and checked to lead to the bind just made.
func (s *setup) readonlyPaths() error {
	if s.cfg.Privileged {
		return nil
	}
	paths := s.cfg.ReadonlyPaths
	if paths == nil {
		paths = DefaultReadonlyPaths
	}
	for _, p := range paths {
		if err := s.readonlyPath(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *setup) readonlyPath(p string) error {
	f, err := s.maskedPath(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := s.bind(f, f, unix.MS_REC); err != nil {
		return err
	}
	top, err := s.mountedAt(f, 0, func() (*os.File, error) { return s.maskedPath(p) })
	if err != nil {
		return err
	}
	defer top.Close()
	return s.remountReadOnly(top)
}
