package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/minictr/minictr/pkg/resolve"
	"github.com/minictr/minictr/pkg/trace"
	"golang.org/x/sys/unix"
)

// Options tune Unpack and Apply.
type Options struct {
	Tracer trace.Tracer
	// MaxSize refuses a layer whose unpacked file contents would exceed it,
	// in bytes (0 = no cap): the defence against a small compressed blob
	// that expands without end.
	MaxSize int64
	// InRoot, for Apply onto a container's root made of the layers below
	// (a copy snapshot), resolves each path as the container will see it:
	// a lower layer's absolute symlink (Debian's /var/run -> /run) points
	// into dir, as docker's chrootarchive resolves it. Without it, a path
	// through a symlink that leaves dir is refused with ErrEscape: right for
	// one layer in its own directory, where such a path can only be
	// hostile. Either way nothing is written outside dir.
	InRoot bool
}

// Stats count what a layer held.
type Stats struct {
	Files int   // entries, whiteouts included
	Bytes int64 // bytes of regular file contents
}

// Unpack extracts the uncompressed tar stream r into dir, one layer in its
// own directory, converting whiteouts to the overlayfs form: ".wh.NAME"
// becomes a character device 0/0 named NAME, ".wh..wh..opq" the xattr
// trusted.overlay.opaque=y on its directory. An unsafe entry stops it with an
// *EntryError; dir is then half-filled, and the caller removes it.
func Unpack(r io.Reader, dir string, opts Options) (Stats, error) {
	trace.Or(opts.Tracer).Step("image", "unpack layer into "+dir+" (whiteouts as overlayfs 0/0 devices and opaque xattrs)",
		"tar -xf - -C "+dir)
	return extract(r, dir, opts, false)
}

// Apply is Unpack for layers stacked by copying into one directory: a
// whiteout deletes NAME, an opaque whiteout deletes what the directory held
// before this layer.
func Apply(r io.Reader, dir string, opts Options) (Stats, error) {
	trace.Or(opts.Tracer).Step("image", "apply layer onto "+dir+" (whiteouts delete)",
		"tar -xf - -C "+dir)
	return extract(r, dir, opts, true)
}

// An extractor holds the state of one layer's extraction.
type extractor struct {
	root    *root
	opts    Options
	apply   bool
	chown   bool            // only root may give files away
	written map[string]bool // names this layer wrote: an opaque whiteout keeps them
	dirs    []dirTime       // directory mtimes, set last: adding children changes them
	parent  parentCache
	stats   Stats
}

// parentCache holds the directory of the last entry open: a tar lists a
// directory's entries together, so most entries resolve their parent once
// per directory instead of once per entry. Any removal makes it stale, as
// the directory it holds might be gone or no longer be the one the name
// resolves to; it is closed at the next lookup, never while an entry still
// uses it.
type parentCache struct {
	name  string
	f     *os.File
	stale bool
}

// parentDir opens (creating what is missing) the directory parent of an
// entry, beneath the root. The descriptor stays the extractor's.
func (e *extractor) parentDir(parent string) (int, error) {
	c := &e.parent
	if c.f != nil && (c.stale || c.name != parent) {
		c.f.Close()
		c.f = nil
	}
	if c.f == nil {
		f, err := e.root.mkdirAll(parent)
		if err != nil {
			return -1, err
		}
		*c = parentCache{name: parent, f: f}
	}
	return int(c.f.Fd()), nil
}

type dirTime struct {
	name string
	hdr  *tar.Header
}

func extract(r io.Reader, dir string, opts Options, apply bool) (Stats, error) {
	mode := resolve.Beneath
	if opts.InRoot {
		mode = resolve.InRoot
	}
	rt, err := openRoot(dir, mode)
	if err != nil {
		return Stats{}, err
	}
	defer rt.close()
	e := &extractor{root: rt, opts: opts, apply: apply,
		chown: os.Geteuid() == 0, written: map[string]bool{}}
	defer func() {
		if e.parent.f != nil {
			e.parent.f.Close()
		}
	}()
	tr := tar.NewReader(r)
	last := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return e.stats, fmt.Errorf("reading layer after entry %q: %w", last, err)
		}
		if err := e.entry(hdr, tr); err != nil {
			return e.stats, &EntryError{Name: hdr.Name, Err: err}
		}
		last = hdr.Name
	}
	return e.stats, e.dirTimes()
}

// entry writes one tar entry below the root.
func (e *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX defaults for the archive (git archive writes one), not a file
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	e.stats.Files++
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the layer's top entry must be a directory")
		}
		return nil // the layer directory itself: its owner picked its mode
	}
	parent, base := splitName(name)
	if isWhiteout(base) {
		return e.whiteout(parent, base)
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		return ErrDevice
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	pfd, err := e.parentDir(parent)
	if err != nil {
		return err
	}
	if err := e.create(pfd, name, hdr, r); err != nil {
		return err
	}
	e.mark(name)
	if hdr.Typeflag == tar.TypeLink {
		return nil // a hard link shares its target's inode and attributes
	}
	return e.attrs(pfd, name, hdr)
}

// mark records that this layer wrote name, and so its parent directories.
func (e *extractor) mark(name string) {
	for ; name != "" && !e.written[name]; name, _ = splitName(name) {
		e.written[name] = true
	}
}

// create makes the entry itself, replacing an earlier one of the same name
// (tar semantics: the last entry wins), except that a directory over a
// directory keeps what the first one holds.
func (e *extractor) create(pfd int, name string, hdr *tar.Header, r io.Reader) error {
	_, base := splitName(name)
	var err error
	switch hdr.Typeflag {
	case tar.TypeDir:
		if e.isDir(pfd, base) {
			return nil
		}
		if err := e.clear(pfd, name); err != nil {
			return err
		}
		err = unix.Mkdirat(pfd, base, 0o700)
	case tar.TypeReg:
		if err := e.clear(pfd, name); err != nil {
			return err
		}
		return e.file(pfd, name, hdr, r)
	case tar.TypeSymlink:
		if err := e.clear(pfd, name); err != nil {
			return err
		}
		err = unix.Symlinkat(hdr.Linkname, pfd, base)
	case tar.TypeLink:
		return e.hardlink(pfd, name, hdr.Linkname)
	case tar.TypeFifo:
		if err := e.clear(pfd, name); err != nil {
			return err
		}
		err = unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0)
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: path.Join(e.root.dir, name), Err: err}
	}
	return nil
}

// isDir reports whether base in pfd is a directory (not a symlink to one).
func (e *extractor) isDir(pfd int, base string) bool {
	var st unix.Stat_t
	return unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// clear removes whatever name holds, a whole tree for a directory.
func (e *extractor) clear(pfd int, name string) error {
	_, base := splitName(name)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		return nil
	}
	e.parent.stale = true
	return e.root.removeAll(name)
}

// file writes a regular file's contents, counting them against MaxSize. The
// declared size is checked first, so a bomb writes nothing; the tar reader
// never yields more than it declared.
func (e *extractor) file(pfd int, name string, hdr *tar.Header, r io.Reader) error {
	if max := e.opts.MaxSize; max > 0 && e.stats.Bytes+hdr.Size > max {
		return fmt.Errorf("%w: %d bytes so far plus %d is more than %d", ErrTooBig, e.stats.Bytes, hdr.Size, max)
	}
	_, base := splitName(name)
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "openat", Path: path.Join(e.root.dir, name), Err: err}
	}
	f := os.NewFile(uintptr(fd), path.Join(e.root.dir, name))
	n, err := io.Copy(f, r)
	e.stats.Bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("layer truncated in this file's contents: %w", err)
	}
	return err
}

// hardlink links name to target, which must be a regular file this layer
// (or, for Apply, an earlier one) has already put inside the root. Its parent
// is opened beneath the root like any other path, and linkat(2) without
// AT_SYMLINK_FOLLOW never follows the last component.
func (e *extractor) hardlink(pfd int, name, target string) error {
	clean, err := cleanName(target)
	if err != nil || clean == "" {
		return fmt.Errorf("%w: link to %q", ErrHardlink, target)
	}
	tparent, tbase := splitName(clean)
	tf, err := e.root.openDir(tparent, unix.O_PATH)
	if errors.Is(err, ErrEscape) {
		return fmt.Errorf("link to %q: %w", target, err)
	}
	if err != nil { // no such directory, or a file where one should be
		return fmt.Errorf("%w: link to %q: %w", ErrHardlink, target, err)
	}
	defer tf.Close()
	tfd := int(tf.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: link to %q", ErrHardlink, target)
	}
	if clean == name {
		return nil // a link to itself: already there
	}
	if err := e.clear(pfd, name); err != nil {
		return err
	}
	_, base := splitName(name)
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return &os.PathError{Op: "linkat", Path: path.Join(e.root.dir, name), Err: err}
	}
	return nil
}

// whiteout records a deletion: as overlayfs expects it (Unpack), or by
// deleting (Apply).
func (e *extractor) whiteout(parent, base string) error {
	target, opaque, err := parseWhiteout(base)
	if err != nil {
		return err
	}
	pfd, err := e.parentDir(parent)
	if err != nil {
		return err
	}
	switch {
	case opaque && e.apply:
		return e.emptyDir(parent)
	case opaque:
		if err := unix.Setxattr(fdPath(pfd, ""), opaqueXattr, []byte("y"), 0); err != nil {
			return &os.PathError{Op: "setxattr " + opaqueXattr, Path: path.Join(e.root.dir, parent), Err: err}
		}
		return nil
	case e.apply:
		e.parent.stale = true
		return e.root.removeAll(path.Join(parent, target))
	}
	name := path.Join(parent, target)
	if err := e.clear(pfd, name); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknod", Path: path.Join(e.root.dir, name), Err: err}
	}
	return nil
}

// emptyDir deletes what the directory held before this layer: everything
// this layer has not written itself.
func (e *extractor) emptyDir(dir string) error {
	f, err := e.root.openDir(dir, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		if name := path.Join(dir, n); !e.written[name] {
			e.parent.stale = true
			// Relative to the directory already open: n is one plain
			// name, and RemoveAll never follows it.
			if err := resolve.RemoveAll(f, n, resolve.Beneath); err != nil {
				return err
			}
		}
	}
	return nil
}
