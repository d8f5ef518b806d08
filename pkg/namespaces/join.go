package namespaces

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrJoinUser is returned by Join when asked for the user namespace.
var ErrJoinUser = errors.New("joining a user namespace: setns(CLONE_NEWUSER) fails in a multithreaded process " +
	"such as a running Go program; use the nsenter package, which joins before the Go runtime starts")

// Join has no caller yet: `minictr exec` (the lifecycle issue) will use
// it, with JoinCommand for its --explain line and the nsenter package for
// containers with a user namespace (the hardening issue).
//
// Join moves the calling goroutine's OS thread into the namespaces of
// process pid, for the kinds given (not User: see ErrJoinUser). It is what
// `minictr exec` needs: a process started by this goroutine afterwards
// (exec.Cmd forks from the calling thread) lives in the container's
// namespaces.
//
// The thread is locked and never unlocked: it now belongs to the container,
// and the Go runtime must not run other goroutines on it. When the
// goroutine returns, the runtime ends the thread. Call Join from a
// goroutine dedicated to the exec.
//
// Joining a PID namespace does not move the caller: setns(CLONE_NEWPID)
// only decides where the caller's *children* go (pid_namespaces(7)). The
// calling thread keeps its PID; the processes it starts next get PIDs in
// the container.
func Join(pid int, ks []Kind) error {
	ks = sorted(ks)
	if has(ks, User) {
		return ErrJoinUser
	}
	runtime.LockOSThread() // never unlocked: the thread is tainted
	// Go threads share one filesystem context (CLONE_FS); setns into a
	// mount namespace refuses a thread that shares it, so take a copy.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return os.NewSyscallError("unshare(CLONE_FS)", err)
	}
	// Open every namespace first: after joining the mount namespace, the
	// /proc we see may no longer be the one that shows pid.
	order := joinOrder(ks)
	files := make([]*os.File, 0, len(order))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, k := range order {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, k))
		if err != nil {
			return fmt.Errorf("joining the namespaces of PID %d: %w", pid, err)
		}
		files = append(files, f)
	}
	for i, k := range order {
		if err := unix.Setns(int(files[i].Fd()), int(k.CloneFlag())); err != nil {
			return &os.PathError{Op: "setns", Path: files[i].Name(), Err: err}
		}
	}
	return nil
}

// joinOrder puts the mount namespace last. Joining it also resets the
// thread's root and working directory to the container's, and the other
// setns calls should still run in the world where the files were opened.
func joinOrder(ks []Kind) []Kind {
	var out []Kind
	for _, k := range ks {
		if k != Mount {
			out = append(out, k)
		}
	}
	if has(ks, Mount) {
		out = append(out, Mount)
	}
	return out
}

// JoinCommand will be `minictr exec`'s --explain line (lifecycle issue).
// It returns the nsenter(1) command that joins the same namespaces:
// "nsenter --target 4242 --uts --ipc --net --pid --mount".
func JoinCommand(pid int, ks []Kind) string {
	cmd := fmt.Sprintf("nsenter --target %d", pid)
	for _, k := range sorted(ks) {
		cmd += " " + kinds[k].unshare // nsenter(1) takes the same options as unshare(1)
	}
	return cmd
}
