//go:build !exercise

// Command lesson00 is the smallest container there is: a process started
// with new namespaces, moved into another root directory, with its own
// /proc. Every later lesson takes one of these lines and does it properly.
//
//	lesson00 [-rootfs DIR] [-hostname NAME] -- COMMAND [ARG...]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		if err := child(os.Args[2], os.Args[3], os.Args[4:]); err != nil {
			fmt.Fprintln(os.Stderr, "lesson00 child:", err)
			return 1
		}
		return 0 // not reached: child execs the command
	}
	flags := flag.NewFlagSet("lesson00", flag.ContinueOnError)
	rootfs := flags.String("rootfs", "/rootfs", "root filesystem directory (the lab has one at /rootfs)")
	hostname := flags.String("hostname", "container", "host name inside")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: lesson00 [-rootfs DIR] [-hostname NAME] -- COMMAND [ARG...]")
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
		fmt.Fprintln(os.Stderr, "lesson00: no command to run: try lesson00 -rootfs", *rootfs, "-- sh")
		return 2
	}
	if err := checkRootfs(*rootfs); err != nil {
		fmt.Fprintln(os.Stderr, "lesson00:", err)
		return 2
	}
	code, err := parent(*rootfs, *hostname, flags.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "lesson00:", err)
		return 1
	}
	return code
}

// checkRootfs turns a missing root filesystem into the command that makes
// one, rather than a bare ENOENT from chroot or mount.
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

// parent starts this same program again as "child", in new UTS, PID and
// mount namespaces: the kernel features that make a process a container.
func parent(rootfs, hostname string, args []string) (int, error) {
	cmd := exec.Command("/proc/self/exe", append([]string{"child", rootfs, hostname}, args...)...)
	cmd.Args[0] = "lesson00" // the name we are known by (tests dispatch on it)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUTS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
	}
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// child runs inside the new namespaces as PID 1. It names its host, keeps
// its mounts to itself, changes its root and mounts a /proc that shows
// only its own processes, then becomes the command.
func child(rootfs, hostname string, args []string) error {
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	// Our mounts must not show up on the host (lesson 03 explains).
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	// chroot is the 1979 way; lesson 01 shows why it is not enough and
	// lesson 03 replaces it with pivot_root.
	if err := unix.Chroot(rootfs); err != nil {
		return fmt.Errorf("chroot %s: %w", rootfs, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return err
	}
	return unix.Exec(path, args, os.Environ())
}
