package namespaces

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/trace"
)

// The environment variables that tell the re-executed child where its end
// of the handshake socket is and which namespaces it must still create
// itself. Handshake removes them, so the container never sees them.
const (
	envInitFD     = "_MINICTR_INIT_FD"
	envNamespaces = "_MINICTR_INIT_NAMESPACES"
)

// initFD is the child's end of the handshake socket: the first ExtraFile.
const initFD = 3

// maxPayload bounds both directions of the handshake, so that a confused
// peer cannot make the other side allocate without limit.
const maxPayload = 16 << 20

// An IDMap maps a range of user or group IDs inside a user namespace to a
// range on the host: one line of /proc/PID/uid_map (user_namespaces(7)).
type IDMap struct{ ContainerID, HostID, Size int }

// Config says what to re-execute and in which namespaces.
type Config struct {
	Path string // binary to re-execute; "" = /proc/self/exe
	// Exe, when set, is the binary to re-execute as an open file (see
	// SealedExe), instead of Path: the child runs it through
	// /proc/self/fd, so that its /proc/PID/exe is this file.
	Exe        *os.File
	Args       []string // argv; Args[0] must be "minictr" (testscript dispatches on argv[0])
	Env        []string // nil = this process's environment
	Namespaces []Kind
	// UIDMappings and GIDMappings are required with User.
	UIDMappings, GIDMappings []IDMap
	Stdin                    io.Reader
	Stdout, Stderr           io.Writer
	ExtraFiles               []*os.File // appear in the child as fd 4, 5, ... (fd 3 is the handshake socket)
	Tracer                   trace.Tracer
	// NewSession puts the child in a session of its own (setsid(2)) with
	// no controlling terminal: nothing it does reaches the caller's
	// terminal (TIOCSTI, /dev/tty), and the caller's Ctrl-C reaches it
	// only as the caller forwards it. It excludes NewProcessGroup.
	NewSession bool
	// NewProcessGroup puts the child in a process group of its own, so
	// that signals for the caller's group (a Ctrl-C, a shell's kill -INT
	// -PGID) reach it once, through the caller, not twice.
	NewProcessGroup bool
	// Foreground, with NewProcessGroup, also makes that group the
	// foreground of the terminal on the child's stdin (tcsetpgrp(3)), so
	// that the container can read the terminal and Ctrl-C goes to it.
	Foreground bool
}

// A Child is a process started by Start: alive in its new namespaces and
// blocked in Handshake until Release.
type Child struct {
	Pid int

	cmd  *exec.Cmd
	sock *os.File // the parent's end of the handshake socket

	files []*os.File // sent with Ready

	waitOnce sync.Once
	status   syscall.WaitStatus
	waitErr  error
}

// An InitError is a set-up failure that the child reported before exec.
type InitError struct {
	Message string `json:"message"`
	Code    int    `json:"code"` // the exit status the CLI should use (125, 126, 127)
}

func (e *InitError) Error() string { return e.Message }

// Start re-executes cfg.Path in new namespaces. The child blocks in
// Handshake until Release, which gives the caller time to put it in a
// cgroup and wire its network.
//
// Start's child carries Pdeathsig SIGKILL: if the OS thread that called
// Start goes away (the engine dies), the kernel kills the child, so a
// blocked init is never left behind. Do not call Start from a goroutine
// that has locked its thread and is about to exit.
func Start(cfg Config) (*Child, error) {
	t := trace.Or(cfg.Tracer)
	if len(cfg.Args) == 0 {
		return nil, errors.New("starting init: no argv (Args[0] must name the command, e.g. \"minictr\")")
	}
	kinds := sorted(cfg.Namespaces)
	attr, err := sysProcAttr(kinds, cfg.UIDMappings, cfg.GIDMappings)
	if err != nil {
		return nil, err
	}
	parentEnd, childEnd, err := socketpair()
	if err != nil {
		return nil, err
	}
	// The child's end belongs to the child alone: once it has it, our copy
	// must go, or a child that dies would never give Release its EOF.
	defer childEnd.Close()

	path := cfg.Path
	if path == "" {
		path = "/proc/self/exe"
	}
	extra := append([]*os.File{childEnd}, cfg.ExtraFiles...)
	shown := path // for --explain
	if cfg.Exe != nil {
		// The last of the child's descriptors: execve opens the file
		// before it closes anything, and the init marks it close-on-exec
		// with the rest before it execs the user's program.
		path = fmt.Sprintf("/proc/self/fd/%d", initFD+len(extra))
		extra = append(extra, cfg.Exe)
		shown = cfg.Exe.Name()
	}
	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	env = append(env[:len(env):len(env)],
		envInitFD+"="+strconv.Itoa(initFD),
		envNamespaces+"="+FormatKinds(kinds))
	cmd := &exec.Cmd{
		Path:        path,
		Args:        cfg.Args,
		Env:         env,
		Stdin:       cfg.Stdin,
		Stdout:      cfg.Stdout,
		Stderr:      cfg.Stderr,
		ExtraFiles:  extra,
		SysProcAttr: attr,
	}
	if cfg.NewSession {
		attr.Setsid = true
	} else if cfg.NewProcessGroup {
		attr.Setpgid = true
		attr.Foreground = cfg.Foreground
		attr.Ctty = 0 // the child's stdin
	}
	if err := cmd.Start(); err != nil {
		parentEnd.Close()
		return nil, fmt.Errorf("starting init in new namespaces (%s): %w", FlagNames(kinds), err)
	}
	c := &Child{Pid: cmd.Process.Pid, cmd: cmd, sock: parentEnd}
	traceStart(t, c.Pid, shown, cfg.Args, kinds, cfg.UIDMappings, cfg.GIDMappings)
	return c, nil
}

// sysProcAttr asks Go's fork/exec for the clone flags (all but the cgroup
// namespace's: see cloned).
func sysProcAttr(kinds []Kind, uids, gids []IDMap) (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{
		Cloneflags: CloneFlags(cloned(kinds)),
		// Go then checks that getppid() still names us; in a new PID
		// namespace it reads 0 and the child SIGKILLs itself, which the
		// kernel ignores because the child is PID 1 there (init gets no
		// signal it has no handler for, pid_namespaces(7)).
		Pdeathsig: syscall.SIGKILL,
	}
	if !has(kinds, User) {
		if len(uids) > 0 || len(gids) > 0 {
			return nil, errors.New("starting init: uid/gid mappings need the user namespace")
		}
		return attr, nil
	}
	if len(uids) == 0 || len(gids) == 0 {
		return nil, errors.New("starting init: a user namespace needs both a uid and a gid mapping")
	}
	attr.UidMappings = idMaps(uids)
	attr.GidMappings = idMaps(gids)
	// Become root of the new namespace before exec. Without it the child
	// keeps the host's uid 0, which is unmapped inside, and execve drops
	// every capability (capabilities(7), "Effect of user ID changes").
	attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	if privilegedMapper() {
		// Root wrote the maps, so setgroups stays allowed (the kernel's
		// deny is for maps an unprivileged user writes): the child drops
		// the engine's own supplementary groups (setgroups(0, NULL)),
		// which would otherwise follow it in as unmapped host groups that
		// still open host files, and -u can set the user's groups.
		attr.GidMappingsEnableSetgroups = true
		attr.Credential.NoSetGroups = false
		return attr, nil
	}
	// An unprivileged map: setgroups is denied, so that nobody inside can
	// drop a group that the host uses to deny access.
	attr.GidMappingsEnableSetgroups = false
	return attr, nil
}

// privilegedMapper reports whether this process writes uid and gid maps as
// root, which the kernel lets keep setgroups(2) (user_namespaces(7),
// "Interaction with system calls that change process UIDs or GIDs").
func privilegedMapper() bool { return os.Geteuid() == 0 }

func idMaps(ms []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size}
	}
	return out
}

// socketpair makes the handshake channel. SOCK_CLOEXEC on both ends: the
// child's copy survives into the child only because exec.Cmd dup2()s it to
// fd 3 (which clears the flag); Handshake sets it again, so that a
// successful exec closes it and the parent reads EOF.
func socketpair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "init-handshake"), os.NewFile(uintptr(fds[1]), "init-handshake-child"), nil
}

func traceStart(t trace.Tracer, pid int, path string, args []string, kinds []Kind, uids, gids []IDMap) {
	if path == "/proc/self/exe" {
		// Typed in a shell, /proc/self/exe would be the shell's own binary.
		if exe, err := os.Executable(); err == nil {
			path = exe
		}
	}
	cmdline := strings.Join(append([]string{path}, args[1:]...), " ")
	clone := cloned(kinds) // the cgroup namespace comes later
	t.Step("namespaces",
		fmt.Sprintf("clone(%s): %s is PID %d on the host, blocked on fd %d until released", FlagNames(clone), args[0], pid, initFD),
		UnshareCommand(clone)+" "+cmdline)
	if has(kinds, Cgroup) {
		t.Step("namespaces", "the child will unshare(CLONE_NEWCGROUP) once released, so that its cgroup becomes its root",
			"unshare --cgroup (run by the child, once in its cgroup)")
	}
	if !has(kinds, User) {
		return
	}
	for _, m := range uids {
		t.Step("namespaces", fmt.Sprintf("write uid map %d %d %d", m.ContainerID, m.HostID, m.Size),
			fmt.Sprintf("echo '%d %d %d' > /proc/%d/uid_map", m.ContainerID, m.HostID, m.Size, pid))
	}
	if !privilegedMapper() {
		t.Step("namespaces", "deny setgroups before writing the gid map", fmt.Sprintf("echo deny > /proc/%d/setgroups", pid))
	}
	for _, m := range gids {
		t.Step("namespaces", fmt.Sprintf("write gid map %d %d %d", m.ContainerID, m.HostID, m.Size),
			fmt.Sprintf("echo '%d %d %d' > /proc/%d/gid_map", m.ContainerID, m.HostID, m.Size, pid))
	}
}

// Release sends payload to the child blocked in Handshake and waits for
// its answer. The child sets up, then reports Ready (set-up done, about to
// exec); ready, when not nil, runs then, before the child gets its
// go-ahead: the engine sets the limits there that a Go init could not live
// under while it set up (pids). Release returns nil once the child has
// exec'd (its end of the socket is close-on-exec, so the exec after the
// go-ahead reads as EOF), the error of ready (the child gets no go-ahead,
// and the caller kills it), an *InitError if the child reported a set-up
// failure, and another error if the child went away without a word.
//
// Ready is mandatory: a socket that closes before it is a child that died
// (or exec'd without the go-ahead, which Release kills), never a success.
// Release never hangs on a dead child: the child's death closes its end of
// the socket too.
//
// files, if any, travel with the payload (SCM_RIGHTS, unix(7)): the child
// finds its copies in Reporter.Files, in the same order. They are how the
// engine hands over what only it can make once the child exists, such as a
// mount idmapped through the child's user namespace. The caller keeps (and
// closes) its own copies.
func (c *Child) Release(payload []byte, ready func() error, files ...*os.File) error {
	defer c.sock.Close()
	if len(payload) > maxPayload {
		return fmt.Errorf("releasing init: payload of %d bytes is over the %d limit", len(payload), maxPayload)
	}
	if len(files) > maxFiles {
		return fmt.Errorf("releasing init: %d files are over the %d limit", len(files), maxFiles)
	}
	if err := writeFrameFiles(c.sock, payload, files); err != nil {
		// EPIPE: the child closed its end, most likely by dying.
		return c.silentDeath("before the handshake", err)
	}
	msg, files, err := readFrameFiles(c.sock)
	c.files = files
	if errors.Is(err, io.EOF) {
		// A child that dies is already exiting when its socket closes, so
		// the kill changes nothing of its status; one that exec'd without
		// the go-ahead must not run on unlimited.
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		return c.silentDeath("during set-up", nil)
	}
	if err != nil {
		return fmt.Errorf("reading the answer of init (PID %d): %w", c.Pid, err)
	}
	var a answer
	if err := json.Unmarshal(msg, &a); err != nil {
		return fmt.Errorf("init (PID %d) sent a malformed answer %q: %w", c.Pid, msg, err)
	}
	if !a.Ready {
		return &InitError{Message: a.Message, Code: a.Code}
	}
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
	}
	if _, err := c.sock.Write([]byte{1}); err != nil {
		return c.silentDeath("before its go-ahead", err)
	}
	// After the go-ahead the child does nothing but exec: the socket's EOF
	// is that exec, and a death in between shows in Wait. What it sends
	// instead is the exec's failure.
	msg, err = readFrame(c.sock)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the answer of init (PID %d): %w", c.Pid, err)
	}
	var failed answer
	if err := json.Unmarshal(msg, &failed); err != nil || failed.Ready {
		return fmt.Errorf("init (PID %d) sent a malformed answer %q after its go-ahead", c.Pid, msg)
	}
	return &InitError{Message: failed.Message, Code: failed.Code}
}

// maxFiles bounds the descriptors that travel with the payload.
const maxFiles = 16

// writeFrameFiles is writeFrame with files attached to the length prefix,
// whose first byte carries them (a stream socket's rights travel with the
// bytes they were sent with).
func writeFrameFiles(sock *os.File, payload []byte, files []*os.File) error {
	if len(files) == 0 {
		return writeFrame(sock, payload)
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	var size [4]byte
	binary.BigEndian.PutUint32(size[:], uint32(len(payload)))
	conn, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = conn.Write(func(fd uintptr) bool {
		for {
			serr = unix.Sendmsg(int(fd), size[:], unix.UnixRights(fds...), nil, 0)
			if serr != unix.EINTR {
				return true
			}
		}
	})
	if err == nil && serr != nil {
		err = os.NewSyscallError("sendmsg", serr)
	}
	if err != nil {
		return err
	}
	_, err = sock.Write(payload)
	return err
}

func writeFrame(w io.Writer, payload []byte) error {
	frame := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(frame, uint32(len(payload)))
	copy(frame[4:], payload)
	_, err := w.Write(frame)
	return err
}

// silentDeath waits for the dead child and says how it ended.
func (c *Child) silentDeath(when string, cause error) error {
	status, err := c.Wait()
	if err != nil {
		return fmt.Errorf("init (PID %d) went away %s without a word: %w", c.Pid, when, errors.Join(cause, err))
	}
	return fmt.Errorf("init (PID %d) exited %s without a word: %s", c.Pid, when, describe(status))
}

func describe(s syscall.WaitStatus) string {
	if s.Signaled() {
		return "killed by signal " + unix.SignalName(s.Signal())
	}
	return fmt.Sprintf("exit status %d", s.ExitStatus())
}

// Files returns the files the child sent with Ready (Reporter.Ready),
// once Release has read it (from inside ready on): the caller owns them.
func (c *Child) Files() []*os.File { return c.files }

// Signal sends sig to the child.
func (c *Child) Signal(sig os.Signal) error {
	if err := c.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signalling init (PID %d): %w", c.Pid, err)
	}
	return nil
}

// Wait waits for the child to exit, reaps it and returns its status. A
// non-zero exit is not an error: read it from the status. The child is
// reaped once; later calls (and the call Release makes when the child died
// before exec) return the same answer. Do not call Wait concurrently with
// Release.
func (c *Child) Wait() (syscall.WaitStatus, error) {
	c.waitOnce.Do(func() { c.status, c.waitErr = c.wait() })
	return c.status, c.waitErr
}

func (c *Child) wait() (syscall.WaitStatus, error) {
	c.sock.Close() // in case Release was never called
	err := c.cmd.Wait()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return 0, fmt.Errorf("waiting for init (PID %d): %w", c.Pid, err)
	}
	status, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return 0, fmt.Errorf("waiting for init (PID %d): no wait status", c.Pid)
	}
	return status, nil
}
