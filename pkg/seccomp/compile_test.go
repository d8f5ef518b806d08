package seccomp

import (
	"flag"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	x86_64  = 0xc000003e // AUDIT_ARCH_X86_64
	i386    = 0x40000003 // AUDIT_ARCH_I386
	aarch64 = 0xc00000b7 // AUDIT_ARCH_AARCH64

	sigchld = 17 // the exit signal in clone's flags, as fork passes it
)

// dockerCaps are docker's 14 default capabilities.
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func compileJSON(t *testing.T, js string, caps []string, k kernel) *Filter {
	t.Helper()
	p, err := Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.compile(ArchX86_64, caps, k)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type want struct {
	name string
	c    call
	ret  uint32
}

func check(t *testing.T, f *Filter, cases []want) {
	t.Helper()
	for _, w := range cases {
		if got := run(t, f.Program, w.c); got != w.ret {
			t.Errorf("%s: got %s, want %s", w.name, retString(got), retString(w.ret))
		}
	}
	if t.Failed() {
		t.Logf("program:\n%s", f)
	}
}

func amd64(nr uintptr, args ...uint64) call {
	c := call{arch: x86_64, nr: uint32(nr)}
	copy(c.args[:], args)
	return c
}

// Every operator on 64-bit values whose halves disagree, so that a
// compiler that compared only the low half (or only the high one) fails.
func TestCompileOperators(t *testing.T) {
	f := compileJSON(t, `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
		{"names": ["read"],  "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967298, "op": "SCMP_CMP_EQ"}]},
		{"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 4294967296, "op": "SCMP_CMP_NE"}]},
		{"names": ["open"],  "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 4294967296, "op": "SCMP_CMP_GT"}]},
		{"names": ["close"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 3, "value": 4294967296, "op": "SCMP_CMP_GE"}]},
		{"names": ["stat"],  "action": "SCMP_ACT_ALLOW", "args": [{"index": 4, "value": 4294967301, "op": "SCMP_CMP_LT"}]},
		{"names": ["fstat"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 5, "value": 4294967301, "op": "SCMP_CMP_LE"}]},
		{"names": ["lstat"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 18374686479671623935, "valueTwo": 1297036692682702900, "op": "SCMP_CMP_MASKED_EQ"}]},
		{"names": ["poll"],  "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
		{"names": ["lseek"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 3, "op": "SCMP_CMP_EQ"}]}
	]}`, nil, kernel{6, 1})
	at := func(i int, v uint64) [6]uint64 { var a [6]uint64; a[i] = v; return a }
	c := func(nr uintptr, args [6]uint64) call { return call{arch: x86_64, nr: uint32(nr), args: args} }
	const hi = 1 << 32
	check(t, f, []want{
		// read: args[0] == 0x1_0000_0002
		{"EQ equal", c(unix.SYS_READ, at(0, hi+2)), allow},
		{"EQ low half only", c(unix.SYS_READ, at(0, 2)), errnoEPERM},
		{"EQ high half only", c(unix.SYS_READ, at(0, hi)), errnoEPERM},
		{"EQ other high half", c(unix.SYS_READ, at(0, 2*hi+2)), errnoEPERM},
		// write: args[1] != 0x1_0000_0000
		{"NE zero", c(unix.SYS_WRITE, at(1, 0)), allow},
		{"NE equal", c(unix.SYS_WRITE, at(1, hi)), errnoEPERM},
		{"NE high differs", c(unix.SYS_WRITE, at(1, 2*hi)), allow},
		{"NE low differs", c(unix.SYS_WRITE, at(1, hi+1)), allow},
		// open: args[2] > 0x1_0000_0000
		{"GT below", c(unix.SYS_OPEN, at(2, 0xffffffff)), errnoEPERM},
		{"GT equal", c(unix.SYS_OPEN, at(2, hi)), errnoEPERM},
		{"GT low above", c(unix.SYS_OPEN, at(2, hi+1)), allow},
		{"GT high above", c(unix.SYS_OPEN, at(2, 2*hi)), allow},
		// close: args[3] >= 0x1_0000_0000
		{"GE below", c(unix.SYS_CLOSE, at(3, 0xffffffff)), errnoEPERM},
		{"GE equal", c(unix.SYS_CLOSE, at(3, hi)), allow},
		{"GE above", c(unix.SYS_CLOSE, at(3, 3*hi)), allow},
		// stat: args[4] < 0x1_0000_0005
		{"LT high below", c(unix.SYS_STAT, at(4, 0xffffffff)), allow},
		{"LT low below", c(unix.SYS_STAT, at(4, hi+4)), allow},
		{"LT equal", c(unix.SYS_STAT, at(4, hi+5)), errnoEPERM},
		{"LT high above, low below", c(unix.SYS_STAT, at(4, 2*hi)), errnoEPERM},
		// fstat: args[5] <= 0x1_0000_0005
		{"LE equal", c(unix.SYS_FSTAT, at(5, hi+5)), allow},
		{"LE above", c(unix.SYS_FSTAT, at(5, hi+6)), errnoEPERM},
		{"LE high below, low above", c(unix.SYS_FSTAT, at(5, 0xfffffff0)), allow},
		// lstat: (args[0] & 0xff00_0000_0000_00ff) == 0x1200_0000_0000_0034
		{"MASKED_EQ match", c(unix.SYS_LSTAT, at(0, 0x12ab_cdef_0000_7734)), allow},
		{"MASKED_EQ high differs", c(unix.SYS_LSTAT, at(0, 0x13ab_cdef_0000_7734)), errnoEPERM},
		{"MASKED_EQ low differs", c(unix.SYS_LSTAT, at(0, 0x12ab_cdef_0000_7735)), errnoEPERM},
		// poll: args[0] == 1 && args[1] == 2
		{"AND both", c(unix.SYS_POLL, [6]uint64{1, 2}), allow},
		{"AND first only", c(unix.SYS_POLL, [6]uint64{1, 3}), errnoEPERM},
		{"AND second only", c(unix.SYS_POLL, [6]uint64{0, 2}), errnoEPERM},
		// lseek: args[2] == 1 || args[2] == 3 (the same argument twice)
		{"same argument, first", c(unix.SYS_LSEEK, at(2, 1)), allow},
		{"same argument, second", c(unix.SYS_LSEEK, at(2, 3)), allow},
		{"same argument, neither", c(unix.SYS_LSEEK, at(2, 2)), errnoEPERM},
		// anything else
		{"above every named number: newer than the profile", c(unix.SYS_GETPID, [6]uint64{}), errnoENOSYS},
	})
}

// Every action, with its data; rules for one syscall in profile order.
func TestCompileActions(t *testing.T) {
	f := compileJSON(t, `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["read"], "action": "SCMP_ACT_ERRNO"},
		{"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
		{"names": ["open"], "action": "SCMP_ACT_KILL"},
		{"names": ["close"], "action": "SCMP_ACT_KILL_THREAD"},
		{"names": ["stat"], "action": "SCMP_ACT_KILL_PROCESS"},
		{"names": ["fstat"], "action": "SCMP_ACT_TRAP"},
		{"names": ["lstat"], "action": "SCMP_ACT_TRACE", "errnoRet": 9},
		{"names": ["poll"], "action": "SCMP_ACT_LOG"},
		{"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]},
		{"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6},
		{"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99},
		{"names": ["no_such_syscall", "mmap"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12}
	]}`, nil, kernel{6, 1})
	check(t, f, []want{
		{"ERRNO without errnoRet is EPERM", amd64(unix.SYS_READ), errnoEPERM},
		{"ERRNO(ENOSYS)", amd64(unix.SYS_WRITE), errnoENOSYS},
		{"KILL", amd64(unix.SYS_OPEN), 0x00000000},
		{"KILL_THREAD", amd64(unix.SYS_CLOSE), 0x00000000},
		{"KILL_PROCESS", amd64(unix.SYS_STAT), 0x80000000},
		{"TRAP", amd64(unix.SYS_FSTAT), 0x00030000},
		{"TRACE(9)", amd64(unix.SYS_LSTAT), 0x7ff00009},
		{"LOG", amd64(unix.SYS_POLL), 0x7ffc0000},
		{"first rule whose args hold", amd64(unix.SYS_LSEEK, 7), errno(5)},
		{"next rule when they do not", amd64(unix.SYS_LSEEK, 8), errno(6)},
		{"an unknown name is skipped, the others kept", amd64(unix.SYS_MMAP), errno(12)},
		{"default", amd64(unix.SYS_GETPID), allow},
	})
}

// Which ABI made the call decides which numbers mean what.
func TestCompileArches(t *testing.T) {
	const rules = `"syscalls": [{"names": ["getpid", "execve"], "action": "SCMP_ACT_ALLOW"}]`
	// Numbers from the kernel's syscall_64.tbl and syscall_32.tbl, written out.
	var (
		getpid64   = amd64(unix.SYS_GETPID)
		getpid32   = call{arch: i386, nr: 20}
		chmod32    = call{arch: i386, nr: 15} // below getpid's 20, not named
		exec64on32 = call{arch: i386, nr: 59} // execve's x86_64 number is olduname on i386
		getpidX32  = call{arch: x86_64, nr: 0x40000000 | 39}
		execveX32  = call{arch: x86_64, nr: 0x40000000 | 520} // x32 has its own execve
		bad32on64  = call{arch: x86_64, nr: 0x40000000 | 59}  // 59 | x32 bit is not execve
		arm64      = call{arch: aarch64, nr: 172}             // getpid on arm64
	)
	for _, tc := range []struct {
		name, arches string
		want         []want
	}{
		{"archMap with both sub-ABIs", `"archMap": [
			{"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
			{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],`, []want{
			{"x86_64 getpid", getpid64, allow},
			{"i386 getpid", getpid32, allow},
			{"i386 chmod", chmod32, errnoEPERM},
			{"x86_64's execve number on i386", exec64on32, errnoENOSYS},
			{"i386 execve", call{arch: i386, nr: 11}, allow},
			{"x32 getpid", getpidX32, allow},
			{"x32 execve", execveX32, allow},
			{"x32 bit on x86_64's execve number", bad32on64, errnoEPERM},
			{"foreign arch", arm64, errnoEPERM},
		}},
		{"architectures without x32", `"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_ARM"],`, []want{
			{"x86_64 getpid", getpid64, allow},
			{"i386 getpid", getpid32, allow},
			{"x32 getpid", getpidX32, errnoEPERM},
			{"foreign arch", arm64, errnoEPERM},
		}},
		{"native only", ``, []want{
			{"x86_64 getpid", getpid64, allow},
			{"i386 getpid", getpid32, errnoEPERM},
			{"x32 getpid", getpidX32, errnoEPERM},
			{"foreign arch", arm64, errnoEPERM},
		}},
		{"archMap for another native ABI only", `"archMap": [{"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": null}],`, []want{
			{"x86_64 getpid", getpid64, allow},
			{"i386 getpid", getpid32, errnoEPERM},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, compileJSON(t, `{"defaultAction": "SCMP_ACT_ERRNO", `+tc.arches+rules+`}`, nil, kernel{6, 1}), tc.want)
		})
	}
}

// includes and excludes, resolved against capabilities, the architecture
// and the kernel.
func TestCompileIncludesExcludes(t *testing.T) {
	const js = `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
		{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
		{"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT", "CAP_SYS_ADMIN"]}},
		{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
		{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
		 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
		{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
		{"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
		{"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
		{"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
		{"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["s390x", "amd64"]}},
		{"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["s390x"]}}
	]}`
	const newNS = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | sigchld
	const thread = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	t.Run("no capabilities, kernel 4.4", func(t *testing.T) {
		check(t, compileJSON(t, js, nil, kernel{4, 4}), []want{
			{"mount", amd64(unix.SYS_MOUNT), errnoEPERM},
			{"clone of a thread", amd64(unix.SYS_CLONE, thread), allow},
			{"clone with namespaces", amd64(unix.SYS_CLONE, newNS), errnoEPERM},
			{"ptrace before 4.8", amd64(unix.SYS_PTRACE), errnoEPERM},
			{"getpid before 5.0", amd64(unix.SYS_GETPID), allow},
			{"arch_prctl on amd64", amd64(unix.SYS_ARCH_PRCTL), allow},
			{"getppid excluded on amd64", amd64(unix.SYS_GETPPID), errnoEPERM},
			{"gettid excluded elsewhere", amd64(unix.SYS_GETTID), allow},
		})
	})
	t.Run("CAP_SYS_ADMIN, kernel 5.10", func(t *testing.T) {
		check(t, compileJSON(t, js, []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}, kernel{5, 10}), []want{
			{"mount", amd64(unix.SYS_MOUNT), allow},
			{"reboot needs CAP_SYS_BOOT too", amd64(unix.SYS_REBOOT), errnoEPERM},
			{"clone with namespaces", amd64(unix.SYS_CLONE, newNS), allow},
			{"ptrace from 4.8", amd64(unix.SYS_PTRACE), allow},
			{"getpid from 5.0", amd64(unix.SYS_GETPID), errnoEPERM},
		})
	})
	t.Run("capability names as docker's CLI spells them", func(t *testing.T) {
		check(t, compileJSON(t, js, []string{"sys_admin", "SYS_BOOT"}, kernel{5, 10}), []want{
			{"reboot", amd64(unix.SYS_REBOOT), allow},
		})
	})
}

// The default profile has the effect of docker's, for a container with
// docker's 14 capabilities.
func TestDefaultProfile(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.compile(ArchX86_64, dockerCaps, kernel{6, 1})
	if err != nil {
		t.Fatal(err)
	}
	const thread = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD |
		unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
	refused := []uintptr{
		unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY, unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN,
		unix.SYS_USERFAULTFD, unix.SYS_FANOTIFY_INIT, unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_CLOCK_SETTIME,
		unix.SYS_SETTIMEOFDAY, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
		unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF,
		unix.SYS_ACCT, unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_MOUNT_SETATTR, unix.SYS_MOVE_MOUNT,
		unix.SYS_OPEN_TREE, unix.SYS_FSOPEN, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_FSCONFIG,
		unix.SYS_UNSHARE, unix.SYS_SETNS, unix.SYS_PIVOT_ROOT, unix.SYS_SETHOSTNAME, unix.SYS_SYSLOG,
		unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_KCMP, unix.SYS_PIDFD_GETFD, unix.SYS_PROCESS_MADVISE,
		unix.SYS_MBIND, unix.SYS_SET_MEMPOLICY, unix.SYS_VHANGUP, unix.SYS_QUOTACTL, unix.SYS_NFSSERVCTL,
		unix.SYS_USELIB, unix.SYS_USTAT, unix.SYS_SYSFS, unix.SYS__SYSCTL, unix.SYS_LOOKUP_DCOOKIE,
	}
	allowed := []uintptr{
		unix.SYS_READ, unix.SYS_WRITE, unix.SYS_OPENAT, unix.SYS_GETPID, unix.SYS_EXECVE, unix.SYS_EXIT_GROUP,
		unix.SYS_FUTEX, unix.SYS_MMAP, unix.SYS_ARCH_PRCTL, unix.SYS_MODIFY_LDT, unix.SYS_CHROOT,
		unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_SETUID, unix.SYS_CAPSET, unix.SYS_PRCTL,
		unix.SYS_SECCOMP, unix.SYS_IO_URING_SETUP, unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_CLOCK_ADJTIME,
		unix.SYS_FCHMODAT2, unix.SYS_RSEQ, unix.SYS_MKNODAT, unix.SYS_GETRANDOM, unix.SYS_CLOSE_RANGE,
	}
	var cases []want
	for _, nr := range refused {
		cases = append(cases, want{"refused " + nameOf(nr), amd64(nr), errnoEPERM})
	}
	for _, nr := range allowed {
		cases = append(cases, want{"allowed " + nameOf(nr), amd64(nr), allow})
	}
	cases = append(cases, []want{
		{"unshare(CLONE_NEWUSER)", amd64(unix.SYS_UNSHARE, unix.CLONE_NEWUSER), errnoEPERM},
		{"clone of a thread", amd64(unix.SYS_CLONE, thread), allow},
		{"fork", amd64(unix.SYS_CLONE, sigchld), allow},
		{"clone(CLONE_NEWUSER)", amd64(unix.SYS_CLONE, unix.CLONE_NEWUSER|sigchld), errnoEPERM},
		{"clone(CLONE_NEWNET)", amd64(unix.SYS_CLONE, unix.CLONE_NEWNET|sigchld), errnoEPERM},
		{"clone(CLONE_NEWCGROUP)", amd64(unix.SYS_CLONE, unix.CLONE_NEWCGROUP|sigchld), errnoEPERM},
		{"clone3 so that libc falls back to clone", amd64(unix.SYS_CLONE3), errnoENOSYS},
		{"personality(PER_LINUX)", amd64(unix.SYS_PERSONALITY, 0), allow},
		{"personality(PER_LINUX32)", amd64(unix.SYS_PERSONALITY, 8), allow},
		{"personality(UNAME26)", amd64(unix.SYS_PERSONALITY, 0x20000), allow},
		{"personality(PER_LINUX32|UNAME26)", amd64(unix.SYS_PERSONALITY, 0x20008), allow},
		{"personality query", amd64(unix.SYS_PERSONALITY, 0xffffffff), allow},
		{"personality(ADDR_NO_RANDOMIZE)", amd64(unix.SYS_PERSONALITY, 0x40000), errnoEPERM},
		{"personality(1)", amd64(unix.SYS_PERSONALITY, 1), errnoEPERM},
		{"socket(AF_VSOCK)", amd64(unix.SYS_SOCKET, 40), errnoEPERM},
		{"socket(AF_VSOCK) with high bits the kernel drops", amd64(unix.SYS_SOCKET, 1<<32|40), errnoEPERM},
		{"socket(AF_INET)", amd64(unix.SYS_SOCKET, unix.AF_INET), allow},
		{"socket(AF_INET) with high bits", amd64(unix.SYS_SOCKET, 1<<32|unix.AF_INET), allow},
		{"socket(AF_NETLINK)", amd64(unix.SYS_SOCKET, unix.AF_NETLINK), allow},
		// The other ABIs: numbers from syscall_32.tbl and syscall_64.tbl.
		{"i386 getpid", call{arch: i386, nr: 20}, allow},
		{"i386 socketcall", call{arch: i386, nr: 102}, allow},
		{"i386 keyctl", call{arch: i386, nr: 288}, errnoEPERM},
		{"i386 unshare", call{arch: i386, nr: 310}, errnoEPERM},
		{"i386 clone with a new user namespace", call{arch: i386, nr: 120, args: [6]uint64{unix.CLONE_NEWUSER}}, errnoEPERM},
		{"i386 personality(ADDR_NO_RANDOMIZE)", call{arch: i386, nr: 136, args: [6]uint64{0x40000}}, errnoEPERM},
		{"x32 getpid", call{arch: x86_64, nr: 0x40000000 | 39}, allow},
		{"x32 execve", call{arch: x86_64, nr: 0x40000000 | 520}, allow},
		{"x32 keyctl", call{arch: x86_64, nr: 0x40000000 | 250}, errnoEPERM},
		{"x32 unshare", call{arch: x86_64, nr: 0x40000000 | 272}, errnoEPERM},
		{"arm64 getpid", call{arch: aarch64, nr: 172}, errnoEPERM},
		// Newer than the profile (mseal, 462, is the newest it names).
		{"listxattrat (465), newer than the profile", amd64(465), errnoENOSYS},
		{"a number no kernel has yet", amd64(900), errnoENOSYS},
		{"i386 listxattrat", call{arch: i386, nr: 465}, errnoENOSYS},
		{"set_mempolicy_home_node (450), older than the newest named", amd64(unix.SYS_SET_MEMPOLICY_HOME_NODE), errnoEPERM},
	}...)
	check(t, f, cases)

	// The capabilities that open each door.
	for _, tc := range []struct {
		cap string
		nr  uintptr
	}{
		{"CAP_SYS_ADMIN", unix.SYS_UNSHARE}, {"CAP_SYS_ADMIN", unix.SYS_MOUNT}, {"CAP_SYS_ADMIN", unix.SYS_FSOPEN},
		{"CAP_DAC_READ_SEARCH", unix.SYS_OPEN_BY_HANDLE_AT}, {"CAP_SYS_TIME", unix.SYS_CLOCK_SETTIME},
		{"CAP_SYS_MODULE", unix.SYS_FINIT_MODULE}, {"CAP_SYS_BOOT", unix.SYS_REBOOT}, {"CAP_SYS_PACCT", unix.SYS_ACCT},
		{"CAP_BPF", unix.SYS_BPF}, {"CAP_PERFMON", unix.SYS_PERF_EVENT_OPEN}, {"CAP_SYS_PTRACE", unix.SYS_KCMP},
	} {
		f, err := p.compile(ArchX86_64, append([]string{tc.cap}, dockerCaps...), kernel{6, 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := run(t, f.Program, amd64(tc.nr)); got != allow {
			t.Errorf("%s with %s: got %s, want ALLOW", nameOf(tc.nr), tc.cap, retString(got))
		}
	}
	f, err = p.compile(ArchX86_64, []string{"CAP_SYS_ADMIN"}, kernel{6, 1})
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, []want{
		{"clone(CLONE_NEWUSER) with CAP_SYS_ADMIN", amd64(unix.SYS_CLONE, unix.CLONE_NEWUSER), allow},
		{"clone3 with CAP_SYS_ADMIN", amd64(unix.SYS_CLONE3), allow},
		{"chroot without CAP_SYS_CHROOT", amd64(unix.SYS_CHROOT), errnoEPERM},
	})
	f, err = p.compile(ArchX86_64, dockerCaps, kernel{4, 4})
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, []want{{"ptrace before 4.8", amd64(unix.SYS_PTRACE), errnoEPERM}})
}

// testdata/docker-format.json uses every feature of docker's default
// profile, in its layout: archMap for many ABIs (one with null
// subArchitectures), comments, includes by caps, arches and minKernel,
// excludes by caps and arches together, MASKED_EQ without valueTwo,
// errnoRet, and names of other architectures' syscalls.
func TestDockerFormatProfile(t *testing.T) {
	p, err := Load("testdata/docker-format.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.compile(ArchX86_64, dockerCaps, kernel{6, 1})
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, []want{
		{"getpid", amd64(unix.SYS_GETPID), allow},
		{"i386 getpid", call{arch: i386, nr: 20}, allow},
		{"x32 getpid", call{arch: x86_64, nr: 0x40000000 | 39}, allow},
		{"keyctl", amd64(unix.SYS_KEYCTL), errnoEPERM},
		{"ptrace from 4.8", amd64(unix.SYS_PTRACE), allow},
		{"arch_prctl on amd64", amd64(unix.SYS_ARCH_PRCTL), allow},
		{"socket(AF_VSOCK)", amd64(unix.SYS_SOCKET, 40), errnoEPERM},
		{"socket(AF_UNIX)", amd64(unix.SYS_SOCKET, unix.AF_UNIX), allow},
		// docker's rule compares 64 bits, the kernel reads an int: the
		// hole default.json closes with a rule before it.
		{"socket(1<<32 | AF_VSOCK) gets through docker's rule", amd64(unix.SYS_SOCKET, 1<<32|40), allow},
		{"personality(8)", amd64(unix.SYS_PERSONALITY, 8), allow},
		{"personality(0x40000)", amd64(unix.SYS_PERSONALITY, 0x40000), errnoEPERM},
		{"fork", amd64(unix.SYS_CLONE, sigchld), allow},
		{"clone(CLONE_NEWUSER)", amd64(unix.SYS_CLONE, unix.CLONE_NEWUSER), errnoEPERM},
		{"clone3", amd64(unix.SYS_CLONE3), errnoENOSYS},
		{"unshare", amd64(unix.SYS_UNSHARE, unix.CLONE_NEWUSER), errnoEPERM},
		{"chroot", amd64(unix.SYS_CHROOT), allow},
		{"mount", amd64(unix.SYS_MOUNT), errnoEPERM},
	})
}

var update = flag.Bool("update", false, "rewrite the golden files (then read the diff)")

// The disassembly of a tiny profile, checked line by line in
// testdata/tiny.golden: what a lesson prints.
func TestGoldenDisassembly(t *testing.T) {
	p, err := Load("testdata/tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.compile(ArchX86_64, nil, kernel{6, 1})
	if err != nil {
		t.Fatal(err)
	}
	got := f.String()
	if *update {
		if err := os.WriteFile("testdata/tiny.golden", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile("testdata/tiny.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(golden) {
		t.Errorf("disassembly differs from testdata/tiny.golden:\n%s", got)
	}
	// Without the compiler's notes, the same instructions.
	plain := Disassemble(f.Program)
	if n := strings.Count(plain, "\n"); n != len(f.Program) {
		t.Errorf("Disassemble printed %d lines for %d instructions", n, len(f.Program))
	}
	lines := strings.Split(plain, "\n")
	if strings.Join(strings.Fields(lines[0]), " ") != "0: ld [4] ; arch" || strings.Join(strings.Fields(lines[1]), " ") != "1: jeq #0xc000003e, 0, 1" {
		t.Errorf("Disassemble:\n%s", plain)
	}
}

func TestDisassembleUnknown(t *testing.T) {
	got := Disassemble([]unix.SockFilter{{Code: unix.BPF_LDX | unix.BPF_MEM, K: 3}})
	if want := "   0: .insn code=0x61 jt=0 jf=0 k=0x3\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCompileRefuses(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []Arch{"", ArchX32, "SCMP_ARCH_AARCH64"} {
		if _, err := p.compile(arch, nil, kernel{6, 1}); err == nil {
			t.Errorf("compile for %q succeeded", arch)
		}
	}
	// A conditional block longer than a jump can skip.
	var args []string
	for i := 0; i < 60; i++ {
		args = append(args, `{"index": 0, "value": `+strings.Repeat("1", 1+i%9)+`, "op": "SCMP_CMP_EQ"}`)
	}
	long, err := Parse([]byte(`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [` +
		strings.Join(args[:6], ",") + `]}` + strings.Repeat(`, {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [`+strings.Join(args[:6], ",")+`]}`, 10) + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := long.compile(ArchX86_64, nil, kernel{6, 1}); err == nil || !strings.Contains(err.Error(), "255") {
		t.Errorf("a 300-instruction rule block compiled: %v", err)
	}
}

// nameOf names an x86_64 syscall number, for messages only.
func nameOf(nr uintptr) string {
	for _, e := range syscallsX86_64 {
		if uintptr(e.nr) == nr {
			return e.name
		}
	}
	return "?"
}

// Consecutive numbers with one action become a range check; a range may
// run through numbers decided before it, never through a number the
// profile refuses or one the kernel does not have.
func TestCompileRanges(t *testing.T) {
	f := compileJSON(t, `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
		{"names": ["read", "write", "open", "close", "fstat", "poll", "mmap"], "action": "SCMP_ACT_ALLOW"},
		{"names": ["stat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
		{"names": ["lseek"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]},
		{"names": ["rseq", "pidfd_send_signal"], "action": "SCMP_ACT_ALLOW"}
	]}`, nil, kernel{6, 1})
	check(t, f, []want{
		{"read", amd64(0), allow},
		{"close", amd64(3), allow},
		{"stat, inside the range, decided before it", amd64(4), errno(5)},
		{"fstat", amd64(5), allow},
		{"lstat, refused, right after the range", amd64(6), errnoEPERM},
		{"poll", amd64(7), allow},
		{"lseek with the argument", amd64(8, 3), allow},
		{"lseek without, inside the next range", amd64(8, 4), errnoEPERM},
		{"mmap", amd64(9), allow},
		{"mprotect, after it", amd64(10), errnoEPERM},
		{"rseq", amd64(334), allow},
		{"a number no kernel has yet", amd64(400), errnoEPERM},
		{"pidfd_send_signal", amd64(424), allow},
		{"newer than any the profile names", amd64(425), errnoENOSYS},
	})
	text := f.String()
	for _, note := range []string{"; read to fstat\n", "; poll to mmap\n", "; rseq\n", "; pidfd_send_signal\n"} {
		if !strings.Contains(text, note) {
			t.Errorf("no check annotated %q in:\n%s", strings.TrimSpace(note), text)
		}
	}
}

// The engine can compile and the init install: the program survives the
// trip byte for byte, as struct sock_filter lays it out.
func TestFilterBinary(t *testing.T) {
	f := &Filter{Program: []unix.SockFilter{{Code: 0x15, Jt: 1, Jf: 2, K: 0xc000003e}, {Code: 0x06, K: 0x7fff0000}}}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x15, 0, 1, 2, 0x3e, 0, 0, 0xc0, 0x06, 0, 0, 0, 0, 0, 0xff, 0x7f}
	if string(b) != string(want) {
		t.Errorf("MarshalBinary = % x, want % x", b, want)
	}
	var g Filter
	if err := g.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if Disassemble(g.Program) != Disassemble(f.Program) {
		t.Errorf("round trip:\n%s", Disassemble(g.Program))
	}
	for _, bad := range [][]byte{nil, b[:7], make([]byte, 8*4097)} {
		if err := g.UnmarshalBinary(bad); err == nil {
			t.Errorf("UnmarshalBinary of %d bytes succeeded", len(bad))
		}
	}
}

// The generated tables hold what the compiler assumes of them.
func TestTables(t *testing.T) {
	for arch, a := range abis {
		seen := map[uint32]string{}
		for i, e := range a.syscalls {
			if i > 0 && a.syscalls[i-1].name >= e.name {
				t.Errorf("%s: %s after %s: not sorted by name", arch, e.name, a.syscalls[i-1].name)
			}
			if e.nr&^x32Bit >= maxNumber {
				t.Errorf("%s: %s is %d, not below maxNumber", arch, e.name, e.nr)
			}
			if (arch == ArchX32) != (e.nr&x32Bit != 0) {
				t.Errorf("%s: %s is %#x", arch, e.name, e.nr)
			}
			if other, dup := seen[e.nr]; dup {
				t.Errorf("%s: %s and %s are both %d", arch, e.name, other, e.nr)
			}
			seen[e.nr] = e.name
		}
	}
	// A few numbers from the kernel's syscall tables, written out.
	for _, tc := range []struct {
		arch Arch
		name string
		nr   uint32
	}{
		{ArchX86_64, "read", 0}, {ArchX86_64, "execve", 59}, {ArchX86_64, "keyctl", 250}, {ArchX86_64, "clone3", 435},
		{ArchX86_64, "fchmodat2", 452}, {ArchX86, "exit", 1}, {ArchX86, "socketcall", 102}, {ArchX86, "keyctl", 288},
		{ArchX32, "read", 0x40000000}, {ArchX32, "execve", 0x40000000 | 520}, {ArchX32, "unshare", 0x40000000 | 272},
	} {
		if nr, ok := abis[tc.arch].syscalls.lookup(tc.name); !ok || nr != tc.nr {
			t.Errorf("%s %s = %d, %v; want %d", tc.arch, tc.name, nr, ok, tc.nr)
		}
	}
	if _, ok := abis[ArchX86_64].syscalls.lookup("socketcall"); ok {
		t.Error("x86_64 has socketcall")
	}
}

// Evaluate agrees with the test's own interpreter on every syscall of
// every ABI of the default profile, and answers the engine's question.
func TestEvaluate(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.compile(ArchX86_64, dockerCaps, kernel{6, 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []Arch{ArchX86_64, ArchX86, ArchX32} {
		a := abis[arch]
		for _, e := range a.syscalls {
			for _, arg := range []uint64{0, 8, 40, unix.CLONE_NEWUSER, 1<<32 | 40} {
				act, data, err := f.Evaluate(arch, e.name, arg)
				if err != nil {
					t.Fatal(err)
				}
				got := actionBase[act] | uint32(data)
				if want := run(t, f.Program, call{arch: a.audit, nr: e.nr, args: [6]uint64{arg}}); got != want {
					t.Errorf("%s %s(%#x): Evaluate says %s, the test's interpreter %s", arch, e.name, arg, retString(got), retString(want))
				}
			}
		}
	}
	if act, _, err := f.Evaluate(ArchX86_64, "execve"); act != ActAllow || err != nil {
		t.Errorf("execve: %s, %v", act, err)
	}
	if act, errno, err := f.Evaluate(ArchX86_64, "unshare", unix.CLONE_NEWUSER); act != ActErrno || errno != 1 || err != nil {
		t.Errorf("unshare: %s(%d), %v", act, errno, err)
	}
	if _, _, err := f.Evaluate(ArchX86_64, "socketcall"); err == nil {
		t.Error("x86_64 socketcall evaluated")
	}
	if _, _, err := (&Filter{Program: []unix.SockFilter{{Code: opLd, K: 64}}}).Evaluate(ArchX86_64, "read"); err == nil {
		t.Error("a load past seccomp_data evaluated")
	}
}
