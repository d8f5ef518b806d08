package vmtest

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minictr/minictr/internal/testenv"
)

// helperEnv makes the test binary, re-executed as a child, act as a
// workload instead of running tests (see TestMain).
const helperEnv = "MINICTR_VMTEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "allocate":
		allocate(256 << 20)
		os.Exit(0)
	case "spin":
		spin(500 * time.Millisecond)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// allocate touches n bytes page by page, so they are really charged to the
// cgroup (an untouched allocation is only address space).
func allocate(n int) {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
}

// spin burns CPU for d of wall-clock time.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// skipUnlessV2Root skips unless the test runs as root on a pure v2 host.
func skipUnlessV2Root(t *testing.T) {
	t.Helper()
	testenv.SkipIfNotRoot(t)
	if testenv.CgroupMode() != "v2" {
		t.Skip("needs a pure cgroup v2 host: run scripts/vm.sh test ./internal/vmtest")
	}
}

// newCgroup creates a child of the root cgroup with the given files
// written, and removes it when the test ends.
func newCgroup(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/cgroup", "minictr-vmtest-"+testenv.UniqueID())
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, dir) })
	for name, value := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// removeCgroup kills what is left (cgroup.kill, Linux 5.14) and removes the
// directory once the kernel says it is empty: rmdir fails with EBUSY while
// a dying process is still charged to it.
func removeCgroup(t *testing.T, dir string) {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644); err != nil {
		t.Errorf("killing %s: %v", dir, err)
	}
	var err error
	for range 100 {
		if err = syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("rmdir %s: %v", dir, err)
}

// startIn starts cmd directly inside the cgroup dir with CLONE_INTO_CGROUP:
// the child never runs a single instruction outside its limits.
func startIn(t *testing.T, dir string, cmd *exec.Cmd) {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(&os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer syscall.Close(fd)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v in %s: %v", cmd.Args, dir, err)
	}
}

// helper returns a command that re-executes this test binary as workload.
func helper(workload string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+workload)
	return cmd
}

// keyed reads a flat-keyed cgroup file ("oom_kill 1" per line).
func keyed(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	values := map[string]uint64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		key, value, _ := strings.Cut(s.Text(), " ")
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, s.Text(), err)
		}
		values[key] = n
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return values
}

// single reads a one-number cgroup file (pids.current, memory.peak).
func single(t *testing.T, path string) uint64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

func TestControllersDelegated(t *testing.T) {
	skipUnlessV2Root(t)
	data, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
	if err != nil {
		t.Fatal(err)
	}
	enabled := strings.Fields(string(data))
	for _, want := range []string{"cpu", "memory", "pids", "io"} {
		if !contains(enabled, want) {
			t.Errorf("controller %s not in /sys/fs/cgroup/cgroup.subtree_control (%q)", want, enabled)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestMemoryMaxKillsAndCounts(t *testing.T) {
	skipUnlessV2Root(t)
	// 32 MiB with no swap, for a child that touches 256 MiB.
	dir := newCgroup(t, map[string]string{"memory.max": "33554432", "memory.swap.max": "0"})
	cmd := helper("allocate")
	startIn(t, dir, cmd)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the child survived 256 MiB under memory.max=32M: %v", err)
	}
	if ws := exit.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL (the OOM killer)", ws)
	}
	events := keyed(t, filepath.Join(dir, "memory.events"))
	if events["oom_kill"] != 1 {
		t.Errorf("memory.events oom_kill = %d, want 1 (%v)", events["oom_kill"], events)
	}
	if events["max"] == 0 {
		t.Errorf("memory.events max = 0, want > 0: the limit was never hit (%v)", events)
	}
	// The peak sits at the limit (it may pass it by a page or so: memory
	// is charged first and reclaimed or OOM-killed for after).
	if peak := single(t, filepath.Join(dir, "memory.peak")); peak < 30<<20 || peak > 33<<20 {
		t.Errorf("memory.peak = %d, want about memory.max (32 MiB)", peak)
	}
}

func TestCPUMaxThrottles(t *testing.T) {
	skipUnlessV2Root(t)
	// 10 ms of CPU per 100 ms period: a child that spins for half a second
	// of wall time must be throttled in most periods.
	dir := newCgroup(t, map[string]string{"cpu.max": "10000 100000"})
	cmd := helper("spin")
	start := time.Now()
	startIn(t, dir, cmd)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	stat := keyed(t, filepath.Join(dir, "cpu.stat"))
	if stat["nr_throttled"] == 0 || stat["throttled_usec"] == 0 {
		t.Errorf("cpu.stat shows no throttling under cpu.max 10000 100000: %v", stat)
	}
	// Whatever the machine's speed, the child got at most 10% of one CPU
	// over its lifetime; the slack covers the partial periods at both ends
	// and the scheduler noticing the quota a little late.
	usage := time.Duration(stat["usage_usec"]) * time.Microsecond
	if limit := wall/10 + 30*time.Millisecond; usage > limit {
		t.Errorf("cpu.stat usage_usec = %v in %v of wall time, want at most %v (10%%)", usage, wall, limit)
	}
}

func TestPidsMaxRefusesFork(t *testing.T) {
	skipUnlessV2Root(t)
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	// The shell counts as one; pids.max=3 leaves room for two children.
	// The sleeps do not hold the output pipe, so Wait returns when the
	// shell ends; cgroup.kill in the clean-up ends them.
	dir := newCgroup(t, map[string]string{"pids.max": "3"})
	cmd := exec.Command(testenv.Busybox, "sh", "-c",
		"for i in 1 2 3 4 5; do sleep 30 </dev/null >/dev/null 2>&1 & done; echo started")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	startIn(t, dir, cmd)
	_ = cmd.Wait() // the shell may or may not give up after a failed fork
	if !strings.Contains(out.String(), "can't fork") {
		t.Errorf("busybox sh output %q does not report a refused fork", out.String())
	}
	if events := keyed(t, filepath.Join(dir, "pids.events")); events["max"] == 0 {
		t.Errorf("pids.events max = 0, want > 0 after forks beyond pids.max=3 (%v)", events)
	}
	if current := single(t, filepath.Join(dir, "pids.current")); current > 3 {
		t.Errorf("pids.current = %d above pids.max=3", current)
	}
}
