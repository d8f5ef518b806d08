package layer

import (
	"archive/tar"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// attrs sets owner, mode, extended attributes and times. chown comes before
// chmod because chown(2) clears the setuid and setgid bits.
func (e *extractor) attrs(pfd int, name string, hdr *tar.Header) error {
	_, base := splitName(name)
	full := path.Join(e.root.dir, name)
	if e.chown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lchown", Path: full, Err: err}
		}
	}
	if hdr.Typeflag != tar.TypeSymlink { // a symlink's mode is always 0777
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: full, Err: err}
		}
	}
	if err := e.xattrs(pfd, name, hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		e.dirs = append(e.dirs, dirTime{name, hdr})
		return nil
	}
	return setTimes(pfd, base, full, hdr)
}

// xattrs sets the extended attributes a PAX header carries as
// "SCHILY.xattr.NAME". trusted.overlay.* is refused: an attribute such as
// trusted.overlay.redirect would make overlayfs look up another path.
func (e *extractor) xattrs(pfd int, name string, hdr *tar.Header) error {
	_, base := splitName(name)
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if strings.HasPrefix(attr, "trusted.overlay.") {
			return fmt.Errorf("refusing overlayfs attribute %s", attr)
		}
		if err := unix.Lsetxattr(fdPath(pfd, base), attr, []byte(v), 0); err != nil {
			return &os.PathError{Op: "lsetxattr " + attr, Path: path.Join(e.root.dir, name), Err: err}
		}
	}
	return nil
}

// dirTimes sets the directory times last, once their contents are written.
func (e *extractor) dirTimes() error {
	for _, d := range e.dirs {
		parent, base := splitName(d.name)
		pf, err := e.root.openDir(parent, unix.O_PATH)
		if err != nil {
			return err
		}
		err = setTimes(int(pf.Fd()), base, path.Join(e.root.dir, d.name), d.hdr)
		pf.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func setTimes(pfd int, base, full string, hdr *tar.Header) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: full, Err: err}
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return unix.NsecToTimespec(t.UnixNano())
}
