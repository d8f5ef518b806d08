package cgroups

// These tests point the drivers at a fake cgroupfs in a temporary
// directory, so that the v2 driver's file handling is checked on any host
// and as any user. A fake cannot enforce anything: the kernel's behaviour
// is proved by the root tests in cgroups_test.go.

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minictr/minictr/pkg/trace"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func shells(rec *trace.Recorder) string {
	var b strings.Builder
	for _, s := range rec.Steps {
		if s.Shell != "" {
			b.WriteString(s.Shell + "\n")
		}
	}
	return b.String()
}

// emptyDir removes the fake's files, as the kernel would when a group goes.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFakeV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":     "cpuset cpu io memory hugetlb pids rdma misc\n",
		"cgroup.subtree_control": "cpu\n",
	})
	rec := &trace.Recorder{}
	g := newV2(root, "minictr-fake", rec)
	if err := g.create(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(root, "cgroup.subtree_control")); got != "+memory +pids" {
		t.Errorf("cgroup.subtree_control = %q, want the two missing controllers enabled", got)
	}
	// What the kernel would put in the new group.
	writeFiles(t, g.dir, map[string]string{
		"memory.max": "max\n", "memory.swap.max": "max\n", "cpu.max": "max 100000\n",
		"cpu.weight": "100\n", "pids.max": "max\n", "cgroup.procs": "",
	})
	err := g.Set(Resources{Memory: 64 << 20, CPUQuota: 50000, CPUShares: 1024, PidsLimit: 20})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory.max":      "67108864",
		"memory.swap.max": "67108864", // docker's default total 2x memory = as much swap as memory
		"cpu.max":         "50000 100000",
		"cpu.weight":      "39",
		"pids.max":        "20",
	} {
		if got := readFile(t, filepath.Join(g.dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	wantShell := "echo \"+memory +pids\" > " + root + "/cgroup.subtree_control\n" +
		"mkdir " + g.dir + "\n" +
		"echo 67108864 > " + g.dir + "/memory.max\n" +
		"echo 67108864 > " + g.dir + "/memory.swap.max\n" +
		"echo \"50000 100000\" > " + g.dir + "/cpu.max\n" +
		"echo 39 > " + g.dir + "/cpu.weight\n" +
		"echo 20 > " + g.dir + "/pids.max\n"
	if got := shells(rec); got != wantShell {
		t.Errorf("traced shell:\n%s\nwant:\n%s", got, wantShell)
	}

	// Destroy on an emptied group: rmdir, and nothing the second time.
	emptyDir(t, g.dir)
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after Destroy", g.dir)
	}
	n := len(rec.Steps)
	if err := g.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if len(rec.Steps) != n {
		t.Errorf("second Destroy did something: %v", rec.Steps[n:])
	}
	if last := rec.Steps[n-1]; last.Shell != "rmdir "+g.dir {
		t.Errorf("last step %q, want rmdir", last.Shell)
	}
}

func TestFakeV2Stats(t *testing.T) {
	g := newV2(t.TempDir(), "minictr-fake", nil)
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, g.dir, map[string]string{
		"memory.current": "1048576\n",
		"memory.peak":    "33554432\n",
		"memory.max":     "33554432\n",
		"memory.events":  "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
		"cpu.stat": "usage_usec 250000\nuser_usec 200000\nsystem_usec 50000\n" +
			"nr_periods 10\nnr_throttled 9\nthrottled_usec 800000\nnr_bursts 0\nburst_usec 0\n",
		"pids.current": "3\n",
		"pids.max":     "max\n",
	})
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		MemoryUsage: 1 << 20, MemoryPeak: 32 << 20, MemoryLimit: 32 << 20,
		CPUUsage: 250 * time.Millisecond, NrPeriods: 10, NrThrottled: 9,
		ThrottledTime: 800 * time.Millisecond, Pids: 3, PidsLimit: 0, OOMKills: 1,
	}
	if s != want {
		t.Errorf("Stats() = %+v\nwant      %+v", s, want)
	}
	if oom, err := g.OOMKilled(); !oom || err != nil {
		t.Errorf("OOMKilled() = %v, %v; want true", oom, err)
	}
}

func TestFakeV2MissingPieces(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":     "cpu io memory\n", // no pids
		"cgroup.subtree_control": "",
	})
	if err := newV2(root, "minictr-fake", nil).create(); !errors.Is(err, ErrControllerMissing) {
		t.Errorf("create without pids: %v, want ErrControllerMissing", err)
	}

	// Swap accounting off: no memory.swap.max, the swap limit is skipped
	// and said so.
	rec := &trace.Recorder{}
	g := newV2(root, "minictr-fake", rec)
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, g.dir, map[string]string{"memory.max": "max\n"})
	if err := g.Set(Resources{Memory: 64 << 20, MemorySwap: 128 << 20}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Steps[len(rec.Steps)-1].Action, "swap accounting is off") {
		t.Errorf("no note about swap: %v", rec.Steps)
	}

	// A controller's file missing: the error names it.
	err := g.Set(Resources{PidsLimit: 5})
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != filepath.Join(g.dir, "pids.max") {
		t.Errorf("Set pids without pids.max: %v, want a PathError naming the file", err)
	}
}

func TestFakeV1(t *testing.T) {
	base := t.TempDir()
	mounts := map[string]string{}
	for _, c := range []string{"memory", "cpu", "pids"} {
		mounts[c] = filepath.Join(base, c)
	}
	mounts["cpuacct"] = mounts["cpu"] // mounted together as cpu,cpuacct
	for _, d := range mounts {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rec := &trace.Recorder{}
	g, err := newV1(mounts, nil, "minictr-fake", rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Paths()) != 3 {
		t.Errorf("Paths() = %v, want cpu and cpuacct as one directory", g.Paths())
	}
	if err := g.create(); err != nil {
		t.Fatal(err)
	}
	const unlimited = "9223372036854771712\n"
	writeFiles(t, g.dirs["memory"], map[string]string{
		"memory.limit_in_bytes": unlimited, "memory.memsw.limit_in_bytes": unlimited,
		"memory.usage_in_bytes": "4096\n", "memory.max_usage_in_bytes": "8192\n",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
	})
	writeFiles(t, g.dirs["cpu"], map[string]string{
		"cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n", "cpu.shares": "1024\n",
		"cpu.stat":      "nr_periods 4\nnr_throttled 2\nthrottled_time 5000000\n",
		"cpuacct.usage": "1500000\n",
	})
	writeFiles(t, g.dirs["pids"], map[string]string{"pids.max": "max\n", "pids.current": "1\n"})

	err = g.Set(Resources{Memory: 64 << 20, CPUQuota: 150000, CPUPeriod: 100000, CPUShares: 512, PidsLimit: 30})
	if err != nil {
		t.Fatal(err)
	}
	mem, cpu := g.dirs["memory"], g.dirs["cpu"]
	wantShell := "mkdir " + mem + "\nmkdir " + cpu + "\nmkdir " + g.dirs["pids"] + "\n" +
		"echo 67108864 > " + mem + "/memory.limit_in_bytes\n" + // shrinking: memory first
		"echo 134217728 > " + mem + "/memory.memsw.limit_in_bytes\n" +
		"echo 100000 > " + cpu + "/cpu.cfs_period_us\n" +
		"echo 150000 > " + cpu + "/cpu.cfs_quota_us\n" +
		"echo 512 > " + cpu + "/cpu.shares\n" +
		"echo 30 > " + g.dirs["pids"] + "/pids.max\n"
	if got := shells(rec); got != wantShell {
		t.Errorf("traced shell:\n%s\nwant:\n%s", got, wantShell)
	}

	// Growing the limit: memsw must go first, or the kernel refuses.
	rec.Steps = nil
	if err := g.Set(Resources{Memory: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	wantShell = "echo 536870912 > " + mem + "/memory.memsw.limit_in_bytes\n" +
		"echo 268435456 > " + mem + "/memory.limit_in_bytes\n"
	if got := shells(rec); got != wantShell {
		t.Errorf("growing: traced shell:\n%s\nwant:\n%s", got, wantShell)
	}

	writeFiles(t, mem, map[string]string{"memory.limit_in_bytes": unlimited})
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{MemoryUsage: 4096, MemoryPeak: 8192, MemoryLimit: 0, CPUUsage: 1500 * time.Microsecond,
		NrPeriods: 4, NrThrottled: 2, ThrottledTime: 5 * time.Millisecond, Pids: 1, PidsLimit: 30}
	if s != want {
		t.Errorf("Stats() = %+v\nwant      %+v", s, want)
	}

	// Swap accounting off.
	if err := os.Remove(filepath.Join(mem, "memory.memsw.limit_in_bytes")); err != nil {
		t.Fatal(err)
	}
	rec.Steps = nil
	if err := g.Set(Resources{Memory: 32 << 20, MemorySwap: 64 << 20}); err != nil {
		t.Fatalf("swap accounting off must not be an error: %v", err)
	}
	if got := shells(rec); got != "echo 33554432 > "+mem+"/memory.limit_in_bytes\n" ||
		!strings.Contains(rec.Steps[0].Action, "swap accounting is off") {
		t.Errorf("swap off: steps %+v", rec.Steps)
	}
}

// TestFakeV1WithoutCpuacct: a v1 host that does not mount cpuacct still
// gets its limits; Stats reports the rest and no CPU usage.
func TestFakeV1WithoutCpuacct(t *testing.T) {
	base := t.TempDir()
	mounts := map[string]string{}
	for _, c := range []string{"memory", "cpu", "pids"} {
		mounts[c] = filepath.Join(base, c)
		if err := os.Mkdir(mounts[c], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	g, err := newV1(mounts, nil, "minictr-fake", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.create(); err != nil {
		t.Fatal(err)
	}
	if len(g.Paths()) != 3 {
		t.Errorf("Paths() = %q, want memory, cpu and pids only", g.Paths())
	}
	writeFiles(t, g.dirs["memory"], map[string]string{
		"memory.limit_in_bytes": "33554432\n", "memory.usage_in_bytes": "4096\n",
		"memory.max_usage_in_bytes": "8192\n", "memory.oom_control": "oom_kill 0\n",
	})
	writeFiles(t, g.dirs["cpu"], map[string]string{"cpu.stat": "nr_periods 4\nnr_throttled 2\nthrottled_time 5000000\n"})
	writeFiles(t, g.dirs["pids"], map[string]string{"pids.max": "max\n", "pids.current": "1\n"})
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{MemoryUsage: 4096, MemoryPeak: 8192, MemoryLimit: 32 << 20,
		NrPeriods: 4, NrThrottled: 2, ThrottledTime: 5 * time.Millisecond, Pids: 1}
	if s != want {
		t.Errorf("Stats() = %+v\nwant      %+v", s, want)
	}
}

// TestFakeV1EveryHierarchy: the group goes in every hierarchy, the
// controller-less ones included, and Destroy removes it from all.
func TestFakeV1EveryHierarchy(t *testing.T) {
	base := t.TempDir()
	mounts := map[string]string{}
	for _, c := range []string{"memory", "cpu", "pids", "freezer", "devices", "net_cls"} {
		mounts[c] = filepath.Join(base, c)
	}
	mounts["cpuacct"] = mounts["cpu"]
	mounts["net_prio"] = mounts["net_cls"]
	others := []string{filepath.Join(base, "systemd"), filepath.Join(base, "unified")}
	for _, d := range append(slices.Collect(maps.Values(mounts)), others...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	g, err := newV1(mounts, others, "minictr-fake", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"memory", "cpu", "pids", "devices", "freezer", "net_cls", "systemd", "unified"}
	for i := range want {
		want[i] = filepath.Join(base, want[i], "minictr-fake")
	}
	if !slices.Equal(g.Paths(), want) {
		t.Errorf("Paths() = %q\nwant %q", g.Paths(), want)
	}
	if err := g.create(); err != nil {
		t.Fatal(err)
	}
	for _, d := range want {
		writeFiles(t, d, map[string]string{"cgroup.procs": ""})
	}
	if err := g.Add(42); err != nil {
		t.Fatal(err)
	}
	for _, d := range want {
		if got := readFile(t, filepath.Join(d, "cgroup.procs")); got != "42" {
			t.Errorf("%s/cgroup.procs = %q, want 42", d, got)
		}
		emptyDir(t, d)
	}
	if err := g.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, d := range want {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after Destroy: %v", d, err)
		}
	}
}

// TestFakeInheritCpuset: a new cpuset group gets its parent's CPUs and
// memory nodes, unless the kernel copied them (cgroup.clone_children).
func TestFakeInheritCpuset(t *testing.T) {
	parent := t.TempDir()
	writeFiles(t, parent, map[string]string{"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n"})
	rec := &trace.Recorder{}
	g := &v1{fs: cgroupfs{rec}}
	for _, tc := range []struct{ name, cpus, mems, wantCpus, wantMems string }{
		{"empty", "\n", "\n", "0-3", "0"},
		{"cloned", "1\n", "0\n", "1\n", "0\n"},
	} {
		dir := filepath.Join(parent, tc.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFiles(t, dir, map[string]string{"cpuset.cpus": tc.cpus, "cpuset.mems": tc.mems})
		if err := g.inheritCpuset(dir); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(dir, "cpuset.cpus")); got != tc.wantCpus {
			t.Errorf("%s: cpuset.cpus = %q, want %q", tc.name, got, tc.wantCpus)
		}
		if got := readFile(t, filepath.Join(dir, "cpuset.mems")); got != tc.wantMems {
			t.Errorf("%s: cpuset.mems = %q, want %q", tc.name, got, tc.wantMems)
		}
	}
	want := "echo 0-3 > " + parent + "/empty/cpuset.cpus\necho 0 > " + parent + "/empty/cpuset.mems\n"
	if got := shells(rec); got != want {
		t.Errorf("traced:\n%s\nwant:\n%s", got, want)
	}
}
