package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOutputNewAndRegularFiles(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "out.tar")
	if err := Output(name, 0o640, writeString("one")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, name); got != "one" {
		t.Fatalf("new file has %q", got)
	}
	if fi, _ := os.Stat(name); fi.Mode() != 0o640 {
		t.Errorf("mode %v, want -rw-r-----", fi.Mode())
	}
	// A failed write leaves the old content: the new one went to a
	// temporary file that is removed.
	if err := Output(name, 0o640, func(w io.Writer) error {
		io.WriteString(w, "half")
		return errors.New("interrupted")
	}); err == nil {
		t.Fatal("a failed write reported success")
	}
	if got := readFile(t, name); got != "one" {
		t.Fatalf("after a failed write: %q, want the old content", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := Output(dir, 0o644, writeString("x")); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("writing to a directory: %v, want EISDIR", err)
	}
}

// A symlink is followed: its target gets the content, the link stays,
// also when the link dangles or is relative through a linked directory.
func TestOutputFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "sub", "real")
	os.MkdirAll(real, 0o755)
	os.WriteFile(filepath.Join(real, "target"), []byte("old"), 0o644)
	os.Symlink("sub/real", filepath.Join(dir, "dirlink"))
	os.Symlink("target", filepath.Join(real, "link"))                      // relative, to a file
	os.Symlink(filepath.Join(real, "new"), filepath.Join(dir, "dangling")) // absolute, dangling
	// ".." from sub/real, as the kernel resolves it; dir/dirlink/.. taken
	// lexically would be dir.
	os.Symlink("../up", filepath.Join(real, "up"))
	for _, tc := range []struct{ via, target, content string }{
		{filepath.Join(dir, "dirlink", "link"), filepath.Join(real, "target"), "via link"},
		{filepath.Join(dir, "dangling"), filepath.Join(real, "new"), "via dangling"},
		{filepath.Join(dir, "dirlink", "up"), filepath.Join(dir, "sub", "up"), "via up"},
	} {
		if err := Output(tc.via, 0o644, writeString(tc.content)); err != nil {
			t.Fatalf("%s: %v", tc.via, err)
		}
		if got := readFile(t, tc.target); got != tc.content {
			t.Errorf("%s: target has %q, want %q", tc.via, got, tc.content)
		}
		if fi, err := os.Lstat(tc.via); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink: %v", tc.via, err)
		}
	}
	loop := filepath.Join(dir, "loop")
	os.Symlink("loop", loop)
	if err := Output(loop, 0o644, writeString("x")); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("a symlink loop: %v, want ELOOP", err)
	}
}

// A FIFO is written in place, as a stream, and stays a FIFO.
func TestOutputFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- string(b)
	}()
	err := Output(fifo, 0o644, writeString("through the pipe"))
	if fi, lerr := os.Lstat(fifo); lerr != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced (%v), Output said %v", lerr, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "through the pipe" {
			t.Errorf("reader got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader got nothing in 10s")
	}
}

// A device is written in place and stays a device. The test makes its own
// nodes (char 1,7 is /dev/full, 1,3 /dev/null), so a failure can never
// harm the host's.
func TestOutputDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mknod(2) of a character device")
	}
	dir := t.TempDir()
	full, null := filepath.Join(dir, "full"), filepath.Join(dir, "null")
	if err := unix.Mknod(full, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 7))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := Output(full, 0o644, writeString("no room")); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing to a full device: %v, want ENOSPC", err)
	}
	if err := Output(null, 0o644, writeString("gone")); err != nil {
		t.Errorf("writing to a null device: %v", err)
	}
	for name, minor := range map[string]uint32{full: 7, null: 3} {
		var st unix.Stat_t
		if err := unix.Lstat(name, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != minor {
			t.Errorf("%s is no longer char device 1,%d: mode %o rdev %d,%d", name, minor, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files left beside the devices: %v", entries)
	}
}

// TestOutputProtectedSymlinks: a link that someone else planted in a
// sticky, world-writable directory is not followed (fs.protected_symlinks).
func TestOutputProtectedSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to plant a link owned by another user")
	}
	dir := t.TempDir()
	sticky := filepath.Join(dir, "tmp")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(sticky, "out.tar")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := Output(link, 0o644, writeString("archive")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("planted link: %v, want EACCES", err)
	}
	if got := readFile(t, victim); got != "root's" {
		t.Errorf("victim now holds %q", got)
	}
	// Our own link there is followed.
	if err := os.Lchown(link, os.Geteuid(), os.Getegid()); err != nil {
		t.Fatal(err)
	}
	if err := Output(link, 0o644, writeString("archive")); err != nil {
		t.Errorf("own link: %v", err)
	}
}

// An existing file reached through a link keeps what `>` keeps: its mode
// and, where a rename would lose them, its other hard links, which see the
// new content. It used to become a new 0644 file of the caller's.
func TestOutputKeepsModeAndLinks(t *testing.T) {
	dir := t.TempDir()
	target, link := filepath.Join(dir, "out.tar"), filepath.Join(dir, "link")
	must(t, os.WriteFile(target, []byte("old"), 0o600))
	must(t, os.Chmod(target, 0o640|os.ModeSetgid))
	must(t, os.Symlink("out.tar", link))
	if err := Output(link, 0o644, writeString("new")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, target); got != "new" {
		t.Fatalf("target has %q", got)
	}
	if fi, _ := os.Stat(target); fi.Mode() != 0o640|os.ModeSetgid {
		t.Errorf("mode %v after the write, want the old -rw-r----- with set-group-ID", fi.Mode())
	}

	// A second name for the same file: written in place, both names see it.
	other := filepath.Join(dir, "hardlink")
	must(t, os.Link(target, other))
	before := inode(t, target)
	if err := Output(link, 0o644, writeString("newer")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, other); got != "newer" {
		t.Errorf("the other hard link has %q, want the new content", got)
	}
	if inode(t, target) != before {
		t.Errorf("the file was replaced: its hard link is split off")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// As root, the owner is kept too (the new file is given it before the
// rename), also when the target is root's save -o through a user's link.
func TestOutputKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "out.tar")
	must(t, os.WriteFile(target, []byte("old"), 0o600))
	must(t, os.Chown(target, 65534, 65534))
	must(t, os.Chmod(target, 0o750|os.ModeSetuid)) // set-user-ID survives: set after the chown
	if err := Output(target, 0o644, writeString("new")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(target)
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 65534 || st.Gid != 65534 || fi.Mode() != 0o750|os.ModeSetuid {
		t.Errorf("after the write: %d:%d %v, want 65534:65534 -rwsr-x---", st.Uid, st.Gid, fi.Mode())
	}
	if got := readFile(t, target); got != "new" {
		t.Errorf("target has %q", got)
	}
}

func inode(t *testing.T, name string) uint64 {
	t.Helper()
	fi, err := os.Stat(name)
	must(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
