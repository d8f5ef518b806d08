package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/minictr/minictr/pkg/trace"
	"golang.org/x/sys/unix"
)

// The whiteouts of the image spec (image-spec layer.md) and overlayfs's
// opaque mark: a copy turns a layer directory's overlayfs whiteouts back
// into these tar entries, which Apply turns into deletions.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// prepareCopy builds DIR/rootfs by applying the unpacked layers lowers (top
// first) bottom to top, turning their overlayfs whiteouts back into
// deletions. Each layer directory is re-read as a tar stream and given to
// apply, the same safe extraction as a download: a symlink left by one
// layer cannot redirect the files of the next.
func (s *Snapshot) prepareCopy(lowers []string, apply func(io.Reader, string) error, t trace.Tracer) error {
	if apply == nil {
		return errors.New("copy snapshot: no layer applier given")
	}
	rootfs := s.Rootfs()
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return fmt.Errorf("preparing snapshot: %w", err)
	}
	for i := len(lowers) - 1; i >= 0; i-- {
		t.Step(stage, "copy layer "+lowers[i]+" onto "+rootfs+" (whiteouts delete)",
			"tar -C "+lowers[i]+" -cf - . | tar -xf - -C "+rootfs)
		if err := copyLayer(lowers[i], rootfs, apply); err != nil {
			return fmt.Errorf("copying layer %s: %w", lowers[i], err)
		}
	}
	return nil
}

func copyLayer(layer, rootfs string, apply func(io.Reader, string) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeTar(pw, layer)
		pw.CloseWithError(err)
		done <- err
	}()
	err := apply(pr, rootfs)
	pr.CloseWithError(errors.New("apply stopped")) // unblocks the writer if apply failed early
	if werr := <-done; err == nil {
		err = werr
	}
	return err
}

// writeTar writes the directory layer as a tar stream, with its overlayfs
// whiteouts in their tar form again (".wh.NAME", ".wh..wh..opq").
func writeTar(w io.Writer, layer string) error {
	tw := tar.NewWriter(w)
	links := map[uint64]string{} // inode -> first name, to keep hard links
	err := filepath.WalkDir(layer, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == layer {
			return err
		}
		rel, err := filepath.Rel(layer, p)
		if err != nil {
			return err
		}
		return writeEntry(tw, p, filepath.ToSlash(rel), links)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, p, name string, links map[uint64]string) error {
	info, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat_t", p)
	}
	if info.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0 {
		dir, base := filepath.Split(name)
		return tw.WriteHeader(&tar.Header{Name: dir + whiteoutPrefix + base, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
	}
	target := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		if target, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, target)
	if err != nil {
		return err
	}
	hdr.Name, hdr.Format = name, tar.FormatPAX
	if hdr.PAXRecords, err = readXattrs(p); err != nil {
		return err
	}
	if info.Mode().IsRegular() && st.Nlink > 1 {
		if first, ok := links[st.Ino]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			links[st.Ino] = name
		}
	}
	if info.IsDir() {
		hdr.Name += "/"
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if info.IsDir() {
		return writeOpaque(tw, p, name)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// writeOpaque adds ".wh..wh..opq" inside a directory that overlayfs marks
// opaque.
func writeOpaque(tw *tar.Writer, p, name string) error {
	buf := make([]byte, 1)
	n, err := unix.Lgetxattr(p, opaqueXattr, buf)
	if err != nil || n != 1 || buf[0] != 'y' {
		return nil // not opaque (ENODATA)
	}
	return tw.WriteHeader(&tar.Header{Name: name + "/" + opaqueWhiteout, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
}

// readXattrs returns a file's extended attributes as PAX records, leaving
// out overlayfs's own, which the copy turns into deletions instead.
func readXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
	}
	var recs map[string]string
	for _, attr := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if attr == "" || strings.HasPrefix(attr, "trusted.overlay.") {
			continue
		}
		val := make([]byte, 64*1024)
		m, err := unix.Lgetxattr(p, attr, val)
		if err != nil {
			return nil, &os.PathError{Op: "lgetxattr " + attr, Path: p, Err: err}
		}
		if recs == nil {
			recs = map[string]string{}
		}
		recs["SCHILY.xattr."+attr] = string(val[:m])
	}
	return recs, nil
}
