package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

// The test binary plays the container's init: it re-executes itself as a
// child that installs a real filter (never in the test process itself,
// which would stay filtered) and then tries syscalls.
func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{
		"seccomp-try":     tryChild,
		"seccomp-no-nnp":  noNNPChild,
		"seccomp-measure": measureChild,
	})
}

// tryChild installs the default profile (SECCOMP_TEST_FILTER=default) or
// nothing (=none, the positive control), as an init would: after
// no_new_privs, with docker's capabilities in mind. It then prints, as a
// JSON object, what each attempt gave: "ok" or the errno's name.
func tryChild() int {
	runtime.LockOSThread()
	// A thread that exists before Install: TSYNC must filter it too.
	ask, answer := make(chan bool), make(chan string)
	go func() {
		runtime.LockOSThread()
		for range ask {
			_, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, false)
			answer <- result(err)
		}
	}()
	ask <- true
	<-answer

	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "prctl:", err)
		return 1
	}
	if os.Getenv("SECCOMP_TEST_FILTER") == "default" {
		p, err := Default()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		f, err := p.Compile(Native, dockerCaps)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := Install(f, nil); err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			return 1
		}
	}

	got := map[string]string{}
	got["status.Seccomp"] = statusField("Seccomp")
	_, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, false)
	got["keyctl"] = result(err)
	ask <- true
	got["keyctl on an older thread"] = <-answer
	_, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, 0x40000, 0, 0) // ADDR_NO_RANDOMIZE
	got["personality(ADDR_NO_RANDOMIZE)"] = result(errnoOrNil(e))
	_, _, e = unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	got["personality query"] = result(errnoOrNil(e))
	_, _, e = unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
	got["clone3"] = result(errnoOrNil(e))
	fd, err := unix.Socket(40, unix.SOCK_STREAM, 0) // AF_VSOCK
	if err == nil {
		unix.Close(fd)
	}
	got["socket(AF_VSOCK)"] = result(err)
	// The kernel reads the family as an int and drops the high half.
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, 1<<32|40, unix.SOCK_STREAM, 0)
	if e == 0 {
		unix.Close(int(r))
	}
	got["socket(1<<32 | AF_VSOCK)"] = result(errnoOrNil(e))
	got["getpid"] = result(errnoOrNil(func() syscall.Errno { _, _, e := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0); return e }()))
	got["exec /bin/true"] = result(exec.Command("/bin/true").Run())

	// unshare(CLONE_NEWUSER) needs a single-threaded caller: util-linux's
	// unshare program is one, and inherits the filter across execve.
	unshare := exec.Command("unshare", "--user", "true")
	unshare.Env = append(os.Environ(), "LC_ALL=C") // an untranslated message
	out, err := unshare.CombinedOutput()
	got["unshare(CLONE_NEWUSER)"] = "ok"
	if err != nil {
		got["unshare(CLONE_NEWUSER)"] = strings.TrimSpace(string(out))
	}
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
	got["clone(CLONE_NEWUSER)"] = result(cmd.Run())

	// New threads: the Go runtime clones one for each goroutine locked to
	// a thread while the others still hold theirs.
	const locked = 32
	ready, release := make(chan bool), make(chan bool)
	for range locked {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			ready <- true
			<-release
		}()
	}
	for range locked {
		<-ready
	}
	threads, _ := strconv.Atoi(statusField("Threads"))
	close(release)
	got["new threads"] = "ok"
	if threads < locked+2 { // + this thread + the older one
		got["new threads"] = fmt.Sprintf("%d threads for %d locked goroutines", threads, locked)
	}
	close(ask)
	if err := json.NewEncoder(os.Stdout).Encode(got); err != nil {
		return 1
	}
	return 0
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// result is "ok" or the name of the errno behind err ("EPERM").
func result(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

func statusField(name string) string {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func runChild(t testing.TB, role string, env ...string) string {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{role}
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", role, err, stderr.String())
	}
	return string(out)
}

func try(t *testing.T, filter string) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := json.Unmarshal([]byte(runChild(t, "seccomp-try", "SECCOMP_TEST_FILTER="+filter)), &got); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %v", filter, got)
	return got
}

// The wall and its positive control: the same attempts without a filter
// (what works there must be what the filter stops) and with the default
// profile installed as the init will install it.
func TestInstallDefaultProfile(t *testing.T) {
	if Native != ArchX86_64 {
		t.Skipf("syscall numbers below are x86_64's; this is %s", runtime.GOARCH)
	}
	open, walled := try(t, "none"), try(t, "default")

	// The control: without a filter the attempts get through.
	for _, name := range []string{"keyctl", "keyctl on an older thread", "personality(ADDR_NO_RANDOMIZE)", "personality query",
		"getpid", "exec /bin/true", "new threads"} {
		if open[name] != "ok" {
			t.Errorf("without a filter, %s: %s, want ok", name, open[name])
		}
	}
	if open["status.Seccomp"] != "0" || open["clone3"] != "EINVAL" {
		t.Errorf("without a filter: Seccomp %q, clone3 %s; want 0, EINVAL", open["status.Seccomp"], open["clone3"])
	}
	// AF_VSOCK exists only where the kernel has vsock (a VM's guest).
	if open["socket(AF_VSOCK)"] != open["socket(1<<32 | AF_VSOCK)"] || open["socket(AF_VSOCK)"] == "EPERM" {
		t.Errorf("without a filter: socket(AF_VSOCK) %s, with high bits %s; want the same, not EPERM",
			open["socket(AF_VSOCK)"], open["socket(1<<32 | AF_VSOCK)"])
	}
	userns := open["unshare(CLONE_NEWUSER)"] == "ok" && open["clone(CLONE_NEWUSER)"] == "ok"
	if !userns && testenv.IsRoot() {
		t.Errorf("as root without a filter, user namespaces fail: unshare %q, clone %q",
			open["unshare(CLONE_NEWUSER)"], open["clone(CLONE_NEWUSER)"])
	}

	// The wall.
	for name, want := range map[string]string{
		"status.Seccomp":                 "2", // SECCOMP_MODE_FILTER
		"keyctl":                         "EPERM",
		"keyctl on an older thread":      "EPERM",
		"personality(ADDR_NO_RANDOMIZE)": "EPERM",
		"personality query":              "ok",
		"clone3":                         "ENOSYS",
		"socket(AF_VSOCK)":               "EPERM",
		"socket(1<<32 | AF_VSOCK)":       "EPERM",
		"getpid":                         "ok",
		"exec /bin/true":                 "ok",
		"new threads":                    "ok",
		"clone(CLONE_NEWUSER)":           "EPERM",
		"unshare(CLONE_NEWUSER)":         "unshare: unshare failed: Operation not permitted",
	} {
		if !userns && strings.Contains(name, "CLONE_NEWUSER") {
			t.Logf("skipping %s: user namespaces fail here even without a filter", name)
			continue
		}
		if walled[name] != want {
			t.Errorf("with the default profile, %s: %s, want %s", name, walled[name], want)
		}
	}
}

// noNNPChild installs an allow-everything filter without no_new_privs.
func noNNPChild() int {
	p, err := Parse([]byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`))
	if err != nil {
		fmt.Println(err)
		return 0
	}
	f, err := p.Compile(Native, nil)
	if err != nil {
		fmt.Println(err)
		return 0
	}
	err = Install(f, nil)
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		fmt.Printf("%s: %s", sys.Syscall, unix.ErrnoName(sys.Err.(syscall.Errno)))
		return 0
	}
	fmt.Print(result(err))
	return 0
}

// Without no_new_privs only CAP_SYS_ADMIN may install a filter; the
// refusal is an os.SyscallError naming seccomp(2).
func TestInstallNeedsNoNewPrivs(t *testing.T) {
	got := runChild(t, "seccomp-no-nnp")
	want := "seccomp SECCOMP_SET_MODE_FILTER: EACCES"
	if testenv.IsRoot() {
		want = "ok"
	}
	if got != want {
		t.Errorf("Install without no_new_privs: %q, want %q", got, want)
	}
}

func TestInstallRefusesEmpty(t *testing.T) {
	for _, f := range []*Filter{nil, {}} {
		if err := Install(f, nil); err == nil {
			t.Errorf("Install(%v) succeeded", f)
		}
	}
}

// measureChild times what an init would do in a fresh process: parse and
// compile the default profile, then install it. It prints nanoseconds of
// wall time and of this thread's CPU time for each (CPU time holds still
// when other processes load the machine), and the program's length.
func measureChild() int {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 1
	}
	wall0, cpu0 := time.Now(), threadCPU()
	p, err := Default()
	if err != nil {
		return 1
	}
	f, err := p.Compile(Native, dockerCaps)
	if err != nil {
		return 1
	}
	wall1, cpu1 := time.Now(), threadCPU()
	if err := Install(f, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	wall2, cpu2 := time.Now(), threadCPU()
	fmt.Println(wall1.Sub(wall0).Nanoseconds(), cpu1-cpu0, wall2.Sub(wall1).Nanoseconds(), cpu2-cpu1, len(f.Program))
	return 0
}

func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// BenchmarkStartCost is the filter's share of a container start, measured
// in a fresh process each time (a process can install a filter only on
// top of its own: never in this one). Its metrics are what an init pays.
func BenchmarkStartCost(b *testing.B) {
	var sum [4]float64
	var insns float64
	for b.Loop() {
		var m [4]float64
		if _, err := fmt.Sscan(runChild(b, "seccomp-measure"), &m[0], &m[1], &m[2], &m[3], &insns); err != nil {
			b.Fatal(err)
		}
		for i := range m {
			sum[i] += m[i]
		}
	}
	for i, unit := range []string{"compile-µs", "compile-cpu-µs", "install-µs", "install-cpu-µs"} {
		b.ReportMetric(sum[i]/float64(b.N)/1e3, unit)
	}
	b.ReportMetric(insns, "instructions")
}

// BenchmarkCompileDefault is parse and compile of the default profile in a
// warm process.
func BenchmarkCompileDefault(b *testing.B) {
	var n int
	for b.Loop() {
		p, err := Default()
		if err != nil {
			b.Fatal(err)
		}
		f, err := p.Compile(Native, dockerCaps)
		if err != nil {
			b.Fatal(err)
		}
		n = len(f.Program)
	}
	b.ReportMetric(float64(n), "instructions")
}
