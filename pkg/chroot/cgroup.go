package chroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/procfs"
)

// hostCgroupDir is where the host mounts its cgroup filesystems.
const hostCgroupDir = "/sys/fs/cgroup"

// cgroupOpts are the flags of every cgroup mount made for the container:
// read-only, so the container sees its limits but cannot change them.
const cgroupOpts = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// A CgroupMount is one cgroup hierarchy the host mounts at /sys/fs/cgroup
// or directly under it, for the container to see there. The engine reads
// the host's layout once (pkg/cgroups) and passes these as plain data.
type CgroupMount struct {
	Point string // the host's mount point: "/sys/fs/cgroup" (pure v2) or "/sys/fs/cgroup/memory"
	Type  string // "cgroup" (v1) or "cgroup2"
	Root  string // the directory of the hierarchy the host's mount shows: "/" unless a subtree
	// Controllers name a v1 hierarchy as mount(8) wants them ("cpu,cpuacct",
	// "name=systemd"), and as /proc/PID/cgroup lists them. "" for v2.
	Controllers string
}

// dir is the mount's name under /sys/fs/cgroup: "memory", "unified"; ""
// for /sys/fs/cgroup itself.
func (m CgroupMount) dir() string {
	if m.Point == hostCgroupDir {
		return ""
	}
	return filepath.Base(m.Point)
}

// mountCgroups shows the container its cgroups at /sys/fs/cgroup, read-only,
// the way docker does: runtimes that size themselves from cgroup files (Go's
// GOMAXPROCS, the JVM's heap) then see the container's limits. The container's
// init is already in its cgroup and, with the engine, in a cgroup namespace
// of its own (cgroup_namespaces(7)), so a fresh cgroup mount shows the
// container's cgroup as its root, with the limits in its files.
func (s *setup) mountCgroups() error {
	hs := s.cfg.Cgroups
	if len(hs) == 0 {
		s.t.Step(stage, "the host mounts no cgroup filesystem on "+hostCgroupDir+": the container gets none", "")
		return nil
	}
	target, err := mountPoint(s.root, hostCgroupDir, false)
	if err != nil {
		return err
	}
	var v1 []CgroupMount
	for _, h := range hs {
		switch {
		case h.Point == hostCgroupDir:
			// A pure v2 host: one unified hierarchy for every controller.
			return s.mountHierarchy(h, target)
		case filepath.Dir(h.Point) == hostCgroupDir:
			v1 = append(v1, h)
		default:
			return fmt.Errorf("cgroup mount %s is not at or directly under %s", h.Point, hostCgroupDir)
		}
	}
	return s.mountCgroupV1(v1, target)
}

// mountCgroupV1 rebuilds a v1 (or hybrid) host's layout: a small tmpfs with
// one directory per hierarchy, named as on the host, each with its own
// cgroup mount, plus the host's symlinks (cpu -> cpu,cpuacct on many hosts).
// The tmpfs turns read-only once populated.
func (s *setup) mountCgroupV1(hs []CgroupMount, target string) error {
	if err := s.mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(target, h.dir())
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
func (s *setup) mountHierarchy(h CgroupMount, dir string) error {
	err := s.mount(h.Type, dir, h.Type, cgroupOpts, h.Controllers)
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	// In a user namespace the kernel lets us mount cgroups only in a cgroup
	// namespace owned by it. Without one, bind-mount our own cgroup's
	// directory from the host's mount instead (runc does the same).
	s.t.Step(stage, h.Type+" mount refused (EPERM, user namespace without a cgroup namespace): bind our own cgroup", "")
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
func ownCgroupDir(h CgroupMount) (string, error) {
	entries, err := procfs.ThreadCgroups()
	if err != nil {
		return "", err
	}
	// v2 is the entry with ID 0 and no controllers.
	for _, e := range entries {
		if e.Controllers != h.Controllers || (h.Type == "cgroup2") != (e.ID == 0) {
			continue
		}
		// The host's mount may show only a subtree (root), and a cgroup
		// namespace shows cgroups outside its own as "/..".
		rel, err := filepath.Rel(h.Root, e.Path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("cgroup %s is outside the host's %s mount (root %s)", e.Path, h.Type, h.Root)
		}
		return filepath.Join(h.Point, rel), nil
	}
	return "", fmt.Errorf("no cgroup %q in /proc/thread-self/cgroup", h.Controllers)
}
