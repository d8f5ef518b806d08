package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minictr/minictr/pkg/trace"
)

// v2Controllers are the controllers a container's group needs enabled.
var v2Controllers = []string{"memory", "cpu", "pids"}

// v2 is the driver for a pure cgroup v2 host: one directory in the unified
// hierarchy.
type v2 struct {
	root string // the hierarchy's mount point, usually /sys/fs/cgroup; tests use a temporary directory
	dir  string
	fs   cgroupfs
}

func newV2(root, name string, t trace.Tracer) *v2 {
	return &v2{root: root, dir: filepath.Join(root, name), fs: cgroupfs{trace.Or(t)}}
}

func (g *v2) Paths() []string         { return []string{g.dir} }
func (g *v2) exists() error           { _, err := os.Stat(g.dir); return err }
func (g *v2) file(name string) string { return filepath.Join(g.dir, name) }

func (g *v2) create() error {
	if err := g.enableControllers(); err != nil {
		return err
	}
	return g.fs.mkdir(g.dir)
}

// enableControllers makes sure the root's children get the memory, cpu and
// pids files: in v2 a group only has a controller's files when its parent
// lists the controller in cgroup.subtree_control.
func (g *v2) enableControllers() error {
	available, err := readWords(filepath.Join(g.root, "cgroup.controllers"))
	if err != nil {
		return err
	}
	enabled, err := readWords(filepath.Join(g.root, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	var add []string
	for _, c := range v2Controllers {
		if !available[c] {
			return fmt.Errorf("%w: %q is not listed in %s", ErrControllerMissing, c, filepath.Join(g.root, "cgroup.controllers"))
		}
		if !enabled[c] {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		g.fs.note(fmt.Sprintf("%s already enables %s for child groups", filepath.Join(g.root, "cgroup.subtree_control"), strings.Join(v2Controllers, " ")))
		return nil
	}
	g.fs.note("enable controllers for child groups of " + g.root + ": " + strings.Join(add, " "))
	return g.fs.write(g.root, "cgroup.subtree_control", strings.Join(add, " "))
}

func (g *v2) Add(pid int) error {
	return g.fs.write(g.dir, "cgroup.procs", strconv.Itoa(pid))
}

func (g *v2) Set(r Resources) error {
	if err := r.validate(); err != nil {
		return err
	}
	if err := g.setMemory(r.Memory, memorySwap(r.Memory, r.MemorySwap)); err != nil {
		return err
	}
	if r.CPUQuota != 0 || r.CPUPeriod != 0 {
		quota := "max"
		if r.CPUQuota != 0 {
			quota = strconv.FormatInt(r.CPUQuota, 10)
		}
		if err := g.fs.write(g.dir, "cpu.max", fmt.Sprintf("%s %d", quota, cpuPeriod(r.CPUPeriod))); err != nil {
			return err
		}
	}
	if r.CPUShares != 0 {
		if err := g.fs.write(g.dir, "cpu.weight", strconv.FormatInt(sharesToWeight(r.CPUShares), 10)); err != nil {
			return err
		}
	}
	if r.PidsLimit != 0 {
		if err := g.fs.write(g.dir, "pids.max", pidsMax(r.PidsLimit)); err != nil {
			return err
		}
	}
	return g.setDevices(r.Devices)
}

// setMemory writes memory.max and memory.swap.max. v2 limits swap on its
// own, so docker's memory+swap total becomes total - memory.
func (g *v2) setMemory(memory, total int64) error {
	if memory != 0 {
		if err := g.fs.write(g.dir, "memory.max", strconv.FormatInt(memory, 10)); err != nil {
			return err
		}
	}
	if total == 0 {
		return nil
	}
	swapOK, err := exists(g.file("memory.swap.max"))
	if err != nil {
		return err
	}
	if !swapOK {
		g.fs.note("skip memory.swap.max: swap accounting is off on this host, the swap limit is ignored")
		return nil
	}
	return g.fs.write(g.dir, "memory.swap.max", swapOnly(memory, total))
}

func (g *v2) Stats() (Stats, error) {
	var s Stats
	var err error
	read := func(dst *uint64, name string) {
		if err == nil {
			*dst, err = readUint(g.file(name))
		}
	}
	read(&s.MemoryUsage, "memory.current")
	read(&s.MemoryLimit, "memory.max")
	read(&s.Pids, "pids.current")
	read(&s.PidsLimit, "pids.max")
	if ok, _ := exists(g.file("memory.peak")); ok { // Linux 5.19 and later
		read(&s.MemoryPeak, "memory.peak")
	}
	if err != nil {
		return Stats{}, err
	}
	cs, err := readKeyed(g.file("cpu.stat"))
	if err != nil {
		return Stats{}, err
	}
	s.CPUUsage = time.Duration(cs["usage_usec"]) * time.Microsecond
	s.NrPeriods, s.NrThrottled = cs["nr_periods"], cs["nr_throttled"]
	s.ThrottledTime = time.Duration(cs["throttled_usec"]) * time.Microsecond
	events, err := readKeyed(g.file("memory.events"))
	if err != nil {
		return Stats{}, err
	}
	s.OOMKills = events["oom_kill"]
	return s, nil
}

func (g *v2) OOMKilled() (bool, error) {
	events, err := readKeyed(g.file("memory.events"))
	if err != nil {
		return false, err
	}
	return events["oom_kill"] > 0, nil
}

func (g *v2) Procs() ([]int, error) { return readPids(g.file("cgroup.procs")) }

func (g *v2) Destroy() error { return g.fs.remove(g.dir, g.kill) }

// kill ends every process in the group: with one write to cgroup.kill
// (Linux 5.14 and later), which also catches processes forked meanwhile,
// or else one SIGKILL per PID.
func (g *v2) kill(dir string) (int, error) {
	ok, err := exists(filepath.Join(dir, "cgroup.kill"))
	if err != nil || !ok {
		return g.fs.killProcs(dir)
	}
	pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
	if err != nil || len(pids) == 0 {
		return 0, err
	}
	return len(pids), g.fs.write(dir, "cgroup.kill", "1")
}

// readWords reads a space-separated list such as cgroup.controllers.
func readWords(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, w := range strings.Fields(string(data)) {
		out[w] = true
	}
	return out, nil
}
