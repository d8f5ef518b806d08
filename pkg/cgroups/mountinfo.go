package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// mounts is where the cgroup hierarchies are mounted.
type mounts struct {
	controllers map[string]string // v1 controller ("memory", "cpu", ...) -> mount point
	unified     string            // the v2 mount point, "" if none
}

// readMounts reads this process's mount table, proc(5) /proc/self/mountinfo.
func readMounts() (mounts, error) {
	const path = "/proc/self/mountinfo"
	f, err := os.Open(path)
	if err != nil {
		return mounts{}, err
	}
	defer f.Close()
	m, err := parseMountinfo(f)
	if err != nil {
		return mounts{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return m, nil
}

// parseMountinfo picks the cgroup mounts out of a mountinfo table. A line is
//
//	35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
//
// (mount ID, parent ID, device, root, mount point, options, optional
// fields, "-", file system type, source, super options). A v1 mount names
// its controllers in the super options, several when they share one
// hierarchy ("rw,cpu,cpuacct"). The first mount of each wins, as bind
// mounts of the same hierarchy come later.
func parseMountinfo(r io.Reader) (mounts, error) {
	m := mounts{controllers: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := indexOf(fields, "-")
		if sep < 5 || len(fields) < sep+4 {
			continue
		}
		point := unescape(fields[4])
		switch fields[sep+1] {
		case "cgroup2":
			if m.unified == "" {
				m.unified = point
			}
		case "cgroup":
			for _, opt := range strings.Split(fields[sep+3], ",") {
				if isController(opt) && m.controllers[opt] == "" {
					m.controllers[opt] = point
				}
			}
		}
	}
	return m, sc.Err()
}

// required are the controllers a container's limits need. cpuacct only
// adds CPU usage to Stats, so the v1 driver joins it where it is mounted
// and does without it elsewhere.
var required = []string{"memory", "cpu", "pids"}

// version says which driver the host needs. The kernel binds each
// controller to one hierarchy at a time: a controller mounted in a v1
// hierarchy is missing from v2's cgroup.controllers. So the question is
// where memory, cpu and pids are, not whether some v1 hierarchy exists:
//
//   - all three in v1 hierarchies: v1 (a hybrid host's v2 mount beside them
//     holds none of them);
//   - none of them in v1 and a v2 mount: v2. A stray v1 hierarchy, such as
//     the net_cls one VPN clients mount for split tunnelling, does not count;
//   - some in v1 and some not: no driver can set every limit.
func (m mounts) version() (int, error) {
	var inV1, notInV1 []string
	for _, c := range required {
		if m.controllers[c] != "" {
			inV1 = append(inV1, c)
		} else {
			notInV1 = append(notInV1, c)
		}
	}
	switch {
	case len(notInV1) == 0:
		return 1, nil
	case len(inV1) == 0 && m.unified != "":
		return 2, nil
	case len(inV1) > 0:
		return 0, fmt.Errorf("%w: v1 hierarchies hold %s but not %s (a container needs %s in one cgroup version)",
			ErrControllerMissing, strings.Join(inV1, ", "), strings.Join(notInV1, ", "), strings.Join(required, ", "))
	}
	return 0, ErrNoCgroups
}

// isController tells real controllers from the mount options around them
// ("rw", "relatime") and from named hierarchies ("name=systemd").
func isController(opt string) bool {
	switch opt {
	case "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
		"blkio", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc":
		return true
	}
	return false
}

func indexOf(fields []string, s string) int {
	for i, f := range fields {
		if f == s {
			return i
		}
	}
	return -1
}

// unescape undoes mountinfo's octal escapes for space, tab, newline and
// backslash ("\040").
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
