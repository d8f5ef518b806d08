package chroot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// hostCgroupDir is where the host mounts its cgroup filesystems.
const hostCgroupDir = "/sys/fs/cgroup"

// cgroupOpts are the flags of every cgroup mount made for the container:
// read-only, so the container sees its limits but cannot change them.
const cgroupOpts = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// A hierarchy is one cgroup filesystem mounted under the host's
// /sys/fs/cgroup, as /proc/self/mountinfo shows it.
type hierarchy struct {
	dir         string // name under /sys/fs/cgroup: "memory", "cpu,cpuacct", "unified"; "" for a pure v2 host
	fstype      string // "cgroup" (v1) or "cgroup2"
	root        string // the directory of the hierarchy the host's mount shows as its root
	controllers string // v1 mount data naming the hierarchy: "memory", "cpu,cpuacct", "name=systemd"
}

// mountCgroups shows the container its cgroups at /sys/fs/cgroup, read-only,
// the way docker does: runtimes that size themselves from cgroup files (Go's
// GOMAXPROCS, the JVM's heap) then see the container's limits. The container's
// init is already in its cgroup and, with the engine, in a cgroup namespace
// of its own (cgroup_namespaces(7)), so a fresh cgroup mount shows the
// container's cgroup as its root, with the limits in its files.
func (s *setup) mountCgroups() error {
	var st unix.Statfs_t
	if err := unix.Statfs(hostCgroupDir, &st); err != nil {
		s.t.Step(stage, "no "+hostCgroupDir+" on the host ("+err.Error()+"): the container gets no cgroup files", "")
		return nil
	}
	hs, err := hostHierarchies()
	if err != nil {
		return err
	}
	target, err := mountPoint(s.root, hostCgroupDir, false)
	if err != nil {
		return err
	}
	var v1 []hierarchy
	for _, h := range hs {
		switch {
		case h.dir == "" && st.Type == unix.CGROUP2_SUPER_MAGIC:
			// A pure v2 host: one unified hierarchy for every controller.
			return s.mountHierarchy(h, target)
		case h.dir != "":
			v1 = append(v1, h)
		}
	}
	if len(v1) == 0 {
		s.t.Step(stage, "the host mounts no cgroup filesystem on "+hostCgroupDir+": the container gets none", "")
		return nil
	}
	return s.mountCgroupV1(v1, target)
}

// mountCgroupV1 rebuilds a v1 (or hybrid) host's layout: a small tmpfs with
// one directory per hierarchy, named as on the host, each with its own
// cgroup mount, plus the host's symlinks (cpu -> cpu,cpuacct on many hosts).
// The tmpfs turns read-only once populated.
func (s *setup) mountCgroupV1(hs []hierarchy, target string) error {
	if err := s.mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(target, h.dir)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		s.t.Step(stage, fmt.Sprintf("mkdir(%q, 0755)", dir), "mkdir "+dir)
		if err := s.mountHierarchy(h, dir); err != nil {
			return err
		}
	}
	if err := s.copyCgroupLinks(target); err != nil {
		return err
	}
	return s.remountReadOnly(target)
}

// copyCgroupLinks recreates the symlinks of the host's /sys/fs/cgroup.
func (s *setup) copyCgroupLinks(target string) error {
	entries, err := os.ReadDir(hostCgroupDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		dest, err := os.Readlink(filepath.Join(hostCgroupDir, e.Name()))
		if err != nil {
			return err
		}
		link := filepath.Join(target, e.Name())
		if err := os.Symlink(dest, link); err != nil {
			return err
		}
		s.t.Step(stage, fmt.Sprintf("symlink(%q, %q)", dest, link), "ln -s "+dest+" "+link)
	}
	return nil
}

// mountHierarchy mounts one cgroup hierarchy read-only on dir. Naming the
// controllers of an existing v1 hierarchy mounts that same hierarchy again;
// it does not create a new one.
func (s *setup) mountHierarchy(h hierarchy, dir string) error {
	err := s.mount(h.fstype, dir, h.fstype, cgroupOpts, h.controllers)
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	// In a user namespace the kernel lets us mount cgroups only in a cgroup
	// namespace owned by it. Without one, bind-mount our own cgroup's
	// directory from the host's mount instead (runc does the same).
	s.t.Step(stage, h.fstype+" mount refused (EPERM, user namespace without a cgroup namespace): bind our own cgroup", "")
	src, err := ownCgroupDir(h)
	if err != nil {
		return err
	}
	if err := s.mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return s.remountReadOnly(dir)
}

// ownCgroupDir returns the host directory of this thread's cgroup in h.
func ownCgroupDir(h hierarchy) (string, error) {
	data, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return "", err
	}
	// Lines are "ID:controllers:path"; v2 has ID 0 and no controllers.
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[1] != h.controllers {
			continue
		}
		// The host's mount may show only a subtree (root), and a cgroup
		// namespace shows cgroups outside its own as "/..".
		rel, err := filepath.Rel(h.root, parts[2])
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("cgroup %s is outside the host's %s mount (root %s)", parts[2], h.fstype, h.root)
		}
		return filepath.Join(hostCgroupDir, h.dir, rel), nil
	}
	return "", fmt.Errorf("no cgroup %q in /proc/thread-self/cgroup", h.controllers)
}

// genericCgroupOpts are the super options of a v1 cgroup mount that are not
// controllers (see cgroup1_parse_param in the kernel's cgroup-v1.c).
var genericCgroupOpts = map[string]bool{"rw": true, "ro": true, "xattr": true, "noprefix": true,
	"clone_children": true, "cpuset_v2_mode": true, "favordynmods": true, "none": true}

// hostHierarchies lists the cgroup filesystems mounted on the host's
// /sys/fs/cgroup (pure v2) or directly under it (v1 and hybrid), from /proc/self/mountinfo (proc(5)), whose lines
// read: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTIONS.
func hostHierarchies() ([]hierarchy, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []hierarchy
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+4 || seen[fields[4]] {
			continue
		}
		h := hierarchy{fstype: fields[sep+1], root: fields[3]}
		switch {
		case fields[4] == hostCgroupDir:
		case path.Dir(fields[4]) == hostCgroupDir:
			h.dir = path.Base(fields[4])
		default:
			continue
		}
		switch h.fstype {
		case "cgroup2":
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(fields[sep+3], ",") {
				if !genericCgroupOpts[o] && !strings.HasPrefix(o, "release_agent=") {
					ctrls = append(ctrls, o)
				}
			}
			h.controllers = strings.Join(ctrls, ",")
		default:
			continue
		}
		seen[fields[4]] = true
		hs = append(hs, h)
	}
	return hs, sc.Err()
}
