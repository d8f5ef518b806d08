package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

// The stdio wall: a container never holds the engine's own files or
// terminal. These tests give minictr files and a terminal of their own
// (a pty pair from /dev/ptmx, never the real terminal) as its stdio.

// wallsEnv skips without root or busybox and returns a busybox root.
func wallsEnv(t *testing.T) string {
	t.Helper()
	testenv.SkipIfNotRoot(t)
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := testenv.BusyboxRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// minictr runs this test binary as minictr (TestMain dispatches on
// argv[0]) with the given stdio, and returns its exit status.
func minictr(t *testing.T, stdin, stdout, stderr *os.File, args ...string) *exec.Cmd {
	t.Helper()
	state := t.TempDir()
	cmd := &exec.Cmd{
		Path:   os.Args[0],
		Args:   append([]string{"minictr"}, args...),
		Env:    append(os.Environ(), "MINICTR_ROOT="+state+"/root", "MINICTR_RUN_ROOT="+state+"/run"),
		Stdin:  stdin,
		Stdout: stdout,
		Stderr: stderr,
	}
	return cmd
}

func runStatus(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// newPty returns the two ends of a new terminal of the test's own.
func newPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skip(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY)
	if errno != 0 {
		t.Fatal(errno)
	}
	s := os.NewFile(fd, "pts")
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// readAll reads the master until the terminal has no other end open (EIO)
// or the deadline.
func readAll(master *os.File, within time.Duration) string {
	out := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, master)
		out <- b.Bytes()
	}()
	select {
	case b := <-out:
		return string(b)
	case <-time.After(within):
		master.Close()
		return string(<-out) + "[timed out]"
	}
}

// TestRunTTY: -t gives the container a terminal of its own, in its own
// /dev/pts, with the size of the user's; the exit status is unchanged.
func TestRunTTY(t *testing.T) {
	rootfs := wallsEnv(t)
	master, slave := newPty(t)
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 97}); err != nil {
		t.Fatal(err)
	}
	cmd := minictr(t, slave, slave, slave, "run", "-t", "--rootfs", rootfs, "--",
		"sh", "-c", "tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-terminal; exit 3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out := readAll(master, 30*time.Second)
	if code := runStatus(t, cmd.Wait()); code != 3 {
		t.Errorf("exit status %d, want 3; output %q", code, out)
	}
	for _, want := range []string{"/dev/pts/0\r", "33 97\r", "all-terminal\r"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

// TestRunInteractiveTTY: -it takes the keystrokes through the container's
// terminal (its line discipline edits and echoes), with the user's
// terminal in raw mode meanwhile and back in its mode afterwards.
func TestRunInteractiveTTY(t *testing.T) {
	rootfs := wallsEnv(t)
	master, slave := newPty(t)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	cmd := minictr(t, slave, slave, slave, "run", "-it", "--rootfs", rootfs, "--",
		"sh", "-c", "read line; echo got:$line; exit 4")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Typed before the container reads: the terminals buffer it.
	if _, err := master.Write([]byte("typed\n")); err != nil {
		t.Fatal(err)
	}
	outc := make(chan string, 1)
	go func() { outc <- readAll(master, 30*time.Second) }()
	code := runStatus(t, cmd.Wait())
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out := <-outc
	if code != 4 {
		t.Errorf("exit status %d, want 4; output %q", code, out)
	}
	if !strings.Contains(out, "got:typed\r") {
		t.Errorf("output %q lacks the line read through the container's terminal", out)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("the user's terminal was not restored: lflag %#x, want %#x", after.Lflag, before.Lflag)
	}
}

// TestRunNoTTYWithoutT: given the test's terminal as stdio, a container
// without -t holds no terminal (no fd is one, /dev/tty is ENXIO: no
// controlling terminal), so TIOCSTI has nothing to push keystrokes into;
// its stdio are /dev/null and pipes. The positive control: a process given
// the same stdio directly holds the terminal on all three.
func TestRunNoTTYWithoutT(t *testing.T) {
	rootfs := wallsEnv(t)
	probe := `for fd in 0 1 2; do [ -t $fd ] && echo terminal-on-$fd; done; for fd in 0 1 2; do readlink /proc/self/fd/$fd; done; cat /dev/tty`
	for _, tc := range []struct {
		flags []string
		stdin string
	}{
		{nil, "/dev/null"},
		{[]string{"-i"}, "pipe:"},
	} {
		master, slave := newPty(t)
		cmd := minictr(t, slave, slave, slave, append(append([]string{"run"}, tc.flags...), "--rootfs", rootfs, "--", "sh", "-c", probe)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		slave.Close()
		out := readAll(master, 30*time.Second)
		_ = cmd.Wait()
		if strings.Contains(out, "terminal-on-") {
			t.Errorf("%v: the container holds a terminal: %q", tc.flags, out)
		}
		// stdout and stderr are two pipes the engine copies apart: cat's
		// complaint (stderr) may come before or after the readlink lines
		// (stdout), which keep their order among themselves.
		stdout := strings.Replace(out, "cat: can't open '/dev/tty': No such device or address\r\n", "", 1)
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tc.stdin) + `.*\r\npipe:\[\d+\]\r\npipe:\[\d+\]\r$`).MatchString(stdout) {
			t.Errorf("%v: stdio %q, want %s and two pipes", tc.flags, out, tc.stdin)
		}
		if !strings.Contains(out, "can't open '/dev/tty': No such device or address") {
			t.Errorf("%v: /dev/tty: %q, want ENXIO (no controlling terminal)", tc.flags, out)
		}
	}

	master, slave := newPty(t)
	direct := exec.Command("sh", "-c", `for fd in 0 1 2; do [ -t $fd ] && echo terminal-on-$fd; done`)
	direct.Stdin, direct.Stdout, direct.Stderr = slave, slave, slave
	direct.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := direct.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out := readAll(master, 10*time.Second)
	_ = direct.Wait()
	if !strings.Contains(out, "terminal-on-0\r\nterminal-on-1\r\nterminal-on-2") {
		t.Errorf("positive control: a process given the terminal directly: %q", out)
	}
}

// TestRunStdioFilesOutOfReach: the attack reopens its stdio through
// /proc/self/fd (which opens the file anew, with any mode) to write the
// file minictr read from, and to truncate the logs it writes to. Through
// the engine's pipes it reaches none of them. The positive control: the
// same shell given the files directly rewrites all three.
func TestRunStdioFilesOutOfReach(t *testing.T) {
	rootfs := wallsEnv(t)
	attack := `echo x > /proc/self/fd/0; echo y > /proc/self/fd/1; echo z > /proc/self/fd/2`
	open := func(dir string) (in, out, errf *os.File) {
		for name, content := range map[string]string{"in": "the host's file\n", "out": "log\n", "err": "log\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if in, err = os.Open(filepath.Join(dir, "in")); err != nil { // read-only
			t.Fatal(err)
		}
		flags := os.O_WRONLY | os.O_APPEND
		if out, err = os.OpenFile(filepath.Join(dir, "out"), flags, 0); err != nil {
			t.Fatal(err)
		}
		if errf, err = os.OpenFile(filepath.Join(dir, "err"), flags, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close(); out.Close(); errf.Close() })
		return in, out, errf
	}
	read := func(dir, name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	for _, flags := range [][]string{nil, {"-i"}} {
		dir := t.TempDir()
		in, out, errf := open(dir)
		cmd := minictr(t, in, out, errf, append(append([]string{"run"}, flags...), "--rootfs", rootfs, "--", "sh", "-c", attack)...)
		if code := runStatus(t, cmd.Run()); code != 0 {
			t.Fatalf("%v: exit status %d: %s", flags, code, read(dir, "err"))
		}
		if got := read(dir, "in"); got != "the host's file\n" {
			t.Errorf("%v: the host's input file became %q", flags, got)
		}
		// The container's writes arrive, appended by the engine's copy.
		if got := read(dir, "out"); got != "log\ny\n" {
			t.Errorf("%v: stdout log %q, want %q", flags, got, "log\ny\n")
		}
		if got := read(dir, "err"); got != "log\nz\n" {
			t.Errorf("%v: stderr log %q, want %q", flags, got, "log\nz\n")
		}
	}

	dir := t.TempDir()
	in, out, errf := open(dir)
	direct := exec.Command("sh", "-c", attack)
	direct.Stdin, direct.Stdout, direct.Stderr = in, out, errf
	if err := direct.Run(); err != nil {
		t.Fatal(err)
	}
	if read(dir, "in") != "x\n" || read(dir, "out") != "y\n" || read(dir, "err") != "z\n" {
		t.Errorf("positive control: given directly, the files became %q, %q, %q", read(dir, "in"), read(dir, "out"), read(dir, "err"))
	}
}

// TestRunInteractiveNeedsTerminal: -it with a stdin that is no terminal
// is docker's error, before anything starts; -t alone works.
func TestRunInteractiveNeedsTerminal(t *testing.T) {
	rootfs := wallsEnv(t)
	var stderr bytes.Buffer
	cmd := minictr(t, nil, nil, nil, "run", "-it", "--rootfs", rootfs, "--", "true")
	cmd.Stderr = &stderr
	if code := runStatus(t, cmd.Run()); code != 125 || stderr.String() != "minictr: the input device is not a TTY\n" {
		t.Errorf("-it without a terminal: status %d, %q", code, stderr.String())
	}
	var stdout bytes.Buffer
	cmd = minictr(t, nil, nil, nil, "run", "-t", "--rootfs", rootfs, "--", "sh", "-c", "tty; exit 5")
	cmd.Stdout = &stdout
	if code := runStatus(t, cmd.Run()); code != 5 || stdout.String() != "/dev/pts/0\r\n" {
		t.Errorf("-t without a terminal: status %d, output %q", code, stdout.String())
	}
}

// tiocstiSource is a program that tries TIOCSTI, the ioctl that pushes
// bytes into a terminal's input as if typed, on fds 0, 1, 2 and on
// /dev/tty, and prints what each attempt gave.
const tiocstiSource = `package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func try(fd uintptr) string {
	for _, c := range []byte("echo INJECTED\n") {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSTI, uintptr(unsafe.Pointer(&c))); e != 0 {
			return e.Error()
		}
	}
	return "pushed"
}

func main() {
	for fd := uintptr(0); fd <= 2; fd++ {
		fmt.Printf("fd %d: %s\n", fd, try(fd))
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		fmt.Printf("/dev/tty: %v\n", err.(*os.PathError).Err)
		return
	}
	fmt.Printf("/dev/tty: %s\n", try(tty.Fd()))
}
`

// buildStatic compiles a one-file program, static, into dir/name: the
// container's busybox root has no such tool.
func buildStatic(t *testing.T, dir, name, source string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command to build the " + name + " program")
	}
	src := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(src, []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(gobin, "build", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GO111MODULE=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the %s program: %v\n%s", name, err, b)
	}
	return out
}

// typedInto returns what sits in the input queue of the terminal whose
// other end is slave: what a shell reading it would run.
func typedInto(t *testing.T, slave *os.File) string {
	t.Helper()
	fd := int(slave.Fd())
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return ""
	}
	b := make([]byte, n)
	n, _ = unix.Read(fd, b)
	return string(b[:max(n, 0)])
}

// TestRunTIOCSTI: a container given the test's terminal as minictr's
// stdio pushes nothing into it: without -t it holds no terminal (ENOTTY on
// /dev/null and the pipes, ENXIO for /dev/tty: no controlling terminal);
// with -t its TIOCSTI lands in its own terminal. The positive control: the
// same program given the terminal directly pushes a command into it.
func TestRunTIOCSTI(t *testing.T) {
	rootfs := wallsEnv(t)
	prog := buildStatic(t, rootfs, "tiocsti", tiocstiSource)

	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "fd 0: inappropriate ioctl for device\r\nfd 1: inappropriate ioctl for device\r\nfd 2: inappropriate ioctl for device\r\n/dev/tty: no such device or address\r\n"},
		{[]string{"-i"}, "fd 0: inappropriate ioctl for device\r\nfd 1: inappropriate ioctl for device\r\nfd 2: inappropriate ioctl for device\r\n/dev/tty: no such device or address\r\n"},
		// Its own terminal: what it pushes, it reads back itself.
		{[]string{"-t"}, "fd 0: pushed\r\r\n"},
	} {
		master, slave := newPty(t)
		args := append(append([]string{"run"}, tc.flags...), "--rootfs", rootfs, "--", "/tiocsti")
		cmd := minictr(t, slave, slave, slave, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		outc := make(chan string, 1)
		go func() { outc <- readAll(master, 30*time.Second) }()
		if code := runStatus(t, cmd.Wait()); code != 0 {
			t.Errorf("%v: exit status %d", tc.flags, code)
		}
		typed := typedInto(t, slave)
		slave.Close()
		out := <-outc
		if !strings.Contains(out, tc.want) {
			t.Errorf("%v: the container's attempts: %q, want %q", tc.flags, out, tc.want)
		}
		if typed != "" {
			t.Errorf("%v: the container typed %q into the test's terminal", tc.flags, typed)
		}
	}

	master, slave := newPty(t)
	defer master.Close()
	direct := exec.Command(prog)
	direct.Stdin, direct.Stdout, direct.Stderr = slave, slave, slave
	if err := direct.Run(); err != nil {
		t.Fatal(err)
	}
	if typed := typedInto(t, slave); !strings.Contains(typed, "echo INJECTED\n") {
		t.Errorf("positive control: given the terminal directly, the program typed %q", typed)
	}
}

// keyprobeSource looks for the key NAME through the session keyring, as
// its possessor would, and plants a key "planted-NAME" there.
const keyprobeSource = `package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func keyctl(args ...uintptr) (uintptr, syscall.Errno) {
	var a [5]uintptr
	copy(a[:], args)
	r, _, e := syscall.Syscall6(250, a[0], a[1], a[2], a[3], a[4], 0) // keyctl(2) on x86_64
	return r, e
}

func str(s string) uintptr { b := append([]byte(s), 0); return uintptr(unsafe.Pointer(&b[0])) }

const sessionKeyring = ^uintptr(2) // KEY_SPEC_SESSION_KEYRING, -3

func main() {
	name := os.Args[1]
	if _, e := keyctl(10, sessionKeyring, str("user"), str(name), 0); e != 0 { // KEYCTL_SEARCH
		fmt.Println("search:", e)
	} else {
		fmt.Println("search: found")
	}
	payload := []byte("from the container")
	_, _, e := syscall.Syscall6(248, str("user"), str("planted-"+name), uintptr(unsafe.Pointer(&payload[0])), uintptr(len(payload)), sessionKeyring, 0) // add_key
	if e != 0 {
		fmt.Println("add:", e)
	} else {
		fmt.Println("add: ok")
	}
}
`

// TestRunKeyringWall: a container can neither find a key in the session
// keyring of the process that started minictr nor plant one there; with
// the wall off (--no-new-keyring) it does both. seccomp is lifted
// (unconfined) so that the keyring wall alone is tested; with it, keyctl
// itself is refused. keyring-session (TestMain) makes the session and its
// key, never the host's keyrings.
func TestRunKeyringWall(t *testing.T) {
	rootfs := wallsEnv(t)
	buildStatic(t, rootfs, "keyprobe", keyprobeSource)
	name := "minictr-test-key-" + testenv.UniqueID()
	for _, tc := range []struct {
		flags         []string
		want, planted string
	}{
		{[]string{"--security-opt", "seccomp=unconfined"}, "search: required key not available\nadd: ok\n", "false"},
		{[]string{"--security-opt", "seccomp=unconfined", "--no-new-keyring"}, "search: found\nadd: ok\n", "true"},
		{nil, "search: operation not permitted\nadd: operation not permitted\n", "false"},
	} {
		var stdout, stderr bytes.Buffer
		// This binary as keyring-session, running minictr in its session.
		cmd := minictr(t, nil, nil, nil)
		cmd.Args = append(append([]string{"keyring-session", name, "minictr", "run"}, tc.flags...), "--rootfs", rootfs, "--", "/keyprobe", name)
		// keyring-session looks minictr up in PATH: this binary, as minictr.
		bin := t.TempDir()
		if err := os.Symlink(os.Args[0], filepath.Join(bin, "minictr")); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, "PATH="+bin+":"+os.Getenv("PATH"))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if code := runStatus(t, cmd.Run()); code != 0 {
			t.Fatalf("%v: status %d: %s", tc.flags, code, stderr.String())
		}
		if stdout.String() != tc.want {
			t.Errorf("%v: the container: %q, want %q", tc.flags, stdout.String(), tc.want)
		}
		if want := "keyring-session: planted key in the session keyring: " + tc.planted + "\n"; !strings.Contains(stderr.String(), want) {
			t.Errorf("%v: %q, want %q", tc.flags, stderr.String(), want)
		}
	}
}

// TestRunTTYResize: on SIGWINCH minictr gives the container's terminal the
// new size of the user's, whose kernel then signals the container (the
// test sends minictr the SIGWINCH its terminal would: the test's pty is
// not minictr's controlling terminal).
func TestRunTTYResize(t *testing.T) {
	rootfs := wallsEnv(t)
	master, slave := newPty(t)
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 20, Col: 60}); err != nil {
		t.Fatal(err)
	}
	cmd := minictr(t, slave, slave, slave, "run", "-t", "--rootfs", rootfs, "--",
		"sh", "-c", `trap 'stty size; exit 7' WINCH; stty size; echo ready; while :; do sleep 0.05; done`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
		n, err := master.Read(buf)
		out.Write(buf[:max(n, 0)])
		if err != nil {
			break
		}
	}
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 41, Col: 123}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	rest := readAll(master, 30*time.Second)
	if code := runStatus(t, cmd.Wait()); code != 7 {
		t.Errorf("exit status %d, want 7 (the container's WINCH trap)", code)
	}
	all := out.String() + rest
	if !strings.Contains(all, "20 60\r") || !strings.Contains(rest, "41 123\r") {
		t.Errorf("output %q: want the first size, then the new one", all)
	}
}
