package procfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// A CgroupEntry is one line of /proc/PID/cgroup (cgroups(7)): the process's
// cgroup in one hierarchy.
type CgroupEntry struct {
	ID          int    // the hierarchy's ID; 0 for the unified (v2) one
	Controllers string // v1: the hierarchy's controllers and name, "cpu,cpuacct" or "name=systemd"; v2: ""
	Path        string // the cgroup, relative to the hierarchy's root ("/.." and below: outside our cgroup namespace)
}

// ThreadCgroups reads the calling thread's cgroups, /proc/thread-self/cgroup
// (a thread, not the process: the caller may have moved just its thread).
func ThreadCgroups() ([]CgroupEntry, error) {
	const path = "/proc/thread-self/cgroup"
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	es, err := ParseCgroups(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return es, nil
}

// ParseCgroups parses a /proc/PID/cgroup table: "ID:controllers:path" a
// line. The path is the rest of the line: it may hold colons.
func ParseCgroups(r io.Reader) ([]CgroupEntry, error) {
	var es []CgroupEntry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroup line %d %q: want ID:controllers:path", n, sc.Text())
		}
		id, err := strconv.Atoi(parts[0])
		if err != nil {
			return nil, fmt.Errorf("cgroup line %d %q: hierarchy ID: %w", n, sc.Text(), err)
		}
		es = append(es, CgroupEntry{ID: id, Controllers: parts[1], Path: parts[2]})
	}
	return es, sc.Err()
}
