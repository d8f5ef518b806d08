package cgroups

import (
	"fmt"
	"path"
	"strings"

	"github.com/minictr/minictr/internal/procfs"
)

// HostDir is where hosts mount their cgroup file systems.
const HostDir = "/sys/fs/cgroup"

// A Layout is where a host mounts its cgroup hierarchies. The engine reads
// it once per command with [DetectLayout] and hands the same value to [New]
// and [Load], and its [Layout.Visible] hierarchies, as plain data, to the
// container's init, which mounts them for the container: one answer to
// "v1 or v2?" for every stage.
type Layout struct {
	// Unified is the v2 hierarchy's mount point, "" when none is mounted.
	Unified string
	// Controllers maps each v1 controller ("memory", "cpu", ...) to the
	// mount point of its hierarchy; several share one when they are
	// mounted together ("cpu,cpuacct").
	Controllers map[string]string
	// Hierarchies are the cgroup file systems mounted at HostDir or
	// directly under it, in mount order.
	Hierarchies []Hierarchy
}

// A Hierarchy is one cgroup file system mounted at or under HostDir.
type Hierarchy struct {
	Point string // the mount point: "/sys/fs/cgroup/memory", or HostDir itself on a pure v2 host
	Type  string // "cgroup" (v1) or "cgroup2"
	Root  string // the directory of the hierarchy the mount shows: "/" unless it shows a subtree
	// Controllers name a v1 hierarchy as mount(8) wants them: its
	// controllers and name, "cpu,cpuacct" or "name=systemd". "" for v2.
	Controllers string
}

// A Mode says which driver a layout calls for.
type Mode string

const (
	ModeV1     Mode = "v1"     // memory, cpu and pids in v1 hierarchies, no v2 mount (CentOS 7, Debian 9)
	ModeHybrid Mode = "hybrid" // the same, beside a v2 mount that holds none of them (systemd's hybrid)
	ModeV2     Mode = "v2"     // memory, cpu and pids in the unified hierarchy
)

// DetectLayout reads the host's layout from /proc/self/mountinfo.
func DetectLayout() (*Layout, error) {
	ms, err := procfs.Mounts()
	if err != nil {
		return nil, fmt.Errorf("reading the cgroup layout: %w", err)
	}
	return LayoutOf(ms), nil
}

// LayoutOf picks the cgroup mounts out of a mount table. A v1 mount names
// its controllers in the super options, several when they share one
// hierarchy ("rw,cpu,cpuacct"). The first mount of each wins, as bind
// mounts of the same hierarchy come later.
func LayoutOf(ms []procfs.Mount) *Layout {
	l := &Layout{Controllers: map[string]string{}}
	seen := map[string]bool{}
	for _, m := range ms {
		if m.FSType != "cgroup" && m.FSType != "cgroup2" {
			continue
		}
		h := Hierarchy{Point: m.Point, Type: m.FSType, Root: m.Root}
		if m.FSType == "cgroup2" && l.Unified == "" {
			l.Unified = m.Point
		}
		if m.FSType == "cgroup" {
			var named []string
			for _, opt := range strings.Split(m.SuperOptions, ",") {
				if isController(opt) && l.Controllers[opt] == "" {
					l.Controllers[opt] = m.Point
				}
				if isController(opt) || strings.HasPrefix(opt, "name=") {
					named = append(named, opt)
				}
			}
			h.Controllers = strings.Join(named, ",")
		}
		if (m.Point == HostDir || path.Dir(m.Point) == HostDir) && !seen[m.Point] {
			seen[m.Point] = true
			l.Hierarchies = append(l.Hierarchies, h)
		}
	}
	return l
}

// required are the controllers a container's limits need. cpuacct only
// adds CPU usage to Stats, so the v1 driver joins it where it is mounted
// and does without it elsewhere.
var required = []string{"memory", "cpu", "pids"}

// Mode says which driver the host needs. The kernel binds each controller
// to one hierarchy at a time: a controller mounted in a v1 hierarchy is
// missing from v2's cgroup.controllers. So the question is where memory,
// cpu and pids are, not whether some v1 hierarchy exists:
//
//   - all three in v1 hierarchies: v1, or hybrid when a v2 mount (which
//     holds none of them) is beside them;
//   - none of them in v1 and a v2 mount: v2. A stray v1 hierarchy, such as
//     the net_cls one VPN clients mount for split tunnelling, does not count;
//   - some in v1 and some not: no driver can set every limit.
func (l *Layout) Mode() (Mode, error) {
	var inV1, notInV1 []string
	for _, c := range required {
		if l.Controllers[c] != "" {
			inV1 = append(inV1, c)
		} else {
			notInV1 = append(notInV1, c)
		}
	}
	switch {
	case len(notInV1) == 0 && l.Unified != "":
		return ModeHybrid, nil
	case len(notInV1) == 0:
		return ModeV1, nil
	case len(inV1) == 0 && l.Unified != "":
		return ModeV2, nil
	case len(inV1) > 0:
		return "", fmt.Errorf("%w: v1 hierarchies hold %s but not %s (a container needs %s in one cgroup version)",
			ErrControllerMissing, strings.Join(inV1, ", "), strings.Join(notInV1, ", "), strings.Join(required, ", "))
	}
	return "", ErrNoCgroups
}

// Visible are the hierarchies a container sees at /sys/fs/cgroup: on a v2
// host the unified one alone (a stray v1 hierarchy holds nothing of the
// container's), elsewhere all of them, named systemd's and the hybrid's
// v2 mount included, as docker shows them.
func (l *Layout) Visible() []Hierarchy {
	mode, _ := l.Mode()
	var out []Hierarchy
	for _, h := range l.Hierarchies {
		if mode != ModeV2 || h.Type == "cgroup2" {
			out = append(out, h)
		}
	}
	return out
}

// controllerless are the mount points of the hierarchies at HostDir that
// hold no v1 controller: named ones (systemd's "name=systemd") and, on a
// hybrid host, the unified one. A v1 container joins them too, so that its
// cgroup namespace shows its own group there as well.
func (l *Layout) controllerless() []string {
	var out []string
	for _, h := range l.Hierarchies {
		hasController := false
		for _, c := range strings.Split(h.Controllers, ",") {
			hasController = hasController || isController(c)
		}
		if !hasController {
			out = append(out, h.Point)
		}
	}
	return out
}

// String is the layout in a few words, for the --explain trace.
func (l *Layout) String() string {
	mode, err := l.Mode()
	switch mode {
	case ModeV2:
		return "cgroup v2 at " + l.Unified
	case ModeV1, ModeHybrid:
		s := fmt.Sprintf("cgroup %s: memory at %s, cpu at %s, pids at %s", mode,
			l.Controllers["memory"], l.Controllers["cpu"], l.Controllers["pids"])
		if l.Unified != "" {
			s += ", v2 at " + l.Unified
		}
		return s
	}
	return err.Error()
}

// isController tells real controllers from the mount options around them
// ("rw", "relatime", an LSM's "seclabel") and from named hierarchies
// ("name=systemd").
func isController(opt string) bool {
	switch opt {
	case "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
		"blkio", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "debug":
		return true
	}
	return false
}
