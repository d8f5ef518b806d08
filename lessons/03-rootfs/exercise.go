//go:build exercise

// Exercise for lesson 03: the same program as main.go, with three holes.
// Fill each TODO, then grade your attempt with the lesson's own tests (as
// root, on a host; lessons/EXERCISES.md says more):
//
//	go test -tags exercise ./lessons/03-rootfs/
//
// Try it by hand with: go run -tags exercise . -rootfs /tmp/rootfs -- /bin/sh
// Stuck? main.go (built without the tag) is the solution.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// initEnv marks the re-executed child, which sets up the rootfs.
const initEnv = "LESSON03_INIT=1"

// masked are kernel files a container must not read; missing ones are skipped.
var masked = []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"}

func main() { os.Exit(run()) }

func run() int {
	flags := flag.NewFlagSet("lesson03", flag.ContinueOnError)
	rootfs := flags.String("rootfs", "/rootfs", "directory to use as the new root (the lab has one at /rootfs)")
	breakout := flags.Bool("breakout", false, "try lesson 01's chroot escape before running CMD")
	shared := flags.Bool("shared", false, "make the mounts shared (in this namespace only): pivot_root fails with EINVAL")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: lesson03 [-rootfs DIR] [-breakout] [-shared] -- CMD [ARGS...]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if flags.NArg() == 0 {
		flags.Usage()
		fmt.Fprintln(os.Stderr, "lesson03: no command to run: try lesson03 -rootfs", *rootfs, "-- /bin/sh")
		return 2
	}
	if err := checkRootfs(*rootfs); err != nil {
		fmt.Fprintln(os.Stderr, "lesson03:", err)
		return 2
	}
	var err error
	code := 0
	if os.Getenv("LESSON03_INIT") == "1" {
		err = setupAndExec(*rootfs, *breakout, *shared, flags.Args())
	} else {
		code, err = start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lesson03:", err)
		return 1
	}
	return code
}

// checkRootfs turns a missing root filesystem into the command that makes
// one, rather than a bare ENOENT from mount(2) in the child.
func checkRootfs(dir string) error {
	const hint = "make one with: go run ./scripts/mkrootfs /tmp/rootfs (in the lab: /rootfs)"
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("no root filesystem at %s: %s", dir, hint)
	}
	if fi, err := os.Stat(filepath.Join(dir, "proc")); err != nil || !fi.IsDir() {
		return fmt.Errorf("no directory %s/proc to mount /proc on: mkdir %s/proc, or %s", dir, dir, hint)
	}
	return nil
}

// start runs ourselves again as PID 1 of new mount and PID namespaces
// (Go cannot unshare a PID namespace for the running process) and waits.
func start() (int, error) {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = "lesson03" // the name we were called by, for the test harness
	cmd.Env = append(os.Environ(), initEnv)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID}
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// setupAndExec is the container's init: the checklist, then CMD.
func setupAndExec(rootfs string, breakout, shared bool, argv []string) error {
	rootfs, err := filepath.Abs(rootfs)
	if err != nil {
		return err
	}
	steps := []struct {
		what string
		run  func() error
	}{
		// Our namespace is a copy of the host's; shared mounts would carry
		// our mounts back to the host, and pivot_root refuses them (EINVAL).
		// TODO(1): make every mount of this namespace private, recursively:
		// mount(2) with no source, target "/", no type and the flags
		// unix.MS_REC|unix.MS_PRIVATE (mount --make-rprivate /). Forget
		// it and, on a host whose / is shared, the bind mount and /proc
		// below leak onto the host; pivot_root refuses with EINVAL.
		// Tests: every script; rootfs_host_mounts.txtar says why.
		{"make / rprivate", func() error { return errors.New("TODO 1: mount --make-rprivate /") }},
		// -shared: cut off from the host first, so only our copies share.
		{"make / rshared (-shared)", func() error {
			if !shared {
				return nil
			}
			return unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, "")
		}},
		// pivot_root needs the new root to be a mount point.
		{"bind the rootfs", func() error { return unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, "") }},
		// A new proc shows our PID namespace: CMD will be PID 1.
		{"mount /proc", func() error {
			return unix.Mount("proc", filepath.Join(rootfs, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}},
		{"mask kernel files", func() error { return mask(rootfs) }},
		{"pivot_root", func() error { return pivotRoot(rootfs) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	if breakout {
		if err := escape(); err != nil {
			return err
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// mask covers each kernel file with the host's /dev/null (this lesson has
// no /dev of its own; pkg/chroot builds one and masks after pivot_root).
func mask(rootfs string) error {
	for _, p := range masked {
		target := filepath.Join(rootfs, p)
		if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := unix.Mount("/dev/null", target, "", unix.MS_BIND, ""); err != nil {
			return &os.PathError{Op: "mount", Path: target, Err: err}
		}
	}
	return nil
}

// pivotRoot makes rootfs the root mount and detaches the old one: after
// this, no path, not even "..", leads to the host's files.
func pivotRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return &os.PathError{Op: "chdir", Path: rootfs, Err: err}
	}
	// New root and put_old are both ".": the old root ends up stacked on
	// top of the new one, with no temporary directory needed.
	// TODO(2): pivot_root(2) with new_root "." and put_old "."
	// (unix.PivotRoot). Return a failure as
	// &os.PathError{Op: "pivot_root", Path: rootfs, Err: err}.
	// Tests: rootfs_breakout.txtar, rootfs_shared_einval.txtar.
	return errors.New("TODO 2: pivot_root(\".\", \".\")")
	// TODO(3): the old root (the host's /) is now mounted on top of ".".
	// Detach it: umount2(2) "." with unix.MNT_DETACH (busy mounts cannot
	// be unmounted at once; a lazy unmount cuts them off now). Return a
	// failure as &os.PathError{Op: "umount2", Path: "(old root)", Err: err}.
	// Tests: rootfs_breakout.txtar, rootfs_host_mounts.txtar.
	return errors.New("TODO 3: umount2 the old root with MNT_DETACH")
	return unix.Chdir("/")
}

// escape is lesson 01's breakout. Here the ".." walk stops at the top of
// the root mount, which is now the rootfs: there is nothing above it.
func escape() error {
	const dir = "/.breakout"
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := unix.Chroot(dir); err != nil {
		return &os.PathError{Op: "chroot", Path: dir, Err: err}
	}
	for i := 0; i < 256; i++ {
		if err := unix.Chdir(".."); err != nil {
			return &os.PathError{Op: "chdir", Path: "..", Err: err}
		}
	}
	if err := unix.Chroot("."); err != nil {
		return &os.PathError{Op: "chroot", Path: ".", Err: err}
	}
	return os.Remove(dir) // still the container's /.breakout: we never left
}
