package namespaces

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

// The attack of CVE-2019-5736, aimed at a copy of this test binary (the
// victim): a process that can see the init holds its /proc/PID/exe, and
// opens it for writing, now and once the init is gone. The tests play
// that process from outside the init's namespaces, which sees the same
// file through /proc/PID/exe as a process inside would.

// victim copies this test binary to a directory of its own and returns
// its path.
func victim(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), "bin", "minictr")
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// attack tries to rewrite the binary the blocked child c runs: at once,
// and through a handle kept on /proc/PID/exe once c is dead. It returns
// the errors of both opens (nil: the file was opened for writing, and the
// second one wrote to it).
func attack(t *testing.T, c *Child) (now, later error) {
	t.Helper()
	exe := "/proc/" + strconv.Itoa(c.Pid) + "/exe"
	f, now := os.OpenFile(exe, os.O_WRONLY, 0)
	if now == nil {
		f.Close()
	}
	held, err := os.OpenFile(exe, unix.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	c.Signal(syscall.SIGKILL)
	c.Wait()
	f, later = os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(held.Fd())), os.O_WRONLY, 0)
	if later != nil {
		return now, later
	}
	defer f.Close()
	_, later = f.Write([]byte("pwned"))
	return now, later
}

func head(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[:5]
}

// The positive control: re-executed from the host's file, the init's
// binary is open for writing as soon as the init is gone (ETXTBSY before
// that is all that stops it).
func TestExeWallOff(t *testing.T) {
	path := victim(t)
	c := start(t, "block", Config{Path: path})
	now, later := attack(t, c)
	if !errors.Is(now, syscall.ETXTBSY) {
		t.Errorf("open for writing while it runs: %v, want ETXTBSY", now)
	}
	if later != nil {
		t.Errorf("open for writing once it is gone: %v, want the escape to work without the wall", later)
	}
	if got := head(t, path); string(got) != "pwned" {
		t.Errorf("victim starts with %q: the attack did not rewrite it", got)
	}
}

// The wall: re-executed from SealedExe, the init runs from a read-only
// overlayfs that exists in no mount namespace: EROFS, by design, whether
// the init runs or not; the victim is untouched.
func TestSealedExeOverlay(t *testing.T) {
	testenv.SkipIfNotRoot(t) // fsopen of an overlayfs needs CAP_SYS_ADMIN
	path := victim(t)
	before := head(t, path)
	exe, err := SealedExe(path, []string{t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, "block", Config{Exe: exe})
	exe.Close()
	// (Polled, as in TestSealedExeMemfd: the emulated lab VM was seen
	// still showing the test binary's filesystem here.)
	var st unix.Statfs_t
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := unix.Statfs("/proc/"+strconv.Itoa(c.Pid)+"/exe", &st); err != nil {
			t.Fatal(err)
		}
		if st.Type == unix.OVERLAYFS_SUPER_MAGIC || time.Now().After(deadline) {
			break
		}
	}
	if st.Type != unix.OVERLAYFS_SUPER_MAGIC || st.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the child's exe is on filesystem %#x, flags %#x: want a read-only overlayfs", st.Type, st.Flags)
	}
	if _, err := os.OpenFile("/proc/"+strconv.Itoa(c.Pid)+"/exe", os.O_WRONLY|os.O_TRUNC, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open with O_TRUNC: %v, want EROFS", err)
	}
	now, later := attack(t, c)
	if !errors.Is(now, syscall.EROFS) || !errors.Is(later, syscall.EROFS) {
		t.Errorf("open for writing: %v while it runs, %v once it is gone; want EROFS both times", now, later)
	}
	if got := head(t, path); !bytes.Equal(got, before) {
		t.Errorf("victim starts with %q, was %q", got, before)
	}
}

func TestEmptyLayer(t *testing.T) {
	dir := t.TempDir()
	inside, beside := filepath.Join(dir, "bin", "empty"), filepath.Join(dir, "empty")
	got, err := emptyLayer(filepath.Join(dir, "bin"), []string{inside, dir, beside})
	if err != nil || got != beside {
		t.Errorf("emptyLayer = %q, %v; want %q (the others overlap the binary's directory)", got, err, beside)
	}
	if _, err := emptyLayer(filepath.Join(dir, "bin"), []string{inside}); err == nil {
		t.Error("emptyLayer accepted a directory inside the binary's")
	}
}

// Without overlayfs, SealedExe falls back to a sealed memfd copy: writes
// fail with EPERM (F_SEAL_WRITE) and could only reach the copy anyway.
func TestSealedExeMemfd(t *testing.T) {
	path := victim(t)
	before := head(t, path)
	exe, err := memfdExe(path)
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, "block", Config{Exe: exe})
	exe.Close()
	// (Polled: the lab VM's emulated 6.1 kernel was once seen still showing
	// the test binary here.)
	var link string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		link, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", c.Pid))
		if link == "/memfd:minictr (deleted)" || time.Now().After(deadline) {
			break
		}
	}
	if link != "/memfd:minictr (deleted)" {
		t.Errorf("the child's exe is %q, want the memfd", link)
	}
	now, later := attack(t, c)
	if !errors.Is(now, syscall.ETXTBSY) && !errors.Is(now, syscall.EPERM) {
		t.Errorf("open for writing while it runs: %v", now)
	}
	if !errors.Is(later, syscall.EPERM) {
		t.Errorf("writing once it is gone: %v, want EPERM (sealed)", later)
	}
	if got := head(t, path); !bytes.Equal(got, before) {
		t.Errorf("victim starts with %q, was %q", got, before)
	}
}

// BenchmarkSealedExe is the wall's share of a container start.
func BenchmarkSealedExe(b *testing.B) {
	testenv.SkipIfNotRoot(b)
	empty := []string{b.TempDir()}
	for b.Loop() {
		f, err := SealedExe("/proc/self/exe", empty, nil)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkMemfdExe is the fallback's, for comparison.
func BenchmarkMemfdExe(b *testing.B) {
	for b.Loop() {
		f, err := memfdExe("/proc/self/exe")
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
