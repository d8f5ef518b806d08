//go:build !exercise

// Command lesson02 runs a command in new Linux namespaces and says what it
// did on the way:
//
//	lesson02 -ns uts,pid,mnt,ipc,net [-hostname H] [-map 0:100000:65536] [-proc] -- CMD [ARG...]
//
// It re-executes itself (/proc/self/exe) with clone flags; the copy, now the
// first process in the new namespaces, sets the hostname, optionally mounts
// a fresh /proc, and execs CMD. Messages go to stderr, CMD's output to stdout.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// childEnv marks the re-executed copy. argv[0] stays "lesson02", so that the
// test binary (which picks a command by argv[0]) runs us again.
const childEnv = "LESSON02_CHILD"

// namespaces maps each /proc/PID/ns name to its clone flag and the
// unshare(1) option that asks for the same.
var namespaces = []struct {
	name, option string
	flag         uintptr
}{
	{"uts", "--uts", unix.CLONE_NEWUTS},
	{"pid", "--pid", unix.CLONE_NEWPID},
	{"mnt", "--mount", unix.CLONE_NEWNS},
	{"ipc", "--ipc", unix.CLONE_NEWIPC},
	{"net", "--net", unix.CLONE_NEWNET},
	{"cgroup", "--cgroup", unix.CLONE_NEWCGROUP},
	{"user", "--user", unix.CLONE_NEWUSER},
}

type options struct {
	ns, hostname, idmap string
	proc                bool
	cmd                 []string
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	fs := flag.NewFlagSet("lesson02", flag.ContinueOnError)
	fs.StringVar(&o.ns, "ns", "uts,pid,mnt,ipc,net", "namespaces to create: uts,pid,mnt,ipc,net,cgroup,user")
	fs.StringVar(&o.hostname, "hostname", "", "hostname to set inside (needs uts)")
	fs.StringVar(&o.idmap, "map", "0:100000:65536", "with user: INSIDE:OUTSIDE:COUNT for both uids and gids")
	fs.BoolVar(&o.proc, "proc", false, "mount a fresh /proc inside (needs pid and mnt)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: lesson02 [-ns LIST] [-hostname H] [-map I:O:N] [-proc] -- CMD [ARG...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if o.cmd = fs.Args(); len(o.cmd) == 0 {
		fs.Usage()
		fmt.Fprintln(os.Stderr, "lesson02: no command to run: try lesson02 -ns uts,pid -- sh")
		return 2
	}
	if err := checkNamespaces(o.ns); err != nil {
		fmt.Fprintln(os.Stderr, "lesson02:", err)
		return 2
	}
	var err error
	code := 0
	if os.Getenv(childEnv) == "1" {
		err = child(o) // returns only on failure: success is an exec
	} else {
		code, err = parent(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lesson02:", err)
		return 125
	}
	return code
}

// checkNamespaces refuses a name that is not a namespace: it would
// otherwise be ignored, and the command would run in the host's.
func checkNamespaces(list string) error {
	var known []string
	for _, ns := range namespaces {
		known = append(known, ns.name)
	}
	for _, name := range strings.Split(list, ",") {
		if !slices.Contains(known, name) {
			return fmt.Errorf("unknown namespace %q in -ns %s: choose from %s", name, list, strings.Join(known, ","))
		}
	}
	return nil
}

func say(format string, args ...any) { fmt.Fprintf(os.Stderr, "lesson02: "+format+"\n", args...) }

// parent starts our own copy in new namespaces and waits for it.
func parent(o options) (int, error) {
	var flags uintptr
	names, opts := []string{}, []string{"unshare"}
	for _, ns := range namespaces {
		if strings.Contains(","+o.ns+",", ","+ns.name+",") {
			flags |= ns.flag
			names, opts = append(names, ns.name), append(opts, ns.option)
		}
	}
	if flags&unix.CLONE_NEWPID != 0 {
		opts = append(opts, "--fork") // only children enter a new PID namespace
	}
	cmd := &exec.Cmd{
		Path:   "/proc/self/exe",
		Args:   append([]string{"lesson02"}, os.Args[1:]...),
		Env:    append(os.Environ(), childEnv+"=1"),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: flags,
			Pdeathsig:  syscall.SIGKILL,
		},
	}
	if flags&unix.CLONE_NEWUSER != 0 {
		if err := mapIDs(cmd.SysProcAttr, o.idmap); err != nil {
			return 0, err
		}
		// unshare(1) since util-linux 2.39 takes INSIDE:OUTSIDE:COUNT, the
		// order of uid_map (2.38 took only OUTSIDE,INSIDE,COUNT), and
		// newuidmap(1) wants the range listed for root in /etc/subuid.
		m := cmd.SysProcAttr.UidMappings[0]
		spec := fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
		opts = append(opts, "--map-users="+spec, "--map-groups="+spec)
	}
	say("clone(%s) a copy of myself: the same as %s -- %s", strings.Join(names, ","), strings.Join(opts, " "), strings.Join(o.cmd, " "))
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("clone with new namespaces: %w", err)
	}
	for _, name := range names {
		outside, _ := os.Readlink("/proc/self/ns/" + name)
		inside, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", cmd.Process.Pid, name))
		say("%-6s host %s, child %s", name, outside, inside)
	}
	say("the host sees the child as PID %d", cmd.Process.Pid)
	err := cmd.Wait()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// mapIDs asks Go's fork/exec to write /proc/PID/uid_map and gid_map.
func mapIDs(attr *syscall.SysProcAttr, spec string) error {
	var m syscall.SysProcIDMap
	if _, err := fmt.Sscanf(spec, "%d:%d:%d", &m.ContainerID, &m.HostID, &m.Size); err != nil {
		return fmt.Errorf("-map %q: want INSIDE:OUTSIDE:COUNT: %w", spec, err)
	}
	attr.UidMappings = []syscall.SysProcIDMap{m}
	attr.GidMappings = attr.UidMappings
	attr.GidMappingsEnableSetgroups = false // write "deny" to /proc/PID/setgroups first
	// Become root inside before exec; the host's uid 0 is not mapped in
	// here, and execve would drop all our capabilities.
	attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	return nil
}

// child runs inside the new namespaces, as their first process.
func child(o options) error {
	say("inside: I am PID %d, uid %d", os.Getpid(), os.Getuid())
	if o.hostname != "" {
		if err := unix.Sethostname([]byte(o.hostname)); err != nil {
			return os.NewSyscallError("sethostname", err)
		}
		say("sethostname(%q): the same as hostname %s", o.hostname, o.hostname)
	}
	if o.proc {
		// Our mount table is a copy of the host's, still joined to it by
		// shared propagation: make it private first, or the new /proc
		// would appear on the host too.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return &os.PathError{Op: "mount --make-rprivate", Path: "/", Err: err}
		}
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return &os.PathError{Op: "mount proc", Path: "/proc", Err: err}
		}
		say("mount --make-rprivate /; mount -t proc proc /proc")
	}
	path, err := exec.LookPath(o.cmd[0])
	if err != nil {
		return err
	}
	say("exec %s", strings.Join(o.cmd, " "))
	os.Unsetenv(childEnv)
	return &os.PathError{Op: "exec", Path: path, Err: unix.Exec(path, o.cmd, os.Environ())}
}
