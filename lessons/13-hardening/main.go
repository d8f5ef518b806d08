//go:build !exercise

// Command lesson13 runs a command behind the walls a container runtime puts
// up inside the container, one flag per wall, and prints each step on
// stderr: a fresh session keyring, a user namespace, a capability dropped,
// no_new_privs, and a seccomp filter it assembles by hand and prints
// instruction by instruction.
//
//	lesson13 [-userns] [-keyring] [-drop CAP] [-nnp] [-seccomp SYSCALL] -- CMD [ARGS...]
//
// See README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capabilities, keyrings, no_new_privs and seccomp filters belong to one
// thread: do everything on the thread that finally execs CMD.
func init() { runtime.LockOSThread() }

var caps = map[string]uintptr{"chown": unix.CAP_CHOWN, "dac_override": unix.CAP_DAC_OVERRIDE,
	"kill": unix.CAP_KILL, "mknod": unix.CAP_MKNOD, "net_raw": unix.CAP_NET_RAW,
	"setuid": unix.CAP_SETUID, "sys_admin": unix.CAP_SYS_ADMIN, "sys_chroot": unix.CAP_SYS_CHROOT}

var syscalls = map[string]uint32{"unshare": unix.SYS_UNSHARE, "keyctl": unix.SYS_KEYCTL,
	"mkdirat": unix.SYS_MKDIRAT, "chroot": unix.SYS_CHROOT, "fchownat": unix.SYS_FCHOWNAT}

func main() { os.Exit(run()) }

func run() int {
	flags := flag.NewFlagSet("lesson13", flag.ContinueOnError)
	userns := flags.Bool("userns", false, "run in a new user namespace: root inside is uid 100000 outside")
	keyring := flags.Bool("keyring", false, "join a fresh session keyring")
	drop := flags.String("drop", "", "drop this capability: "+names(caps))
	nnp := flags.Bool("nnp", false, "set no_new_privs (a -seccomp filter sets it too)")
	filter := flags.String("seccomp", "", "refuse this system call with EPERM: "+names(syscalls))
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: lesson13 [-userns] [-keyring] [-drop CAP] [-nnp] [-seccomp SYSCALL] -- CMD [ARGS...]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	_, knownCap := caps[*drop]
	_, knownCall := syscalls[*filter]
	switch {
	case flags.NArg() == 0:
		flags.Usage()
		fmt.Fprintln(os.Stderr, "lesson13: no command to run: try lesson13 -drop chown -- chown 65534 /tmp/lesson13")
		return 2
	case *drop != "" && !knownCap:
		fmt.Fprintf(os.Stderr, "lesson13: -drop %s: not a capability this lesson knows: %s\n", *drop, names(caps))
		return 2
	case *filter != "" && !knownCall:
		fmt.Fprintf(os.Stderr, "lesson13: -seccomp %s: not a system call this lesson knows: %s\n", *filter, names(syscalls))
		return 2
	}
	var err error
	if *userns && os.Getenv("LESSON13_USERNS") == "" {
		err = inUserNamespace()
	} else {
		err = walls(*keyring, *drop, *nnp || *filter != "", *filter, flags.Args())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lesson13:", err)
		return 1
	}
	return 0
}

// inUserNamespace runs ourselves again in a new user namespace where uids
// and gids 0-65535 are 100000-165535 outside: root in there has every
// capability, over the namespace's own resources only.
func inUserNamespace() error {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = "lesson13"
	cmd.Env = append(os.Environ(), "LESSON13_USERNS=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids,
		Credential: &syscall.Credential{Uid: 0, Gid: 0}} // root inside, or exec drops the capabilities
	return cmd.Run()
}

// walls puts the walls up in runc's order, then execs argv: the keyring
// before seccomp (which may refuse keyctl), capabilities and no_new_privs
// before seccomp (so the filter need not allow capset and prctl), seccomp
// last, so that the only call it must let through is execve.
func walls(keyring bool, drop string, nnp bool, filter string, argv []string) error {
	if os.Getenv("LESSON13_USERNS") != "" {
		os.Unsetenv("LESSON13_USERNS") // the command's own lesson13 may make another
		m, _ := os.ReadFile("/proc/self/uid_map")
		say("user namespace: uid_map %s", strings.Join(strings.Fields(string(m)), " "))
	}
	say("CapEff %s", status("CapEff"))
	if keyring {
		before := describe(unix.KEY_SPEC_SESSION_KEYRING)
		id, err := unix.KeyctlJoinSessionKeyring("lesson13")
		if err != nil {
			return os.NewSyscallError("keyctl(KEYCTL_JOIN_SESSION_KEYRING)", err)
		}
		say("session keyring: %s -> %s", before, describe(id))
	}
	if drop != "" {
		if err := dropCap(caps[drop]); err != nil {
			return err
		}
		say("dropped cap_%s: CapEff %s", drop, status("CapEff"))
	}
	if nnp {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl(PR_SET_NO_NEW_PRIVS)", err)
		}
		say("NoNewPrivs %s", status("NoNewPrivs"))
	}
	if filter != "" {
		if err := installFilter(filter); err != nil {
			return err
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// dropCap removes a capability from the bounding set, so that no execve
// brings it back (root regains its permitted set from the bounding set at
// every exec), and from this thread's sets now.
func dropCap(c uintptr) error {
	if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_CAPBSET_DROP)", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capget", err)
	}
	for i := range data {
		mask := ^uint32(0)
		if c/32 == uintptr(i) {
			mask = ^(uint32(1) << (c % 32))
		}
		data[i].Effective &= mask
		data[i].Permitted &= mask
		data[i].Inheritable &= mask
	}
	return os.NewSyscallError("capset", unix.Capset(&hdr, &data[0]))
}

// installFilter hand-assembles a classic BPF program that the kernel runs
// on every system call (seccomp(2)), prints it, and installs it on this
// thread. Each instruction: an opcode, two jump offsets for true and false,
// a constant; the filter reads struct seccomp_data (nr at 0, arch at 4).
func installFilter(name string) error {
	const ld, jeq, ret = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_RET | unix.BPF_K
	arch, nr := uint32(unix.AUDIT_ARCH_X86_64), syscalls[name]
	if runtime.GOARCH == "arm64" {
		arch = unix.AUDIT_ARCH_AARCH64
	}
	prog := []struct {
		ins unix.SockFilter
		asm string
	}{
		{unix.SockFilter{Code: ld, K: 4}, "ld  [4]"}, // the architecture: system call numbers differ by it
		{unix.SockFilter{Code: jeq, Jt: 1, K: arch}, fmt.Sprintf("jeq #%#x, +1, +0", arch)},
		{unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_KILL_PROCESS}, "ret KILL_PROCESS"},
		{unix.SockFilter{Code: ld, K: 0}, "ld  [0]"}, // the system call number
		{unix.SockFilter{Code: jeq, Jf: 1, K: nr}, fmt.Sprintf("jeq #%d, +0, +1", nr)},
		{unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)}, "ret ERRNO(1)"},
		{unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW}, "ret ALLOW"},
	}
	say("seccomp filter refusing %s (%d) with EPERM, %d instructions:", name, nr, len(prog))
	filter := make([]unix.SockFilter, len(prog))
	for i, p := range prog {
		fmt.Fprintf(os.Stderr, "  %d: code=%#04x jt=%d jf=%d k=%#08x  %s\n", i, p.ins.Code, p.ins.Jt, p.ins.Jf, p.ins.K, p.asm)
		filter[i] = p.ins
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return os.NewSyscallError("seccomp(SECCOMP_SET_MODE_FILTER)", e)
	}
	say("Seccomp %s", status("Seccomp"))
	return nil
}

// status reads one field of /proc/self/status, for this thread.
func status(field string) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", unix.Gettid()))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func say(format string, args ...any) { fmt.Fprintf(os.Stderr, "lesson13: "+format+"\n", args...) }

// describe names a keyring as /proc/keys does: its ID in hex, then its
// description (KEYCTL_DESCRIBE says "type;uid;gid;perm;description").
func describe(id int) string {
	real, err := unix.KeyctlGetKeyringID(id, false)
	if err != nil {
		return "none"
	}
	d, _ := unix.KeyctlString(unix.KEYCTL_DESCRIBE, real)
	return fmt.Sprintf("%08x %s", real, d[strings.LastIndex(d, ";")+1:])
}

func names[V any](m map[string]V) string {
	var ns []string
	for n := range m {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return strings.Join(ns, ", ")
}
