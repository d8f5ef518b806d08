// Package nsenter runs a command inside the namespaces of a running
// process, the user namespace included: what `minictr exec` needs for a
// container that has its own user namespace. Nothing calls it yet: exec
// (the lifecycle issue) and user namespaces (the hardening issue) will.
//
// The kernel refuses setns(2) into a user namespace from a multithreaded
// process (user_namespaces(7), setns(2): EINVAL), and a Go program has
// several threads before main runs. So the joining is done by a small C
// constructor (nsenter.c) that runs before the Go runtime starts, in a
// re-executed copy of the binary:
//
//  1. Command re-executes /proc/self/exe with _MINICTR_NSENTER=<pid>:<kinds>
//     in its environment;
//  2. in that new process, the C constructor opens /proc/<pid>/ns/<kind>
//     for each kind, then calls setns: user first, mnt last, and not pid;
//  3. the Go runtime starts, main runs, sees Joined() and calls Run;
//  4. Run joins the PID namespace on its own locked thread (a process that
//     has joined a PID namespace may not create threads, so the C side
//     cannot do it before the runtime starts its threads), then forks and
//     execs the command from that thread. The fork matters: joining a PID
//     namespace only places the caller's children in it (pid_namespaces(7)),
//     so the command must be a child to get a PID inside the container. Run
//     then forwards signals, waits, and returns the command's exit status.
//
// The program's main must therefore start with
//
//	if nsenter.Joined() {
//		code, err := nsenter.Run()
//		... print err, exit with code
//	}
//
// The command runs as uid 0 and gid 0 of the joined user namespace (when
// one is joined), with the capabilities root has there; applying a user,
// capabilities and no_new_privs is up to the caller.
//
// Built with CGO_ENABLED=0 the package still compiles, but Command's Cmd
// fails to start and Run returns ErrNoCgo.
//
// Host side effects: none. The joining process and the command live in the
// container's namespaces and die like any process.
//
// The shell equivalent is nsenter(1):
// nsenter --target PID --user --mount --uts --ipc --net --pid -- CMD.
package nsenter

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/namespaces"
)

// env carries the request from Command to the C constructor.
const env = "_MINICTR_NSENTER"

// ErrNoCgo is returned when the binary was built without cgo: there is no
// constructor to join the namespaces.
var ErrNoCgo = errors.New("joining namespaces with nsenter needs a binary built with cgo (CGO_ENABLED=1)")

// Request returns the environment entry that asks the re-executed binary
// to join the namespaces of pid: "_MINICTR_NSENTER=4242:user,uts,mnt".
// Command puts it in the Cmd's Env; keep it there when replacing Env.
func Request(pid int, kinds []namespaces.Kind) string {
	return env + "=" + strconv.Itoa(pid) + ":" + namespaces.FormatKinds(kinds)
}

// Command returns a Cmd that runs args inside the namespaces of pid. It
// re-executes /proc/self/exe (argv[0] "minictr") whose main must call Run,
// see the package documentation. Its environment is this process's plus
// Request(pid, kinds); the command inherits it, without the request.
func Command(pid int, kinds []namespaces.Kind, args ...string) *exec.Cmd {
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: append([]string{"minictr"}, args...),
		Env:  append(os.Environ(), Request(pid, kinds)),
	}
	if !available {
		cmd.Err = ErrNoCgo
	}
	if len(args) == 0 {
		cmd.Err = errors.New("nsenter: no command to run")
	}
	return cmd
}

// Joined reports whether this process was started by Command, and so must
// call Run.
func Joined() bool {
	_, ok := os.LookupEnv(env)
	return ok
}

// Run is the second half of Command, called by main when Joined: the
// namespaces are joined (or the constructor failed, which Run returns with
// exit status 125); Run starts os.Args[1:] as a child, so that it lands in
// the joined PID namespace, forwards signals to it and waits. It returns
// the command's exit status, 128+N if signal N killed it, 126 if it could
// not be started, 127 if it was not found.
func Run() (int, error) {
	spec, ok := os.LookupEnv(env)
	if !ok {
		return 125, errors.New("nsenter: this process was not started by nsenter.Command")
	}
	os.Unsetenv(env) // the command must not try to join again
	if err := constructorError(); err != nil {
		return 125, fmt.Errorf("joining the namespaces %s: %w", spec, err)
	}
	if len(os.Args) < 2 {
		return 125, errors.New("nsenter: no command to run")
	}
	if err := joinPID(); err != nil {
		return 125, err
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// No Pdeathsig here: Go checks after fork that getppid() still names
	// the parent, and in the joined PID namespace it reads 0 (the parent
	// is outside), so the command would SIGKILL itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if kinds, _ := namespaces.ParseKinds(spec[strings.IndexByte(spec, ':')+1:]); slices.Contains(kinds, namespaces.User) {
		// Our uids are still the host's, unmapped in the container:
		// become its root for the command, as `docker exec` does.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	return wait(cmd)
}

// joinPID joins the PID namespace the constructor opened, on this
// goroutine's thread, which stays locked so that the command (forked from
// it by exec.Cmd) starts in that namespace.
func joinPID() error {
	fd := pidNamespaceFD()
	if fd < 0 {
		return nil
	}
	defer unix.Close(fd)
	runtime.LockOSThread() // never unlocked: the thread now belongs to the container
	if err := unix.Setns(fd, unix.CLONE_NEWPID); err != nil {
		return os.NewSyscallError("setns(CLONE_NEWPID)", err)
	}
	return nil
}

// wait starts cmd, forwards the usual signals to it and returns its exit
// status the way a shell would.
func wait(cmd *exec.Cmd) (int, error) {
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127, err
		}
		return 126, err
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	signal.Stop(sigs)
	close(sigs)
	status, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	var exitErr *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exitErr):
		return 125, err
	case status.Signaled():
		return 128 + int(status.Signal()), nil
	}
	return status.ExitStatus(), nil
}
