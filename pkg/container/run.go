package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/minictr/minictr/internal/stringid"
	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/image/layer"
	"github.com/minictr/minictr/pkg/namespaces"
	"github.com/minictr/minictr/pkg/privileges"
	"github.com/minictr/minictr/pkg/trace"
)

// RunOptions says how to run a container in the foreground.
type RunOptions struct {
	Spec    Spec
	Root    string // persistent state: <Root>/containers/<id> holds an image container's snapshot
	RunRoot string // live state: <RunRoot>/containers/<id>

	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Signals        <-chan os.Signal // forwarded to the container's process

	Tracer trace.Tracer
	// TraceFile, when set, is where the container init writes its own steps
	// (it runs in another process, so it cannot share Tracer).
	TraceFile *os.File
}

// ExitError reports how the container's process ended. It is not a failure
// of the engine: the CLI turns it into minictr's exit status.
type ExitError struct {
	Code        int            // the exit status to use: N, or 128+signal
	Signal      syscall.Signal // the signal that killed the process, or 0
	OOMKilled   bool           // killed by the kernel for exceeding the memory limit
	MemoryLimit int64          // the limit it exceeded, in bytes
}

func (e *ExitError) Error() string {
	switch {
	case e.OOMKilled:
		return fmt.Sprintf("container killed: out of memory (limit %s)", humanBytes(e.MemoryLimit))
	case e.Signal != 0:
		return fmt.Sprintf("container killed by signal %d (%v)", e.Signal, e.Signal)
	}
	return fmt.Sprintf("container exited with status %d", e.Code)
}

// StartError is a failure to start the container, with the exit status
// docker uses for it: 125 (engine), 126 (cannot invoke), 127 (not found).
type StartError struct {
	Code int
	Err  error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// ExitCode is the status the CLI should exit with.
func (e *StartError) ExitCode() int { return e.Code }

// Namespaces is the set every container gets. The network namespace holds
// only a loopback device until the networking stage wires it up.
var Namespaces = []namespaces.Kind{
	namespaces.Mount, namespaces.UTS, namespaces.IPC, namespaces.PID,
	namespaces.Net, namespaces.Cgroup,
}

// CleanupError is a failure to remove something the container used, after
// it ran: worth a warning, but it does not change the container's status.
type CleanupError struct{ Err error }

func (e *CleanupError) Error() string { return "cleaning up: " + e.Err.Error() }
func (e *CleanupError) Unwrap() error { return e.Err }

// undo is a stack of clean-up steps, run last in, first out.
type undo []func() error

func (u *undo) push(f func() error) { *u = append(*u, f) }

func (u undo) run() error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run creates a container from o.Spec, runs it to completion and removes
// everything it created. It returns nil when the process exits with 0, an
// *ExitError for any other ending, and a *StartError or plain error when
// the container could not start. A failure to remove something afterwards
// is joined in as a *CleanupError.
func Run(ctx context.Context, o RunOptions) (err error) {
	s := o.Spec
	t := trace.Or(o.Tracer)
	if err := s.validate(); err != nil {
		return &StartError{Code: 125, Err: err}
	}
	caps, err := privileges.Capabilities(s.CapAdd, s.CapDrop, s.Privileged)
	if err != nil {
		return &StartError{Code: 125, Err: err}
	}
	layout, err := cgroupLayout(t)
	if err != nil {
		return &StartError{Code: 125, Err: err}
	}
	// What an engine killed with SIGKILL left behind goes first; failing
	// to remove it is only worth a warning.
	reapErr := Reap(o.Root, o.RunRoot, layout, t)
	id := newID()
	if s.Hostname == "" {
		s.Hostname = stringid.Short(id)
	}

	var cleanup undo
	defer func() {
		for _, cerr := range []error{reapErr, cleanup.run()} {
			if cerr != nil {
				err = errors.Join(err, &CleanupError{Err: cerr})
			}
		}
	}()
	stateDir := filepath.Join(o.RunRoot, "containers", id)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return &StartError{Code: 125, Err: fmt.Errorf("creating container state: %w", err)}
	}
	cleanup.push(func() error { return os.RemoveAll(stateDir) })

	if len(s.Layers) > 0 {
		// A private, writable root over the image's read-only layers: an
		// overlay mount, or copies where overlayfs cannot be used.
		snap, err := layer.Prepare(s.Layers, filepath.Join(o.Root, "containers", id), t)
		if err != nil {
			return &StartError{Code: 125, Err: fmt.Errorf("preparing the root filesystem from the image: %w", err)}
		}
		cleanup.push(snap.Remove)
		if snap.Kind == layer.KindCopy && o.Stderr != nil {
			// Slower and bigger than an overlay: the user should know why.
			fmt.Fprintf(o.Stderr, "minictr: warning: %s: using copies of the image's layers\n", snap.Reason)
		}
		s.Rootfs = snap.Rootfs
		if err := s.validateWorkdir(); err != nil {
			return &StartError{Code: 125, Err: err}
		}
	}

	// The pids limit waits until the init is ready to exec: a Go init needs
	// a few threads while it sets up, and a limit below that would kill it.
	limits := s.Resources
	limits.PidsLimit = 0
	cg, err := cgroups.New(cgroups.Config{Name: "minictr-" + id, Resources: limits, Layout: layout, Tracer: t})
	if err != nil {
		return &StartError{Code: 125, Err: fmt.Errorf("creating cgroup: %w", err)}
	}
	cleanup.push(func() error {
		if err := cg.Destroy(); err != nil {
			return fmt.Errorf("removing cgroup: %w", err)
		}
		return nil
	})

	spec := initSpec{
		Rootfs:          s.Rootfs,
		Args:            s.Args,
		Env:             s.Env,
		Workdir:         s.Workdir,
		User:            s.User,
		Hostname:        s.Hostname,
		ReadOnly:        s.ReadOnly,
		Privileged:      s.Privileged,
		Capabilities:    caps,
		NoNewPrivileges: s.NoNewPrivileges,
		Cgroups:         cgroupMounts(layout),
	}
	term := foregroundTerminal(o.Stdin)
	cfg := namespaces.Config{
		Args:            []string{"minictr", initArg},
		Env:             []string{"PATH=" + DefaultPath, initEnv},
		Namespaces:      Namespaces,
		Stdin:           o.Stdin,
		Stdout:          o.Stdout,
		Stderr:          o.Stderr,
		Tracer:          t,
		NewProcessGroup: true,
		Foreground:      term != nil,
	}
	if o.TraceFile != nil {
		cfg.ExtraFiles = []*os.File{o.TraceFile}
		spec.TraceFD = 4 // the first extra file, after the handshake socket
	}
	// The init dies with the thread that started it (Pdeathsig), so that a
	// killed engine never leaves a container behind: keep that thread ours
	// until the container is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	child, err := namespaces.Start(cfg)
	if err != nil {
		return &StartError{Code: 125, Err: fmt.Errorf("starting container init: %w", err)}
	}
	if term != nil {
		cleanup.push(func() error { return takeTerminalBack(term) })
	}
	started := false
	cleanup.push(func() error {
		if !started {
			_ = child.Signal(syscall.SIGKILL)
			_, _ = child.Wait()
		}
		return nil
	})

	// Into the cgroup before it runs a single instruction of the user's
	// program: the limits hold from the first byte.
	if err := cg.Add(child.Pid); err != nil {
		return &StartError{Code: 125, Err: fmt.Errorf("joining cgroup: %w", err)}
	}
	st := state{ID: id, Pid: child.Pid, PidStart: startTime(child.Pid), Image: s.Image, Rootfs: s.Rootfs, Cgroups: cg.Paths(), Created: time.Now()}
	if err := writeState(stateDir, st); err != nil {
		return &StartError{Code: 125, Err: err}
	}
	payload, err := json.Marshal(spec)
	if err != nil {
		return &StartError{Code: 125, Err: err}
	}
	t.Step("engine", fmt.Sprintf("container %s is PID %d on the host; its state is in %s", stringid.Short(id), child.Pid, filepath.Join(stateDir, "state.json")),
		"cat "+filepath.Join(stateDir, "state.json"))
	t.Step("engine", "release the init: send its spec over the handshake socket, wait for exec or an error", "")
	lastLimits := func() error {
		if s.Resources.PidsLimit == 0 {
			return nil
		}
		if err := cg.Set(cgroups.Resources{PidsLimit: s.Resources.PidsLimit}); err != nil {
			return &StartError{Code: 125, Err: fmt.Errorf("setting the pids limit: %w", err)}
		}
		return nil
	}
	if err := releaseInterruptible(child, payload, lastLimits, o.Signals); err != nil {
		return err
	}
	started = true

	status, err := waitForwarding(ctx, child, o.Signals)
	if err != nil {
		return fmt.Errorf("waiting for container: %w", err)
	}
	exit := exitError(status, cg, s.Resources.Memory)
	end := "exited with status 0"
	if exit != nil {
		end = strings.TrimPrefix(exit.Error(), "container ")
	}
	t.Step("engine", fmt.Sprintf("container %s %s; removing what it used", stringid.Short(id), end), "")
	if exit == nil { // a nil *ExitError is not a nil error
		return nil
	}
	return exit
}

// releaseInterruptible releases the init and waits for its exec. An INT,
// TERM, HUP or QUIT that arrives meanwhile stops the start: the init is
// killed and the signal becomes the exit status (128+N), as for a container
// killed by it, instead of waiting in a buffer for a container that the
// user no longer wants.
func releaseInterruptible(child *namespaces.Child, payload []byte, ready func() error, sigs <-chan os.Signal) error {
	done := make(chan struct{})
	interrupted := make(chan syscall.Signal, 1)
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				if sig == syscall.SIGWINCH || sig == syscall.SIGUSR1 || sig == syscall.SIGUSR2 {
					continue // nothing to interrupt for
				}
				if s, ok := sig.(syscall.Signal); ok {
					interrupted <- s
				}
				_ = child.Signal(syscall.SIGKILL)
				return
			}
		}
	}()
	err := child.Release(payload, ready)
	close(done)
	select {
	case sig := <-interrupted:
		return &StartError{Code: 128 + int(sig), Err: fmt.Errorf("interrupted by %v while starting the container", sig)}
	default:
	}
	if err == nil {
		return nil
	}
	var ie *namespaces.InitError
	var se *StartError
	switch {
	case errors.As(err, &ie):
		return &StartError{Code: ie.Code, Err: errors.New(ie.Message)}
	case errors.As(err, &se):
		return se
	}
	return &StartError{Code: 125, Err: fmt.Errorf("starting container: %w", err)}
}

// waitForwarding waits for the child, passing on the signals minictr gets
// and killing it when ctx is done.
func waitForwarding(ctx context.Context, child *namespaces.Child, sigs <-chan os.Signal) (syscall.WaitStatus, error) {
	type result struct {
		ws  syscall.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		ws, err := child.Wait()
		done <- result{ws, err}
	}()
	for {
		select {
		case r := <-done:
			return r.ws, r.err
		case sig := <-sigs:
			_ = child.Signal(sig)
		case <-ctx.Done():
			_ = child.Signal(syscall.SIGKILL)
			ctx = context.Background() // kill once, then wait
		}
	}
}

// exitError turns a wait status into nil or an *ExitError. Like docker's
// OOMKilled, an OOM kill of any process in the container's cgroup counts:
// often the victim is a child and PID 1 only passes its status on.
func exitError(ws syscall.WaitStatus, cg cgroups.Cgroup, memLimit int64) *ExitError {
	var e ExitError
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		e.Code = ws.ExitStatus()
	case ws.Signaled():
		e.Code, e.Signal = 128+int(ws.Signal()), ws.Signal()
	default:
		e.Code = 125
	}
	if memLimit > 0 {
		e.OOMKilled, _ = cg.OOMKilled()
		e.MemoryLimit = memLimit
	}
	return &e
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
