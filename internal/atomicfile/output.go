package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxSymlinks is the kernel's limit on links followed in one path
// resolution (MAXSYMLINKS, path_resolution(7)).
const maxSymlinks = 40

// Output writes what write produces to the file a user named (`save -o`),
// as a shell's `> name` would reach it, and atomically where that can be:
//
//   - a symlink is followed, and its target written; the link stays;
//   - a device or a FIFO is opened and written in place, as a stream: a
//     rename over it would replace /dev/full or a pipe with a regular file;
//   - a new path is written by WriteFunc (temporary file, then rename), so
//     an interrupted write leaves nothing;
//   - an existing regular file is replaced the same way, by a new file with
//     its mode and owner, so that it looks as `>` would leave it; when the
//     new file cannot look so — the old one has other hard links, which a
//     rename would leave with the old content, or an owner we may not give
//     it — it is truncated and written in place, as `>` does.
//
// (docker save -o replaces the file with a new 0600 one of the caller's,
// whatever the old one was, and refuses a symlink.) A write error (ENOSPC
// from /dev/full, EPIPE from a FIFO whose reader left) is returned.
func Output(name string, perm os.FileMode, write func(io.Writer) error) error {
	target, err := resolve(name)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	fi, err := os.Stat(target)
	switch {
	case os.IsNotExist(err):
		return WriteFunc(target, perm, write)
	case err != nil:
		return fmt.Errorf("writing %s: %w", name, err)
	case fi.Mode().IsRegular():
		err := replace(target, fi, write)
		if !errors.Is(err, errInPlace) {
			return err
		}
		return inPlace(name, target, os.O_TRUNC, write)
	case fi.IsDir():
		return fmt.Errorf("writing %s: %w", name, &os.PathError{Op: "open", Path: target, Err: syscall.EISDIR})
	}
	// No O_CREATE, no O_TRUNC: the node exists and is the destination.
	return inPlace(name, target, 0, write)
}

// errInPlace: the new file cannot look like the old one.
var errInPlace = errors.New("write in place")

// replace writes a new file over the regular file target, which fi
// describes, with its owner and mode; errInPlace when it cannot.
func replace(target string, fi os.FileInfo, write func(io.Writer) error) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink > 1 {
		return errInPlace
	}
	mode := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	return writeFunc(target, func(tmp *os.File) error {
		// Owner first: chown(2) clears the set-user-ID bit that chmod sets.
		if int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); errors.Is(err, syscall.EPERM) {
				return errInPlace
			} else if err != nil {
				return err
			}
		}
		return tmp.Chmod(mode)
	}, write)
}

// inPlace opens the existing target with flags added to O_WRONLY and
// writes it.
func inPlace(name, target string, flags int, write func(io.Writer) error) error {
	f, err := os.OpenFile(target, os.O_WRONLY|flags|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// resolve follows symlinks in name, the last element included, even when
// the link dangles (the write then creates its target, as `>` does). The
// directory part is resolved by the filesystem, not lexically, so that
// "dirlink/../x" means what the kernel means by it.
func resolve(name string) (string, error) {
	for range maxSymlinks {
		dir, base := ".", name
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			dir, base = name[:i], name[i+1:]
			if dir == "" {
				dir = "/"
			}
		}
		realDir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return "", err
		}
		name = filepath.Join(realDir, base)
		fi, err := os.Lstat(name)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return name, nil // missing, or not a link: name itself
		}
		if err := mayFollow(realDir, name, fi); err != nil {
			return "", err
		}
		link, err := os.Readlink(name)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(link) {
			link = realDir + "/" + link
		}
		name = link
	}
	return "", &os.PathError{Op: "open", Path: name, Err: syscall.ELOOP}
}

// mayFollow applies the kernel's fs.protected_symlinks rule, which a walk
// in user space would otherwise skip: a symlink in a sticky, world-writable
// directory (/tmp) is followed only when it belongs to us or to the
// directory's owner. Without it, anyone could plant /tmp/out.tar -> a
// file of root's for `sudo minictr save -o /tmp/out.tar` to replace, which
// a shell's `>` refuses (EACCES).
func mayFollow(dir, link string, fi os.FileInfo) error {
	di, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if di.Mode()&os.ModeSticky == 0 || di.Mode().Perm()&0o002 == 0 {
		return nil
	}
	lst, ok1 := fi.Sys().(*syscall.Stat_t)
	dst, ok2 := di.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || lst.Uid == uint32(os.Geteuid()) || lst.Uid == dst.Uid {
		return nil
	}
	return &os.PathError{Op: "follow symlink in a sticky world-writable directory", Path: link, Err: syscall.EACCES}
}
