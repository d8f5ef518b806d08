package chroot

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// maskPaths hides each masked path that exists: a file under a bind mount
// of /dev/null (reads return nothing, writes vanish), a directory under an
// empty read-only tmpfs. It runs after pivot_root, so the paths and
// /dev/null are the container's own.
func (s *setup) maskPaths() error {
	if s.cfg.Privileged {
		return nil
	}
	paths := s.cfg.MaskedPaths
	if paths == nil {
		paths = DefaultMaskedPaths
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // this kernel has no such file: nothing to hide
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			err = s.mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
		} else {
			err = s.mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readonlyPaths bind-mounts each read-only path onto itself and remounts
// that bind read-only: the files stay readable, writes fail with EROFS.
func (s *setup) readonlyPaths() error {
	if s.cfg.Privileged {
		return nil
	}
	paths := s.cfg.ReadonlyPaths
	if paths == nil {
		paths = DefaultReadonlyPaths
	}
	for _, p := range paths {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := s.mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := s.remountReadOnly(p); err != nil {
			return err
		}
	}
	return nil
}
