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
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minictr/minictr/internal/stringid"
	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/chroot"
	"github.com/minictr/minictr/pkg/image/layer"
	"github.com/minictr/minictr/pkg/namespaces"
	"github.com/minictr/minictr/pkg/snapshot"
	"github.com/minictr/minictr/pkg/trace"
)

// RunOptions says how to run a container in the foreground.
type RunOptions struct {
	Spec    Spec
	Root    string // persistent state: <Root>/containers/<id> holds an image container's snapshot
	RunRoot string // live state: <RunRoot>/containers/<id>
	// SubUIDFile and SubGIDFile are where --userns=auto finds its ranges;
	// "" is /etc/subuid and /etc/subgid.
	SubUIDFile, SubGIDFile string

	// Lease, when set, keeps the image (Spec.Image) from being removed
	// while the container uses it. Run calls it with the container's ID
	// once the container's state record exists and before anything is
	// made from the image; it fails when the image is gone. Run calls the
	// release it returns when the container is removed.
	Lease func(ctx context.Context, containerID string) (release func() error, err error)
	// Warn receives what the user should know but that does not stop the
	// container (e.g. a copy of the layers instead of an overlay).
	Warn func(message string)

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
//
// The start is a checklist: each step makes one thing and pushes its
// removal, so that a failure at any step undoes exactly what exists.
func Run(ctx context.Context, o RunOptions) (err error) {
	r := &run{ctx: ctx, o: o, t: trace.Or(o.Tracer), id: newID()}
	process, err := o.Spec.validate()
	if err != nil {
		return &StartError{Code: 125, Err: err}
	}
	// One reading of the host's cgroup layout, for the cgroups stage and
	// for the init's /sys/fs/cgroup alike.
	if r.layout, err = cgroupLayout(r.t); err != nil {
		return &StartError{Code: 125, Err: err}
	}
	profile, source, confined, err := o.Spec.seccompProfile()
	if err != nil {
		return &StartError{Code: 125, Err: err}
	}
	if confined {
		// Without no_new_privs the init installs the filter while it is
		// still privileged, so the calls that drop privileges must pass.
		r.filter = compileSeccomp(profile, source, profileName(o.Spec.Seccomp), process.Capabilities,
			!process.NoNewPrivileges, filepath.Join(o.RunRoot, "seccomp"))
	}
	r.init = initSpec{
		Process:    process,
		Rootfs:     o.Spec.Rootfs,
		Hostname:   o.Spec.Hostname,
		ReadOnly:   o.Spec.ReadOnly,
		Privileged: o.Spec.Privileged,
		Cgroups:    cgroupMounts(r.layout),
		Devices:    deviceNodes(o.Spec.Devices),
	}
	if !o.Spec.NoNewKeyring {
		// Named after the full ID, which nobody inside a container can
		// guess: keyctl(KEYCTL_JOIN_SESSION_KEYRING) joins an existing
		// keyring of that name instead of making one.
		r.init.Keyring = "_ses.minictr-" + r.id
	}
	if r.init.Hostname == "" {
		r.init.Hostname = stringid.Short(r.id)
	}
	defer func() {
		if cerr := r.undo.run(); cerr != nil {
			err = errors.Join(err, &CleanupError{Err: cerr})
		}
	}()
	defer runtime.UnlockOSThread() // locked by startInit (a no-op if it never ran)

	steps := []struct {
		name string
		run  func() error
	}{
		// First, before anything exists: from here on every minictr sees
		// a container that is alive while this engine is.
		{"creating container state", r.record},
		{"allocating the user namespace's IDs", r.allocateUserNS},
		{"leasing the image", r.lease},
		{"preparing the root filesystem from the image", r.prepareRoot},
		{"creating cgroup", r.createCgroup},
		{"compiling the seccomp profile", r.seccomp},
		{"starting container init", r.startInit},
		{"idmapping the image's layers", r.idmapRoot},
		{"joining cgroup", r.joinCgroup},
		{"recording the container's init", r.recordInit},
		{"releasing the init", r.release},
	}
	for _, step := range steps {
		if err := step.run(); err != nil {
			var se *StartError
			if errors.As(err, &se) {
				return se
			}
			return &StartError{Code: 125, Err: fmt.Errorf("%s: %w", step.name, err)}
		}
	}
	return r.wait(ctx)
}

// run carries what the steps of one Run share.
type run struct {
	ctx     context.Context
	o       RunOptions
	t       trace.Tracer
	id      string
	init    initSpec // what the init gets: filled in by the steps
	st      state
	layout  *cgroups.Layout // the host's, read once
	cg      cgroups.Cgroup
	child   *namespaces.Child
	started bool            // the init exec'd the user's process
	filter  <-chan compiled // the seccomp filter being compiled; nil: unconfined
	streams *streams        // the container's stdio
	undo    undo

	snap  *snapshot.Snapshot // an image container's
	files []*os.File         // sent to the init with its spec (idmapRoot)
}

// record writes the container's first state record, locked by this
// engine: its owner, which will remove what the container uses. The lock
// is this process's (O_CLOEXEC: the container never holds it); a detached
// container's monitor would be handed its File instead.
func (r *run) record() error {
	r.st = state{ID: r.id, Image: r.o.Spec.Image, Created: time.Now()}
	owned, err := createState(r.o.RunRoot, r.st)
	if err != nil {
		return err
	}
	r.undo.push(func() error {
		defer owned.Unlock() // after the removal: no reaper meanwhile
		return removeState(r.o.RunRoot, r.id)
	})
	return nil
}

// lease keeps the image's layers from an rmi or prune until the container
// is removed: taken before the snapshot is made of them.
func (r *run) lease() error {
	if r.o.Lease == nil || len(r.o.Spec.Layers) == 0 {
		return nil
	}
	release, err := r.o.Lease(r.ctx, r.id)
	if err != nil {
		return err
	}
	r.undo.push(release)
	return nil
}

// prepareRoot makes an image container's private, writable root: a
// snapshot whose mounts the init makes in its own mount namespace.
func (r *run) prepareRoot() error {
	if len(r.o.Spec.Layers) == 0 {
		return r.rootfsReachable() // --rootfs: the directory is the root
	}
	facts, err := hostSnapshotter(r.o.Root, r.o.RunRoot, r.t)
	if err == nil && r.st.UserNS != nil {
		facts, err = hostIDMap(r.o.RunRoot, facts, r.st.UserNS, r.t)
	}
	if err != nil {
		return err
	}
	opts := snapshot.Options{Kind: facts.Kind, Reason: facts.Reason, Apply: applyLayer, Tracer: r.t}
	if err := r.userNSSnapshot(&opts, facts); err != nil {
		return err
	}
	// The snapshot's directory starts with a record that outlives a
	// reboot, locked like the state record: a snapshot left by a run that
	// a reboot ended is garbage, one of a live container in another run
	// root is not.
	boot, err := bootID()
	if err != nil {
		return err
	}
	owned, err := createRootRecord(r.o.Root, rootRecord{ID: r.id, BootID: boot, AutoRemove: true, Created: r.st.Created})
	if err != nil {
		return err
	}
	dir := filepath.Join(r.o.Root, "containers", r.id)
	r.undo.push(func() error { // also what a failed Prepare left
		defer owned.Unlock()
		return snapshot.Remove(dir, r.t)
	})
	snap, err := snapshot.Prepare(dir, r.o.Spec.Layers, opts)
	if err != nil {
		return err
	}
	r.snap = snap
	if snap.Kind == snapshot.Copy && r.o.Warn != nil {
		// Slower and bigger than an overlay: the user should know why.
		r.o.Warn(snap.Reason + ": using copies of the image's layers")
	}
	r.init.Rootfs = snap.Rootfs()
	for _, m := range snap.Mounts() {
		r.init.Mounts = append(r.init.Mounts, chroot.Mount{
			Source: m.Source, Target: "/", Type: m.Type, Data: strings.Join(m.Options, ",")})
	}
	return nil
}

// applyLayer is how a copy snapshot writes a layer: the image store's safe
// extractor, so that copied layers cannot escape the root either. The
// layers below are the container's root already: their symlinks resolve
// inside it, as the container will see them.
func applyLayer(tar io.Reader, dir string) error {
	_, err := layer.Apply(tar, dir, layer.Options{InRoot: true})
	return err
}

// createCgroup makes the container's cgroup with its limits. The pids
// limit waits until the init is ready to exec: a Go init needs a few
// threads while it sets up, and a limit below that would kill it.
func (r *run) createCgroup() error {
	limits := r.o.Spec.Resources
	limits.PidsLimit = 0
	if limits.Devices == nil {
		// Docker's device allow-list, enforced by the kernel (the v1
		// devices controller, or a BPF program on v2): a container may
		// mknod any node but open only the harmless ones.
		limits.Devices = slices.Clone(cgroups.DefaultDevices)
		if r.o.Spec.Privileged {
			limits.Devices = []cgroups.DeviceRule{cgroups.AllowAllDevices}
		}
	}
	if !r.o.Spec.Privileged && len(r.o.Spec.Devices) > 0 {
		// --device: each node's rule after the defaults (a copy: the
		// caller's rules are not ours to append to).
		limits.Devices = slices.Clone(limits.Devices)
		for _, d := range r.o.Spec.Devices {
			limits.Devices = append(limits.Devices, d.Rule())
		}
	}
	cg, err := cgroups.New(cgroups.Config{Name: "minictr-" + r.id, Resources: limits, Layout: r.layout, Tracer: r.t})
	if err != nil {
		return err
	}
	r.cg = cg
	r.undo.push(func() error {
		if err := cg.Destroy(); err != nil {
			return fmt.Errorf("removing cgroup: %w", err)
		}
		return nil
	})
	return nil
}

// deviceNodes turns --device nodes into what the init makes: plain data,
// since the root filesystem stage knows nothing of cgroups.
func deviceNodes(nodes []cgroups.DeviceNode) []chroot.Device {
	var devs []chroot.Device
	for _, n := range nodes {
		mode := uint32(syscall.S_IFCHR)
		if n.Type == cgroups.BlockDevice {
			mode = syscall.S_IFBLK
		}
		devs = append(devs, chroot.Device{
			Path: n.Path, HostPath: n.HostPath, Mode: mode | uint32(n.Mode.Perm()),
			Major: uint32(n.Major), Minor: uint32(n.Minor), UID: n.UID, GID: n.GID,
		})
	}
	return devs
}

// startInit re-executes minictr as the container's init in new namespaces;
// it waits on the handshake socket until released.
func (r *run) startInit() error {
	s, err := newStreams(&r.o)
	if err != nil {
		return err
	}
	r.streams = s
	r.undo.push(func() error { s.finish(); return nil })
	cfg := namespaces.Config{
		Args:       []string{"minictr", initArg},
		Env:        []string{"PATH=" + DefaultPath, initEnv},
		Namespaces: Namespaces,
		Tracer:     r.t,
		// Pipes, never the engine's own files; a session of its own, so
		// that the engine's terminal is not its controlling terminal.
		NewSession: true,
	}
	// (A nil *os.File in an interface is not a nil io.Reader.)
	if s.init[0] != nil {
		cfg.Stdin = s.init[0]
	}
	cfg.Stdout, cfg.Stderr = s.init[1], s.init[2]
	r.init.Tty = r.o.Spec.Tty
	r.userNamespace(&cfg)
	if r.o.TraceFile != nil {
		cfg.ExtraFiles = []*os.File{r.o.TraceFile}
		r.init.TraceFD = 4 // the first extra file, after the handshake socket
	}
	// The init is minictr until it execs the user's program: it runs from a
	// handle that cannot be written, never from the host's file.
	// (Its overlay's empty layer: in the run root, or in the temporary
	// directory when the binary lives above the run root.)
	empty := []string{filepath.Join(r.o.RunRoot, "exe-lower"), filepath.Join(os.TempDir(), "minictr-exe-lower")}
	exe, err := namespaces.SealedExe("/proc/self/exe", empty, r.t)
	if err != nil {
		return err
	}
	defer exe.Close() // the child has its own
	cfg.Exe = exe
	// The init dies with the thread that started it (Pdeathsig), so that a
	// killed engine never leaves a container behind: keep that thread ours
	// until the container is gone (Run unlocks it). Not earlier: a locked
	// thread makes every goroutine of the steps before hop threads.
	runtime.LockOSThread()
	child, err := namespaces.Start(cfg)
	if err != nil {
		return err
	}
	r.child = child
	s.started()
	r.undo.push(func() error {
		if !r.started {
			_ = child.Signal(syscall.SIGKILL)
			_, _ = child.Wait()
		}
		return nil
	})
	return nil
}

// joinCgroup moves the init into the cgroup before it runs a single
// instruction of the user's program: the limits hold from the first byte.
func (r *run) joinCgroup() error { return r.cg.Add(r.child.Pid) }

// recordInit adds the init and the cgroups to the state record.
func (r *run) recordInit() error {
	r.st.Pid, r.st.PidStart = r.child.Pid, startTime(r.child.Pid)
	r.st.Rootfs, r.st.Cgroups = r.init.Rootfs, r.cg.Paths()
	stateDir := filepath.Join(r.o.RunRoot, "containers", r.id)
	if err := writeState(stateDir, r.st); err != nil {
		return err
	}
	r.t.Step("engine", fmt.Sprintf("container %s is PID %d on the host; its state is in %s", stringid.Short(r.id), r.child.Pid, filepath.Join(stateDir, "state.json")),
		"cat "+filepath.Join(stateDir, "state.json"))
	return nil
}

// release sends the init its spec and waits for its exec (or its error);
// the pids limit comes last, when the init no longer needs threads.
func (r *run) release() error {
	defer r.closeFiles() // the init has its copies now
	payload, err := json.Marshal(r.init)
	if err != nil {
		return err
	}
	if testHookBeforeRelease != nil {
		testHookBeforeRelease(r.child.Pid)
	}
	r.t.Step("engine", "release the init: send its spec over the handshake socket, wait for exec or an error", "")
	pids := r.o.Spec.Resources.PidsLimit
	lastLimits := func() error {
		if r.o.Spec.Tty {
			if err := r.streams.attachTerminal(r.child.Files(), r.t); err != nil {
				return &StartError{Code: 125, Err: fmt.Errorf("attaching the container's terminal: %w", err)}
			}
		}
		if pids == 0 {
			return nil
		}
		if err := r.cg.Set(cgroups.Resources{PidsLimit: pids}); err != nil {
			return &StartError{Code: 125, Err: fmt.Errorf("setting the pids limit: %w", err)}
		}
		return nil
	}
	if err := releaseInterruptible(r.child, payload, lastLimits, r.o.Signals, r.files...); err != nil {
		return err
	}
	r.started = true
	return nil
}

// testHookBeforeRelease, set by tests only, runs while the init waits to
// be released: still minictr, blocked, as it is during any set-up.
var testHookBeforeRelease func(initPid int)

// wait forwards signals until the container's process ends and turns its
// ending into Run's result.
func (r *run) wait(ctx context.Context) error {
	status, err := waitForwarding(ctx, r.child, r.o.Signals, r.streams)
	r.streams.finish() // the rest of its output, before the exit status
	if err != nil {
		return fmt.Errorf("waiting for container: %w", err)
	}
	exit := exitError(status, r.cg, r.o.Spec.Resources.Memory)
	end := "exited with status 0"
	if exit != nil {
		end = strings.TrimPrefix(exit.Error(), "container ")
	}
	r.t.Step("engine", fmt.Sprintf("container %s %s; removing what it used", stringid.Short(r.id), end), "")
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
func releaseInterruptible(child *namespaces.Child, payload []byte, ready func() error, sigs <-chan os.Signal, files ...*os.File) error {
	done := make(chan struct{})
	interrupted := make(chan syscall.Signal, 1)
	// Once the go-ahead is on its way the container's own program runs (it
	// may already have printed something): from then on a signal is the
	// container's to handle, as after the start, not a reason to stop it.
	var goAhead atomic.Bool
	readyThenGo := func() error {
		if ready != nil {
			if err := ready(); err != nil {
				return err
			}
		}
		goAhead.Store(true)
		return nil
	}
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				if goAhead.Load() {
					_ = child.Signal(sig)
					continue
				}
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
	err := child.Release(payload, readyThenGo, files...)
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
// With a terminal, a SIGWINCH is not forwarded: the container's terminal
// takes the new size, and its kernel signals the container's foreground.
func waitForwarding(ctx context.Context, child *namespaces.Child, sigs <-chan os.Signal, s *streams) (syscall.WaitStatus, error) {
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
			if sig == syscall.SIGWINCH && s != nil && s.master != nil {
				s.resize()
				continue
			}
			_ = child.Signal(sig)
		case <-ctx.Done():
			_ = child.Signal(syscall.SIGKILL)
			ctx = context.Background() // kill once, then wait
		}
	}
}

// oomReporter is the one question exitError asks a cgroup.
type oomReporter interface{ OOMKilled() (bool, error) }

// exitError turns a wait status into nil or an *ExitError. Like docker's
// OOMKilled, an OOM kill of any process in the container's cgroup counts:
// often the victim is a child and PID 1 only passes its status on.
func exitError(ws syscall.WaitStatus, cg oomReporter, memLimit int64) *ExitError {
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
