package layer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors a hostile layer gets, wrapped in an *EntryError that names the
// entry. Test them with errors.Is.
var (
	ErrEscape   = errors.New("path escapes the layer directory")
	ErrDevice   = errors.New("device nodes are not allowed in a layer")
	ErrHardlink = errors.New("hard link target must be a regular file already in the layer")
	ErrWhiteout = errors.New("invalid whiteout")
	ErrTooBig   = errors.New("layer exceeds the size limit")
)

// An EntryError is the refusal of one tar entry, and so of its whole layer.
type EntryError struct {
	Name string // the entry's name exactly as the tar has it
	Err  error
}

// Error is one line: the cause may hold the entry's name unquoted, in a path.
func (e *EntryError) Error() string {
	return fmt.Sprintf("layer entry %q: %s", e.Name, strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(e.Err.Error()))
}

func (e *EntryError) Unwrap() error { return e.Err }

// cleanName turns a tar entry name into a path relative to the layer
// directory ("" is the directory itself). Absolute names and ".." components
// are refused outright, even when "a/../b" would stay inside: no honest
// layer writer produces them.
func cleanName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: empty name or NUL byte", ErrEscape)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute path", ErrEscape)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: \"..\" component", ErrEscape)
		}
	}
	p := path.Clean(name) // drops "./", "//" and a trailing "/"
	if p == "." {
		return "", nil
	}
	return p, nil
}

// splitName splits a clean relative name into its parent ("" for the top)
// and its last component.
func splitName(name string) (parent, base string) {
	parent, base = path.Split(name)
	return strings.TrimSuffix(parent, "/"), base
}

// A root is a layer directory, held open so that every path is resolved
// relative to it by the kernel.
type root struct {
	dir string
	fd  int // O_PATH descriptor of dir
}

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &root{dir: dir, fd: fd}, nil
}

func (r *root) close() { unix.Close(r.fd) }

// openDir opens the directory rel ("" = the root) with openat2(2). The
// kernel resolves every component, symlinks included, and fails with EXDEV
// instead of leaving the root: that is RESOLVE_BENEATH. RESOLVE_NO_MAGICLINKS
// also refuses /proc/self/fd-style links, which jump anywhere. The caller
// closes the returned descriptor.
func (r *root) openDir(rel string, flags int) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_DIRECTORY | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EAGAIN): // a rename raced the lookup: try again
			continue
		case errors.Is(err, unix.EXDEV):
			return -1, fmt.Errorf("%w: %s resolves outside it", ErrEscape, rel)
		case errors.Is(err, unix.ENOSYS):
			return -1, fmt.Errorf("openat2 %s: %w (safe unpacking needs Linux 5.6 or later)", rel, err)
		}
		return -1, &os.PathError{Op: "openat2", Path: path.Join(r.dir, rel), Err: err}
	}
}

// mkdirAll opens the directory rel, creating what is missing (tar archives
// often omit parent directory entries) one component at a time, each made
// with mkdirat(2) in a parent opened by openDir, so that no symlink can
// redirect the creation.
func (r *root) mkdirAll(rel string) (int, error) {
	fd, err := r.openDir(rel, unix.O_PATH)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	parent := ""
	for _, c := range strings.Split(rel, "/") {
		pfd, err := r.openDir(parent, unix.O_PATH)
		if err != nil {
			return -1, err
		}
		err = unix.Mkdirat(pfd, c, 0o755)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, &os.PathError{Op: "mkdirat", Path: path.Join(r.dir, parent, c), Err: err}
		}
		parent = path.Join(parent, c)
	}
	return r.openDir(rel, unix.O_PATH)
}

// fdPath names the entry base in the directory held by fd, for the few
// syscalls that have no *at form (setxattr): the kernel resolves
// /proc/self/fd/N to the directory itself, whatever path led there.
func fdPath(fd int, base string) string {
	p := fmt.Sprintf("/proc/self/fd/%d", fd)
	if base != "" {
		p += "/" + base
	}
	return p
}
