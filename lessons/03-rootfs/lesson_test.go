package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/chroot"
	"github.com/minictr/minictr/pkg/trace"
)

func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"lesson03": run, "chroot-setup": chrootSetup})
}

func TestLesson(t *testing.T) {
	testscript.Run(t, testenv.Params("testdata"))
}

// chrootSetup is a test command that runs the engine's version of this
// lesson, chroot.Setup, so that the scripts can prove what the README says
// about the rest of the checklist (/sys, /dev, read-only paths, a read-only
// root, volumes), which lesson03 itself leaves out:
//
//	chroot-setup -rootfs DIR [-read-only] [-volume SRC:DST] [-userns] [-explain] -- CMD [ARGS...]
//
// Like lesson03 it re-executes itself in new namespaces (mount, PID, UTS,
// IPC; with -userns also a user namespace mapping uids 0-65535 onto
// themselves), calls chroot.Setup there and execs CMD. -explain prints
// Setup's trace on stderr.
func chrootSetup() int {
	flags := flag.NewFlagSet("chroot-setup", flag.ContinueOnError)
	rootfs := flags.String("rootfs", "", "root filesystem")
	readOnly := flags.Bool("read-only", false, "make / read-only")
	volume := flags.String("volume", "", "SRC:DST bind mount")
	userns := flags.Bool("userns", false, "also a new user namespace")
	explain := flags.Bool("explain", false, "print the trace on stderr")
	if err := flags.Parse(os.Args[1:]); err != nil || *rootfs == "" || flags.NArg() == 0 {
		return 2
	}
	var err error
	code := 0
	if os.Getenv("CHROOT_SETUP_INIT") == "1" {
		cfg := chroot.Config{Rootfs: *rootfs, ReadOnly: *readOnly, Cgroups: hostCgroups()}
		if *explain {
			cfg.Tracer = trace.New(os.Stderr)
		}
		if src, dst, ok := strings.Cut(*volume, ":"); ok {
			cfg.Mounts = []chroot.Mount{{Source: src, Target: dst, Flags: unix.MS_BIND | unix.MS_REC}}
		}
		err = setupAndExecEngine(cfg, flags.Args())
	} else {
		code, err = startEngine(*userns)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chroot-setup:", err)
		return 1
	}
	return code
}

// hostCgroups are the host's cgroup hierarchies, for /sys/fs/cgroup in the
// container, as the engine hands them to chroot.Setup.
func hostCgroups() []chroot.CgroupMount {
	l, err := cgroups.DetectLayout()
	if err != nil {
		return nil
	}
	var ms []chroot.CgroupMount
	for _, h := range l.Visible() {
		ms = append(ms, chroot.CgroupMount(h))
	}
	return ms
}

func startEngine(userns bool) (int, error) {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = "chroot-setup"
	cmd.Env = append(os.Environ(), "CHROOT_SETUP_INIT=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	attr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}
	if userns {
		attr.Cloneflags |= unix.CLONE_NEWUSER
		ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		attr.UidMappings, attr.GidMappings = ids, ids
		attr.GidMappingsEnableSetgroups = true
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0} // keep the capabilities at exec
	}
	cmd.SysProcAttr = attr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

func setupAndExecEngine(cfg chroot.Config, argv []string) error {
	if err := chroot.Setup(cfg); err != nil {
		return err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}
