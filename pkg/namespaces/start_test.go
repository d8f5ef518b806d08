package namespaces

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/procfs"
	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/trace"
)

// TestMain makes this test binary its own container init: Start re-executes
// it with argv[0] "minictr", which runs testInit instead of the tests.
func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"minictr": testInit})
}

// testInit is the child side of the tests; os.Args[1] picks what it does.
func testInit() int {
	mode := os.Args[1]
	switch mode {
	case "die-early":
		return 3 // before the handshake
	case "engine":
		return engine()
	case "block":
		// Never read the socket, so that its EOF cannot end us: only
		// Pdeathsig can.
		select {}
	}
	payload, r, err := Handshake()
	if err != nil {
		r.Fail(125, err)
		return 125
	}
	switch mode {
	case "inspect":
		if err := inspect(payload); err != nil {
			r.Fail(125, err)
			return 125
		}
		return execOrFail(r, "/bin/true")
	case "exec":
		return execOrFail(r, "/bin/sh", "-c", string(payload))
	case "exec-unready":
		return execUnready(r, "/bin/sleep", "60")
	case "ready-fail-exec":
		return execOrFail(r, "/nonexistent/program")
	case "sleep":
		if err := unix.Sethostname(payload); err != nil {
			r.Fail(125, os.NewSyscallError("sethostname", err))
			return 125
		}
		return execOrFail(r, "/bin/sleep", "60")
	case "send-file":
		// A pipe's read end travels with Ready; what was written into it
		// is there for the parent to read.
		pr, pw, err := os.Pipe()
		if err != nil {
			r.Fail(125, err)
			return 125
		}
		pw.Write(payload)
		pw.Close()
		if err := r.Ready(pr); err != nil {
			return 125
		}
		pr.Close()
		return execUnready(r, "/bin/true")
	case "fail":
		r.Fail(126, fmt.Errorf("cannot run %s", payload))
		return 126
	case "die-silent":
		return 4
	case "files":
		// Write the payload into each received file, then report which
		// are close-on-exec.
		for _, f := range r.Files() {
			flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
			if err != nil || flags&unix.FD_CLOEXEC == 0 {
				r.Fail(125, fmt.Errorf("received %s is not close-on-exec (%v)", f.Name(), err))
				return 125
			}
			if _, err := f.Write(payload); err != nil {
				r.Fail(125, err)
				return 125
			}
		}
		return execOrFail(r, "/bin/sh", "-c", fmt.Sprintf("exit %d", len(r.Files())))
	}
	r.Fail(125, fmt.Errorf("unknown test mode %q", mode))
	return 125
}

// engine plays a container engine that dies right after Start: it starts
// an init in a new PID namespace, prints its PID and exits.
func engine() int {
	c, err := Start(Config{Args: []string{"minictr", "block"}, Namespaces: []Kind{PID}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(c.Pid)
	return 0
}

// execOrFail reports Ready, as every init must, then execs argv.
func execOrFail(r *Reporter, argv ...string) int {
	if err := r.Ready(); err != nil {
		return 125 // the parent refused: no go-ahead
	}
	return execUnready(r, argv...)
}

// execUnready execs argv without reporting Ready: a broken init.
func execUnready(r *Reporter, argv ...string) int {
	err := unix.Exec(argv[0], argv, os.Environ())
	r.Fail(126, &os.PathError{Op: "exec", Path: argv[0], Err: err})
	return 126
}

// request is the payload of the inspect mode; facts is what it prints.
type request struct{ Hostname, Touch string }

type facts struct {
	Pid           int
	UID, GID      int
	Hostname      string
	Namespaces    map[string]string
	Interfaces    []string // name, and "up" when it is
	TouchedAsRoot bool
	Setgroups     string // /proc/self/setgroups
	Groups        []int
}

func inspect(payload []byte) error {
	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		return err
	}
	if req.Hostname != "" {
		if err := unix.Sethostname([]byte(req.Hostname)); err != nil {
			return os.NewSyscallError("sethostname", err)
		}
	}
	if req.Touch != "" {
		if err := os.WriteFile(req.Touch, []byte("made inside\n"), 0o644); err != nil {
			return err
		}
	}
	f := facts{Pid: os.Getpid(), UID: os.Getuid(), GID: os.Getgid(), Namespaces: nsLinks("/proc/thread-self")}
	sg, _ := os.ReadFile("/proc/self/setgroups")
	f.Setgroups = strings.TrimSpace(string(sg))
	f.Groups, _ = os.Getgroups()
	f.Hostname, _ = os.Hostname()
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, i := range ifaces {
		s := i.Name
		if i.Flags&net.FlagUp != 0 {
			s += " up"
		}
		f.Interfaces = append(f.Interfaces, s)
	}
	return json.NewEncoder(os.Stdout).Encode(f)
}

// nsLinks reads the namespace links of a process (or a thread), such as
// "uts" -> "uts:[4026531838]".
func nsLinks(proc string) map[string]string {
	out := map[string]string{}
	for _, k := range All {
		out[k.String()], _ = os.Readlink(filepath.Join(proc, "ns", k.String()))
	}
	return out
}

// start starts the test init in mode with cfg and registers its end.
func start(t *testing.T, mode string, cfg Config) *Child {
	t.Helper()
	cfg.Args = []string{"minictr", mode}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Signal(syscall.SIGKILL)
		c.Wait()
	})
	return c
}

// release calls Release, failing the test if it hangs.
func release(t *testing.T, c *Child, payload []byte) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Release(payload, nil) }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		c.Signal(syscall.SIGKILL)
		t.Fatal("Release hung")
		return nil
	}
}

func TestStartNewNamespaces(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	hostHostname, _ := os.Hostname()
	var out bytes.Buffer
	var rec trace.Recorder
	kinds := []Kind{UTS, PID, Mount, IPC, Net, Cgroup}
	c := start(t, "inspect", Config{Namespaces: kinds, Stdout: &out, Tracer: &rec})

	name := "minictr-" + testenv.UniqueID()
	payload, _ := json.Marshal(request{Hostname: name})
	if err := release(t, c, payload); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if status, err := c.Wait(); err != nil || status.ExitStatus() != 0 {
		t.Fatalf("Wait = %v, %v", status, err)
	}
	var f facts
	if err := json.Unmarshal(out.Bytes(), &f); err != nil {
		t.Fatalf("child output %q: %v", out.String(), err)
	}

	// Each namespace asked for is new: its link names another inode.
	host := nsLinks("/proc/self")
	for _, k := range kinds {
		if f.Namespaces[k.String()] == "" || f.Namespaces[k.String()] == host[k.String()] {
			t.Errorf("%s namespace inside %q, outside %q: want a new one", k, f.Namespaces[k.String()], host[k.String()])
		}
	}
	if f.Namespaces["user"] != host["user"] {
		t.Errorf("user namespace changed without being asked for")
	}
	if f.Pid != 1 {
		t.Errorf("PID inside = %d, want 1", f.Pid)
	}
	if f.Hostname != name {
		t.Errorf("hostname inside = %q, want %q", f.Hostname, name)
	}
	if now, _ := os.Hostname(); now != hostHostname {
		t.Errorf("host hostname changed from %q to %q", hostHostname, now)
	}
	if len(f.Interfaces) != 1 || f.Interfaces[0] != "lo" {
		t.Errorf("interfaces inside = %q, want only lo, down", f.Interfaces)
	}
	exe, _ := os.Executable()
	want := "unshare --uts --pid --mount --ipc --net --fork " + exe + " inspect" // no --cgroup: the child unshares it later
	if len(rec.Steps) == 0 || rec.Steps[0].Shell != want || !strings.Contains(rec.Steps[0].Action, "clone(CLONE_NEWUTS|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWNET)") {
		t.Errorf("trace = %+v, want the clone flags and %q", rec.Steps, want)
	}
}

func TestStartUserNamespace(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	// The mapped root (host uid 100000) must be able to write here.
	dir, err := os.MkdirTemp("", "minictr-userns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// Give the engine a supplementary group the map leaves out, which the
	// child must not keep.
	groups, err := syscall.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setgroups([]int{0, 4}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setgroups(groups)
	var out bytes.Buffer
	var rec trace.Recorder
	ids := []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	c := start(t, "inspect", Config{Namespaces: []Kind{User, Mount, UTS}, UIDMappings: ids, GIDMappings: ids, Stdout: &out, Tracer: &rec})
	file := filepath.Join(dir, "made-inside")
	payload, _ := json.Marshal(request{Hostname: "userns", Touch: file})
	if err := release(t, c, payload); err != nil {
		t.Fatalf("Release: %v", err)
	}
	c.Wait()
	var f facts
	if err := json.Unmarshal(out.Bytes(), &f); err != nil {
		t.Fatalf("child output %q: %v", out.String(), err)
	}
	if f.UID != 0 || f.GID != 0 {
		t.Errorf("inside uid/gid = %d/%d, want 0/0", f.UID, f.GID)
	}
	// Root mapped the ids: setgroups stays allowed, and the engine's own
	// groups (here host gid 0, unmapped inside) were dropped.
	if f.Setgroups != "allow" || len(f.Groups) != 0 {
		t.Errorf("inside: setgroups %q, groups %v; want allow and none", f.Setgroups, f.Groups)
	}
	if host := nsLinks("/proc/self"); f.Namespaces["user"] == host["user"] {
		t.Errorf("user namespace is the host's: %s", host["user"])
	}
	// The child's root wrote the file; the host sees the mapped uid own it.
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("file made by root inside is owned by %d:%d outside, want 100000:100000", st.Uid, st.Gid)
	}
	if f.Hostname != "userns" {
		t.Errorf("sethostname inside the user namespace: hostname = %q", f.Hostname)
	}
	wantMap := fmt.Sprintf("echo '0 100000 65536' > /proc/%d/uid_map", c.Pid)
	found := false
	for _, s := range rec.Steps {
		found = found || s.Shell == wantMap
	}
	if !found {
		t.Errorf("trace %+v lacks %q", rec.Steps, wantMap)
	}
}

// The handshake itself needs no privilege: these run as any user.

func TestReleaseExec(t *testing.T) {
	for _, code := range []int{0, 7} {
		c := start(t, "exec", Config{})
		if err := release(t, c, []byte(fmt.Sprintf("exit %d", code))); err != nil {
			t.Errorf("Release after a successful exec = %v, want nil", err)
		}
		// The exec'd program's own exit status is no set-up error.
		if status, err := c.Wait(); err != nil || status.ExitStatus() != code {
			t.Errorf("Wait = %v, %v; want exit status %d", status.ExitStatus(), err, code)
		}
	}
}

// Release runs its ready hook while the child waits, just before its
// exec, and a hook's error stops the child from exec'ing at all.
func TestReleaseReadyHook(t *testing.T) {
	c := start(t, "exec", Config{})
	hooked := false
	err := c.Release([]byte("exit 5"), func() error {
		// The child is still this binary (/proc/self/exe), waiting: it has
		// not exec'd the shell yet.
		if st, err := procfs.ReadStat(c.Pid); err != nil || st.Comm != "exe" {
			t.Errorf("child's name %q (%v) when the hook ran, want \"exe\": it exec'd too early", st.Comm, err)
		}
		hooked = true
		return nil
	})
	if err != nil || !hooked {
		t.Fatalf("Release = %v, hook ran: %v", err, hooked)
	}
	if status, _ := c.Wait(); status.ExitStatus() != 5 {
		t.Errorf("exit status %d, want 5 (the exec'd shell's)", status.ExitStatus())
	}

	c = start(t, "exec", Config{})
	refused := errors.New("limits could not be set")
	if err := c.Release([]byte("exit 5"), func() error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("Release with a failing hook = %v, want %v", err, refused)
	}
	if status, _ := c.Wait(); status.ExitStatus() != 125 {
		t.Errorf("exit status %d, want 125: a refused child must not exec", status.ExitStatus())
	}
}

// Ready can pass files to the parent (a terminal's master, for -t): they
// arrive with the message, in the ready hook.
func TestReadyPassesFiles(t *testing.T) {
	c := start(t, "send-file", Config{})
	var got []byte
	err := c.Release([]byte("passed over the socket"), func() error {
		files := c.Files()
		if len(files) != 1 {
			return fmt.Errorf("%d files arrived, want 1", len(files))
		}
		defer files[0].Close()
		var err error
		got, err = io.ReadAll(files[0])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "passed over the socket" {
		t.Errorf("read %q from the passed file", got)
	}
	if status, _ := c.Wait(); status.ExitStatus() != 0 {
		t.Errorf("exit status %d", status.ExitStatus())
	}
}

// The ready phase is mandatory: a child that execs without reporting Ready
// is no success, however its name changed (the old heuristic took a new
// name for an exec), and it does not run on.
func TestReleaseExecWithoutReady(t *testing.T) {
	c := start(t, "exec-unready", Config{})
	err := release(t, c, nil)
	var ie *InitError
	if err == nil || errors.As(err, &ie) || !strings.Contains(err.Error(), "during set-up without a word") {
		t.Fatalf("Release = %v, want a plain error: set-up ended without Ready", err)
	}
	if status, _ := c.Wait(); !status.Signaled() || status.Signal() != syscall.SIGKILL {
		t.Errorf("the program exec'd without Ready ended with %v, want SIGKILL", status)
	}
}

// Files sent with the payload reach the child, in order, close-on-exec;
// without files the child gets none.
func TestReleaseFiles(t *testing.T) {
	dir := t.TempDir()
	var files []*os.File
	for _, name := range []string{"a", "b"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	c := start(t, "files", Config{})
	if err := c.Release([]byte("from the parent"), nil, files...); err != nil {
		t.Fatalf("Release with files = %v", err)
	}
	if status, _ := c.Wait(); status.ExitStatus() != 2 {
		t.Errorf("the child received %d files, want 2", status.ExitStatus())
	}
	for _, name := range []string{"a", "b"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != "from the parent" {
			t.Errorf("file %s holds %q, want what the child wrote through its copy", name, got)
		}
	}
	c = start(t, "files", Config{})
	if err := c.Release([]byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if status, _ := c.Wait(); status.ExitStatus() != 0 {
		t.Errorf("the child received %d files, want none", status.ExitStatus())
	}
}

// An exec that fails after the go-ahead is reported as the init's error.
func TestReleaseExecFailsAfterReady(t *testing.T) {
	c := start(t, "ready-fail-exec", Config{})
	err := release(t, c, nil)
	var ie *InitError
	if !errors.As(err, &ie) || ie.Code != 126 || !strings.Contains(ie.Message, "/nonexistent/program") {
		t.Fatalf("Release = %#v, want an InitError 126 naming the program", err)
	}
}

func TestReleaseInitError(t *testing.T) {
	c := start(t, "fail", Config{})
	err := release(t, c, []byte("/nonexistent"))
	var ie *InitError
	if !errors.As(err, &ie) || ie.Code != 126 || ie.Message != "cannot run /nonexistent" {
		t.Fatalf("Release = %#v, want InitError 126 %q", err, "cannot run /nonexistent")
	}
	if status, _ := c.Wait(); status.ExitStatus() != 126 {
		t.Errorf("exit status %d, want 126", status.ExitStatus())
	}
}

func TestReleaseChildDiesBeforeHandshake(t *testing.T) {
	c := start(t, "die-early", Config{})
	// Let it die first, so Release writes to a closed socket.
	for !c.exited() {
		time.Sleep(time.Millisecond)
	}
	err := release(t, c, []byte("hello"))
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Release = %v, want an error with exit status 3", err)
	}
	if status, _ := c.Wait(); status.ExitStatus() != 3 {
		t.Errorf("Wait after Release: exit status %d, want 3", status.ExitStatus())
	}
}

func TestReleaseChildDiesSilently(t *testing.T) {
	c := start(t, "die-silent", Config{})
	err := release(t, c, []byte("hello"))
	var ie *InitError
	if err == nil || errors.As(err, &ie) || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("Release = %v, want a plain error with exit status 4", err)
	}
}

func TestHandshakeOutsideStart(t *testing.T) {
	t.Setenv(envInitFD, "")
	os.Unsetenv(envInitFD)
	if _, _, err := Handshake(); !errors.Is(err, ErrNotChild) {
		t.Errorf("Handshake = %v, want ErrNotChild", err)
	}
}

// A dying engine never leaves a blocked init behind: Pdeathsig kills it.
// (An init blocked in Handshake also reads EOF then, and exits.)
func TestStartChildDiesWithEngine(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	// argv[0] "minictr" makes the re-executed test binary run testInit.
	engine := &exec.Cmd{Path: "/proc/self/exe", Args: []string{"minictr", "engine"}, Stderr: os.Stderr}
	out, err := engine.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(out))
	p, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatalf("engine printed %q, want a PID", out)
	}
	// Wait, since Handshake blocks forever otherwise; accept a zombie
	// waiting for the host's init to reap it.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := procfs.ReadStat(p)
		if err != nil || st.State == 'Z' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("init %s still alive 10s after its engine exited", pid)
	syscall.Kill(p, syscall.SIGKILL)
}

// exited reports whether the child has terminated, without reaping it, so
// that Wait still gets its status.
func (c *Child) exited() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, c.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	// With WNOHANG and nothing to report, the kernel leaves si_signo 0.
	return err == nil && info.Signo == int32(unix.SIGCHLD)
}
