package chroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/resolve"
	"github.com/minictr/minictr/pkg/trace"
)

// A Mount is a mount made inside the rootfs before pivot_root. Target is a
// path inside the container: "/" for the mounts that make the root itself
// (a snapshot's overlay, mounted on Rootfs first), or a volume or a bind
// mount from the host (Source is a host path, Flags has MS_BIND).
type Mount struct {
	Source, Target, Type string
	Flags                uintptr
	Data                 string
	// FD, when not 0, is a detached mount (fsmount(2), open_tree(2)) that
	// the init received, attached on Target with move_mount(2) instead of
	// mounting Source: how an overlay with idmapped layers, which only the
	// engine can make, arrives.
	FD int `json:",omitempty"`
}

// Config describes the root filesystem Setup builds.
type Config struct {
	Rootfs        string
	ReadOnly      bool     // remount "/" read-only at the end
	Privileged    bool     // no masked or read-only paths, /sys read-write (cgroups stay read-only)
	MaskedPaths   []string // nil means DefaultMaskedPaths
	ReadonlyPaths []string // nil means DefaultReadonlyPaths
	Mounts        []Mount
	// Cgroups are the host's cgroup hierarchies to show at /sys/fs/cgroup,
	// read-only: the unified one alone on a pure v2 host, else one per
	// directory under /sys/fs/cgroup. None: no cgroup files.
	Cgroups []CgroupMount
	// Devices are host device nodes to make in the container (--device).
	Devices []Device
	Tracer  trace.Tracer
}

// DefaultMaskedPaths are docker's: kernel interfaces that leak host
// information (kcore is the host's memory, keys and timer_list other
// processes' data) or let a container poke hardware. Files are covered with
// /dev/null, directories with an empty read-only tmpfs.
var DefaultMaskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// DefaultReadonlyPaths are docker's: /proc files that configure the whole
// machine (sysctls, interrupts, the magic SysRq key), readable but not
// writable from a container.
var DefaultReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// setup carries what every step of Setup needs. Past openRootfs, no step
// looks the rootfs up by its path: see fd.go for why.
type setup struct {
	cfg  Config
	root string // absolute host path of the rootfs, for traces and errors only
	t    trace.Tracer

	// rootfs is the rootfs directory, opened once; parent and base reach
	// the mount Setup stacks on it, which then replaces rootfs (the root
	// of that mount, pivot_root's new root).
	rootfs, parent *os.File
	base           string
	before         map[uint64]bool // IDs of the mounts that were there before Setup
	rootMounted    bool            // a "/" mount of cfg.Mounts is on the rootfs
	// proc and sys are the roots of the container's /proc and /sys mounts:
	// the masked and read-only paths are found in them, not through the
	// rootfs's names.
	proc, sys *os.File
	dev       *os.File // the container's /dev tmpfs, where masks find null
	inProc    bool     // the working directory is proc: see fdPath
}

// setupHook, set by tests only, is called at each point where Setup could
// be raced: after each step, and between the mknod and the chmod of each
// device. A test renames directories there, as a host user would.
var setupHook func(point string)

func (s *setup) at(point string) {
	if setupHook != nil {
		setupHook(point)
	}
}

// Setup builds the container's filesystem view and moves into it. It must
// run in the container's init, in a mount namespace of its own (it refuses
// otherwise, since pivot_root in the host's namespace would move the host's
// root). The steps, in order:
//
//  1. make every mount private, so nothing we do propagates to the host
//  2. open the rootfs: the one lookup of its path; every later step works
//     from descriptors, so renaming a directory on that path meanwhile
//     cannot send a mount, mknod or chmod onto the host
//  3. mount the root's own mounts (Target "/": the snapshot's overlay) on
//     the rootfs, here where they vanish with the container's namespace
//  4. or, with none, bind-mount the rootfs onto itself (pivot_root needs a
//     mount point)
//  5. mount /proc, /sys, the cgroups (read-only), /dev and its children,
//     and the other cfg.Mounts, each onto a descriptor resolved inside the
//     rootfs; /dev is filled through the tmpfs's own descriptor; make the
//     cfg.Devices nodes (--device)
//  6. pivot_root into the rootfs (fchdir into its descriptor, no path) and
//     detach the host's root
//  7. mask and make read-only the dangerous /proc and /sys paths, found
//     from the descriptors of the /proc and /sys mounts
//  8. with ReadOnly, remount "/" read-only
//  9. leave /proc, where steps 7 and 8 worked from, for "/"
func Setup(cfg Config) error {
	root, err := filepath.Abs(cfg.Rootfs)
	if err != nil {
		return err
	}
	s := &setup{cfg: cfg, root: root, t: trace.Or(cfg.Tracer)}
	defer s.close()
	steps := []struct {
		name string
		run  func() error
	}{
		{"checking the mount namespace", ownMountNamespace},
		{"making / rprivate", s.makePrivate},
		{"opening the rootfs", s.openRootfs},
		{"mounting the root filesystem", s.mountRoot},
		{"bind-mounting the rootfs", s.bindRootfs},
		{"mounting /proc", s.mountProc},
		{"mounting /sys", s.mountSys},
		{"mounting /sys/fs/cgroup", s.mountCgroups},
		{"setting up /dev", s.mountDev},
		{"mounting volumes", s.mountExtra},
		{"making --device nodes", s.makeDevices},
		{"pivoting root", s.pivotRoot},
		{"masking paths", s.maskPaths},
		{"making paths read-only", s.readonlyPaths},
		{"making / read-only", s.readonlyRoot},
		{"leaving /proc", s.leaveProc},
	}
	for _, step := range steps {
		if err := step.run(); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		s.at(step.name)
	}
	return nil
}

// close closes the descriptors Setup holds.
func (s *setup) close() {
	for _, f := range []*os.File{s.rootfs, s.parent, s.proc, s.sys, s.dev} {
		if f != nil {
			f.Close()
		}
	}
}

// ownMountNamespace refuses to run in the mount namespace of PID 1 (as the
// host's /proc sees it): there, pivot_root would replace the host's root.
func ownMountNamespace() error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	if init, err := os.Readlink("/proc/1/ns/mnt"); err == nil && init == self {
		return fmt.Errorf("still in the host's mount namespace %s (clone with CLONE_NEWNS first)", self)
	}
	return nil
}

// makePrivate turns every mount in our new namespace private. A new mount
// namespace starts as a copy of the host's, and mounts the host marked
// "shared" (systemd does that to "/") stay in the host's peer group: a mount
// made under them here would appear on the host, and our final unmount of
// the old root would unmount the host's filesystems. Private mounts neither
// send nor receive events.
func (s *setup) makePrivate() error {
	return s.mountNamed("", "", "/", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
}

// mountRoot mounts the mounts whose target is "/" on the rootfs, in order,
// each onto the rootfs's descriptor (a mount target swapped for a symlink
// between its check and the mount is CVE-2021-30465 in runc). Made here,
// after makePrivate, they exist only in the container's mount namespace:
// when its last process exits they are gone, and an engine killed
// meanwhile leaves no mount on the host to clean up.
func (s *setup) mountRoot() error {
	for _, m := range s.cfg.Mounts {
		if m.Target != "/" {
			continue
		}
		if m.FD != 0 {
			if err := s.attach(m.FD, s.rootfs, m.Type); err != nil {
				return err
			}
			s.rootMounted = true
			continue
		}
		if err := s.mountData(m.Source, s.rootfs, m.Type, m.Flags, m.Data); err != nil {
			return fmt.Errorf("%s on %s: %w", m.Type, s.root, err)
		}
		s.rootMounted = true
	}
	if !s.rootMounted {
		return nil
	}
	return s.enterRootMount(0)
}

// bindRootfs makes the rootfs a mount point of its own, which pivot_root(2)
// requires of its new root, unless mountRoot already made it one;
// recursive, so mounts already inside the rootfs come along.
func (s *setup) bindRootfs() error {
	if s.rootMounted {
		return nil
	}
	if err := s.bind(s.rootfs, s.rootfs, unix.MS_REC); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(s.rootfs.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstatfs", Path: s.root, Err: err}
	}
	return s.enterRootMount(st.Type)
}

// enterRootMount replaces s.rootfs, the directory, with the root of the
// mount just stacked on it: the rootfs's name in its parent's descriptor
// leads there (the kernel crosses mounts when it looks a name up; a
// descriptor of the directory keeps showing what is underneath). The one
// name looked up again is checked to lead to that mount, of type magic.
func (s *setup) enterRootMount(magic int64) error {
	s.at("reopening the rootfs")
	top, err := s.mountedAt(s.rootfs, magic, func() (*os.File, error) {
		return openPath(s.parent, s.base, unix.O_DIRECTORY, s.root)
	})
	if err != nil {
		return err
	}
	s.rootfs.Close()
	s.rootfs = top
	return nil
}

// pivotRoot makes the rootfs's mount, held open, the root. From then on the
// descriptors Setup holds go by their names in the container.
func (s *setup) pivotRoot() error {
	if err := PivotRoot(s.rootfs, s.t); err != nil {
		return err
	}
	// The host's mounts are detached: no name leads to them any more, and
	// the kernel may give their IDs to the mounts we make next.
	s.before = nil
	for _, r := range []struct {
		f    **os.File
		name string
	}{{&s.rootfs, "/"}, {&s.proc, "/proc"}, {&s.sys, "/sys"}, {&s.dev, "/dev"}} {
		f, err := renamed(*r.f, r.name)
		if err != nil {
			return err
		}
		*r.f = f
	}
	// "/proc/self/fd/N" would now look "proc" up in the container's root,
	// a name the rootfs's owner controls: work from inside our proc mount.
	if err := unix.Fchdir(int(s.proc.Fd())); err != nil {
		return &os.PathError{Op: "fchdir", Path: s.proc.Name(), Err: err}
	}
	s.t.Step(stage, "fchdir to the container's proc mount: descriptors are reached as self/fd/N from here", "cd /proc")
	s.inProc = true
	return nil
}

// leaveProc ends Setup where PivotRoot left it: in "/".
func (s *setup) leaveProc() error {
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	s.t.Step(stage, "chdir /", "cd /")
	s.inProc = false
	return nil
}

// mountProc mounts a fresh proc filesystem. It shows the processes of the
// PID namespace we are in, so in a new one PID 1 is the container's init.
func (s *setup) mountProc() error {
	target, err := mountPoint(s.rootfs, "/proc", false)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := s.mount("proc", target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	s.proc, err = s.inRootMount(target, "/proc", unix.PROC_SUPER_MAGIC)
	return err
}

// inRootMount returns the root of the mount just made on dir, which is p
// inside the rootfs.
func (s *setup) inRootMount(dir *os.File, p string, magic int64) (*os.File, error) {
	s.at("reopening " + p)
	return s.mountedAt(dir, magic, func() (*os.File, error) {
		return resolve.Open(s.rootfs, p, resolve.InRoot, unix.O_PATH|unix.O_DIRECTORY, 0)
	})
}

// mountSys mounts sysfs, read-only unless privileged.
func (s *setup) mountSys() error {
	target, err := mountPoint(s.rootfs, "/sys", false)
	if err != nil {
		return err
	}
	defer target.Close()
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if !s.cfg.Privileged {
		flags |= unix.MS_RDONLY
	}
	err = s.mount("sysfs", target, "sysfs", flags, "")
	if err == nil {
		s.sys, err = s.inRootMount(target, "/sys", unix.SYSFS_MAGIC)
		return err
	}
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	// sysfs shows the network devices of the mounter's network namespace,
	// so inside a user namespace the kernel allows a new sysfs only with a
	// network namespace of its own. Without one, show the host's /sys.
	s.t.Step(stage, "sysfs refused (EPERM, no network namespace of our own): bind the host's /sys instead", "")
	if err := s.mount("/sys", target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if s.sys, err = s.inRootMount(target, "/sys", unix.SYSFS_MAGIC); err != nil {
		return err
	}
	if s.cfg.Privileged {
		return nil
	}
	// Only the top mount becomes read-only; mounts below /sys (cgroups,
	// debugfs) keep their own flags, as with runc.
	return s.remountReadOnly(s.sys)
}

// mountExtra makes cfg.Mounts, each target resolved inside the rootfs.
func (s *setup) mountExtra() error {
	for _, m := range s.cfg.Mounts {
		if m.Target == "/" {
			continue // mountRoot's
		}
		if err := s.mountOne(m); err != nil {
			return fmt.Errorf("%s on %s: %w", m.Source, m.Target, err)
		}
	}
	return nil
}

func (s *setup) mountOne(m Mount) error {
	bind := m.Flags&unix.MS_BIND != 0
	file := false
	if bind {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return err
		}
		file = !fi.IsDir()
	}
	target, err := mountPoint(s.rootfs, m.Target, file)
	if err != nil {
		return err
	}
	defer target.Close()
	if !bind {
		return s.mount(m.Source, target, m.Type, m.Flags, m.Data)
	}
	// A bind mount ignores every flag but MS_REC at creation; ro, nosuid
	// and the like need a remount of the new mount, reached by its path
	// inside the rootfs and checked to be the one just made.
	if err := s.mount(m.Source, target, "", unix.MS_BIND|m.Flags&unix.MS_REC, ""); err != nil {
		return err
	}
	extra := m.Flags &^ (unix.MS_BIND | unix.MS_REC)
	if extra == 0 {
		return nil
	}
	top, err := s.mountedAt(target, 0, func() (*os.File, error) {
		f, err := resolve.Open(s.rootfs, m.Target, resolve.InRoot, unix.O_PATH, 0)
		if err != nil {
			return nil, err
		}
		return renamed(f, target.Name())
	})
	if err != nil {
		return err
	}
	defer top.Close()
	return s.remount(top, extra)
}

// readonlyRoot remounts the container's "/" read-only when asked. Only the
// root mount changes: /proc, /dev, /dev/shm and volumes stay writable.
func (s *setup) readonlyRoot() error {
	if !s.cfg.ReadOnly {
		return nil
	}
	return s.remountReadOnly(s.rootfs)
}
