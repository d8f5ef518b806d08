package layer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/resolve"
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
// directory ("" is the directory itself), as docker, containerd and GNU tar
// read names: leading "/" and "./" are dropped (umoci writes a root entry
// "/", other tools "./etc" or "/etc"), the rest is cleaned, and only a name
// that would land outside the directory is refused: one whose ".."
// components climb above it. Symlinks on the way are the resolver's
// business, when the entry is written.
func cleanName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: empty name or NUL byte", ErrEscape)
	}
	p := path.Clean(strings.TrimLeft(name, "/")) // drops "./", "//", "a/.." and a trailing "/"
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("%w: \"..\" component climbs above it", ErrEscape)
	}
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
// relative to it, and never out of it: by default a step that would leave
// it is refused (resolve.Beneath); with Options.InRoot, it is resolved as
// the container will (resolve.InRoot).
type root struct {
	dir  string
	f    *os.File // O_PATH descriptor of dir
	mode resolve.Mode
}

func openRoot(dir string, mode resolve.Mode) (*root, error) {
	f, err := resolve.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &root{dir: dir, f: f, mode: mode}, nil
}

func (r *root) close() { r.f.Close() }

// openDir opens the directory rel ("" = the root) inside the root, with
// openat2(2) where the kernel has it (see pkg/resolve): in Beneath mode, a
// step that would leave the root, symlinks included, fails with ErrEscape.
func (r *root) openDir(rel string, flags int) (*os.File, error) {
	f, err := resolve.Open(r.f, rel, r.mode, flags|unix.O_DIRECTORY, 0)
	return f, r.escape(rel, err)
}

// mkdirAll opens the directory rel, creating what is missing (tar archives
// often omit parent directory entries) one component at a time, each made
// with mkdirat(2) in its parent's descriptor, so that no symlink can
// redirect the creation.
func (r *root) mkdirAll(rel string) (*os.File, error) {
	f, err := resolve.MkdirAll(r.f, rel, r.mode, 0o755)
	return f, r.escape(rel, err)
}

// removeAll removes rel and what it holds, never following a symlink.
func (r *root) removeAll(rel string) error {
	return r.escape(rel, resolve.RemoveAll(r.f, rel, r.mode))
}

// escape words the resolver's refusal as the layer's.
func (r *root) escape(rel string, err error) error {
	if errors.Is(err, resolve.ErrOutside) {
		return fmt.Errorf("%w: %s resolves outside it", ErrEscape, rel)
	}
	return err
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
