package chroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/procfs"
	"github.com/minictr/minictr/pkg/resolve"
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
	// Found from the descriptor of the container's /sys, not through the
	// rootfs's names.
	target, err := mountPoint(s.sys, "/fs/cgroup", false)
	if err != nil {
		return err
	}
	defer target.Close()
	// The mount stacked on target, once made, by the same lookup.
	top := func() (*os.File, error) {
		f, err := resolve.Open(s.sys, "/fs/cgroup", resolve.InRoot, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return nil, err
		}
		return renamed(f, target.Name())
	}
	var v1 []CgroupMount
	for _, h := range hs {
		switch {
		case h.Point == hostCgroupDir:
			// A pure v2 host: one unified hierarchy for every controller.
			return s.mountHierarchy(h, target, top)
		case filepath.Dir(h.Point) == hostCgroupDir:
			v1 = append(v1, h)
		default:
			return fmt.Errorf("cgroup mount %s is not at or directly under %s", h.Point, hostCgroupDir)
		}
	}
	return s.mountCgroupV1(v1, target, top)
}

// mountCgroupV1 rebuilds a v1 (or hybrid) host's layout: a small tmpfs with
// one directory per hierarchy, named as on the host, each with its own
// cgroup mount, plus the host's symlinks (cpu -> cpu,cpuacct on many hosts).
// The tmpfs is filled through its own descriptor and turns read-only once
// populated.
func (s *setup) mountCgroupV1(hs []CgroupMount, target *os.File, lookup func() (*os.File, error)) error {
	if err := s.mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return err
	}
	tmpfs, err := s.mountedAt(target, unix.TMPFS_MAGIC, lookup)
	if err != nil {
		return err
	}
	defer tmpfs.Close()
	for _, h := range hs {
		if err := s.mountHierarchyIn(tmpfs, h); err != nil {
			return err
		}
	}
	if err := s.copyCgroupLinks(tmpfs); err != nil {
		return err
	}
	return s.remountReadOnly(tmpfs)
}

// mountHierarchyIn makes h's directory in the tmpfs and mounts h there.
func (s *setup) mountHierarchyIn(tmpfs *os.File, h CgroupMount) error {
	name := h.dir()
	path := filepath.Join(tmpfs.Name(), name)
	if err := unix.Mkdirat(int(tmpfs.Fd()), name, 0o755); err != nil {
		return &os.PathError{Op: "mkdirat", Path: path, Err: err}
	}
	s.t.Step(stage, fmt.Sprintf("mkdirat(%s's fd, %q, 0755)", tmpfs.Name(), name), "mkdir "+path)
	lookup := func() (*os.File, error) { return openPath(tmpfs, name, unix.O_DIRECTORY, path) }
	dir, err := lookup()
	if err != nil {
		return err
	}
	defer dir.Close()
	return s.mountHierarchy(h, dir, lookup)
}

// copyCgroupLinks recreates the symlinks of the host's /sys/fs/cgroup in
// the tmpfs.
func (s *setup) copyCgroupLinks(tmpfs *os.File) error {
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
		link := filepath.Join(tmpfs.Name(), e.Name())
		if err := unix.Symlinkat(dest, int(tmpfs.Fd()), e.Name()); err != nil {
			return &os.LinkError{Op: "symlinkat", Old: dest, New: link, Err: err}
		}
		s.t.Step(stage, fmt.Sprintf("symlinkat(%q, %s's fd, %q)", dest, tmpfs.Name(), e.Name()), "ln -s "+dest+" "+link)
	}
	return nil
}

// mountHierarchy mounts one cgroup hierarchy read-only on dir; lookup finds
// the mount made there (for the remount of the fallback's bind). Naming
// the controllers of an existing v1 hierarchy mounts that same hierarchy
// again; it does not create a new one.
func (s *setup) mountHierarchy(h CgroupMount, dir *os.File, lookup func() (*os.File, error)) error {
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
	bind, err := s.mountedAt(dir, 0, lookup)
	if err != nil {
		return err
	}
	defer bind.Close()
	return s.remountReadOnly(bind)
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
