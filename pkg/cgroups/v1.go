package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minictr/minictr/pkg/trace"
)

// v1Controllers are the hierarchies a container must join on a v1 host:
// the limits' and cpuacct (CPU usage) where it is mounted. It joins every
// other mounted hierarchy as well.
var v1Controllers = []string{"memory", "cpu", "cpuacct", "pids"}

// v1 is the driver for cgroup v1 and hybrid hosts: one directory per
// hierarchy.
//
// The container gets a directory in every hierarchy the host mounts, not
// just in those of its limits. A process sits in exactly one cgroup of
// each hierarchy, and the container's cgroup namespace, made once the init
// has joined, takes those cgroups as its roots: in a hierarchy it did not
// join, its root would be the engine's cgroup, and a container that mounts
// that hierarchy (freezer, cpuset, devices, or systemd's) would see and
// change the host's groups above its own.
type v1 struct {
	dirs   map[string]string // controller -> this cgroup's directory
	others []string          // directories in hierarchies of no controller: name=systemd, a hybrid's unified one
	fs     cgroupfs
}

// newV1 places the cgroup name under the mount point of each controller
// and of each controller-less hierarchy. Tests pass mount points in a
// temporary directory.
func newV1(mountPoints map[string]string, controllerless []string, name string, t trace.Tracer) (*v1, error) {
	dirs := map[string]string{}
	for _, c := range v1Controllers {
		if mountPoints[c] == "" && c != "cpuacct" { // without cpuacct, Stats reports no CPU usage
			return nil, fmt.Errorf("%w: v1 %s hierarchy is not mounted", ErrControllerMissing, c)
		}
	}
	for c, root := range mountPoints {
		if root != "" {
			dirs[c] = filepath.Join(root, name)
		}
	}
	var others []string
	for _, root := range controllerless {
		others = append(others, filepath.Join(root, name))
	}
	return &v1{dirs: dirs, others: others, fs: cgroupfs{trace.Or(t)}}, nil
}

// Paths lists the directories once each (cpu and cpuacct share one when
// they are mounted together as "cpu,cpuacct"): the limits' hierarchies
// first, then the other controllers' by name, then the controller-less.
func (g *v1) Paths() []string {
	rest := make([]string, 0, len(g.dirs))
	for c := range g.dirs {
		if !slices.Contains(v1Controllers, c) {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	var out []string
	seen := map[string]bool{}
	for _, c := range slices.Concat(v1Controllers, rest) {
		if d := g.dirs[c]; d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, d := range g.others {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// create makes the directories. When one fails (it exists already, say),
// it removes those it made and leaves any other alone: an existing group
// belongs to someone else.
func (g *v1) create() error {
	var made []string
	undo := func(err error) error {
		for _, m := range made {
			err = errors.Join(err, g.fs.remove(m, noKill))
		}
		return err
	}
	for _, d := range g.Paths() {
		if err := g.fs.mkdir(d); err != nil {
			return undo(err)
		}
		made = append(made, d)
		if d == g.dirs["cpuset"] {
			if err := g.inheritCpuset(d); err != nil {
				return undo(err)
			}
		}
	}
	return nil
}

// inheritCpuset gives a new cpuset group its parent's CPUs and memory
// nodes. The kernel leaves both empty (unless the parent's
// cgroup.clone_children is 1), and a group with no CPU takes no task:
// writing a PID to it fails with ENOSPC.
func (g *v1) inheritCpuset(dir string) error {
	for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
		own, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(own)) != "" {
			continue // clone_children did it
		}
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), file))
		if err != nil {
			return err
		}
		if err := g.fs.write(dir, file, strings.TrimSpace(string(parent))); err != nil {
			return err
		}
	}
	return nil
}

func (g *v1) exists() error {
	for _, d := range g.Paths() {
		if ok, err := exists(d); ok || err != nil {
			return err
		}
	}
	return &os.PathError{Op: "stat", Path: g.dirs["memory"], Err: fs.ErrNotExist}
}

// Add writes pid to every hierarchy's cgroup.procs: in v1 a process is a
// member of each hierarchy separately.
func (g *v1) Add(pid int) error {
	for _, d := range g.Paths() {
		if err := g.fs.write(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func (g *v1) Set(r Resources) error {
	if err := r.validate(); err != nil {
		return err
	}
	if err := g.setMemory(r.Memory, memorySwap(r.Memory, r.MemorySwap)); err != nil {
		return err
	}
	if err := g.setCPU(r); err != nil {
		return err
	}
	if r.PidsLimit != 0 {
		if err := g.fs.write(g.dirs["pids"], "pids.max", pidsMax(r.PidsLimit)); err != nil {
			return err
		}
	}
	return g.setDevices(r.Devices)
}

// setMemory writes memory.limit_in_bytes and memory.memsw.limit_in_bytes.
// The kernel insists that memsw >= limit at every moment, so when the
// limit grows memsw is written first, and when it shrinks, last.
func (g *v1) setMemory(memory, total int64) error {
	dir := g.dirs["memory"]
	if memory == 0 && total == 0 {
		return nil
	}
	swapOK, err := exists(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
	if err != nil {
		return err
	}
	if !swapOK {
		g.fs.note("skip memory.memsw.limit_in_bytes: swap accounting is off on this host, the swap limit is ignored")
		total = 0
	}
	writeMem := func() error {
		if memory == 0 {
			return nil
		}
		return g.fs.write(dir, "memory.limit_in_bytes", strconv.FormatInt(memory, 10))
	}
	writeSwap := func() error {
		if total == 0 {
			return nil
		}
		return g.fs.write(dir, "memory.memsw.limit_in_bytes", strconv.FormatInt(total, 10))
	}
	current, err := readUint(filepath.Join(dir, "memory.limit_in_bytes"))
	if err != nil {
		return err
	}
	first, second := writeMem, writeSwap
	if total == -1 || memory > int64(min(current, 1<<62)) {
		first, second = writeSwap, writeMem
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

func (g *v1) setCPU(r Resources) error {
	dir := g.dirs["cpu"]
	// The period first: the quota is checked against it.
	if r.CPUPeriod != 0 || r.CPUQuota != 0 {
		if err := g.fs.write(dir, "cpu.cfs_period_us", strconv.FormatInt(cpuPeriod(r.CPUPeriod), 10)); err != nil {
			return err
		}
	}
	if r.CPUQuota != 0 {
		if err := g.fs.write(dir, "cpu.cfs_quota_us", strconv.FormatInt(r.CPUQuota, 10)); err != nil {
			return err
		}
	}
	if r.CPUShares != 0 {
		return g.fs.write(dir, "cpu.shares", strconv.FormatInt(r.CPUShares, 10))
	}
	return nil
}

func (g *v1) Stats() (Stats, error) {
	var s Stats
	mem, cpu, pids := g.dirs["memory"], g.dirs["cpu"], g.dirs["pids"]
	var err error
	read := func(dst *uint64, path string) {
		if err == nil {
			*dst, err = readUint(path)
		}
	}
	read(&s.MemoryUsage, filepath.Join(mem, "memory.usage_in_bytes"))
	read(&s.MemoryPeak, filepath.Join(mem, "memory.max_usage_in_bytes"))
	read(&s.MemoryLimit, filepath.Join(mem, "memory.limit_in_bytes"))
	read(&s.Pids, filepath.Join(pids, "pids.current"))
	read(&s.PidsLimit, filepath.Join(pids, "pids.max"))
	var usage uint64
	if acct := g.dirs["cpuacct"]; acct != "" {
		read(&usage, filepath.Join(acct, "cpuacct.usage"))
	}
	if err != nil {
		return Stats{}, err
	}
	s.MemoryLimit = unlimitedAsZero(s.MemoryLimit)
	s.CPUUsage = time.Duration(usage) // nanoseconds
	cs, err := readKeyed(filepath.Join(cpu, "cpu.stat"))
	if err != nil {
		return Stats{}, err
	}
	s.NrPeriods, s.NrThrottled = cs["nr_periods"], cs["nr_throttled"]
	s.ThrottledTime = time.Duration(cs["throttled_time"]) // nanoseconds
	oom, err := readKeyed(filepath.Join(mem, "memory.oom_control"))
	if err != nil {
		return Stats{}, err
	}
	s.OOMKills = oom["oom_kill"] // kernel 4.13 and later
	return s, nil
}

func (g *v1) OOMKilled() (bool, error) {
	oom, err := readKeyed(filepath.Join(g.dirs["memory"], "memory.oom_control"))
	if err != nil {
		return false, err
	}
	return oom["oom_kill"] > 0, nil
}

// Procs lists the processes of the memory hierarchy; Add puts every
// process in all hierarchies at once.
func (g *v1) Procs() ([]int, error) {
	return readPids(filepath.Join(g.dirs["memory"], "cgroup.procs"))
}

// Destroy kills what is left in each hierarchy and removes the
// directories. v1 has no cgroup.kill, so a process that forks while being
// killed is caught by the next round.
func (g *v1) Destroy() error {
	var errs []error
	for _, d := range g.Paths() {
		errs = append(errs, g.fs.remove(d, g.fs.killProcs))
	}
	return errors.Join(errs...)
}

// unlimitedAsZero maps v1's "no limit" (the largest page-aligned number,
// 9223372036854771712 on 64-bit) to 0.
func unlimitedAsZero(n uint64) uint64 {
	if n >= 1<<62 {
		return 0
	}
	return n
}

func cpuPeriod(p int64) int64 {
	if p == 0 {
		return defaultCPUPeriod
	}
	return p
}

// pidsMax is the pids.max value: "max" for no limit, in v1 and v2 alike.
func pidsMax(limit int64) string {
	if limit < 0 {
		return "max"
	}
	return strconv.FormatInt(limit, 10)
}
