package chroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

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

// setup carries what every step of Setup needs.
type setup struct {
	cfg         Config
	root        string // absolute host path of the rootfs
	rootMounted bool   // a "/" mount of cfg.Mounts is on root
	t           trace.Tracer
}

// Setup builds the container's filesystem view and moves into it. It must
// run in the container's init, in a mount namespace of its own (it refuses
// otherwise, since pivot_root in the host's namespace would move the host's
// root). The steps, in order:
//
//  1. make every mount private, so nothing we do propagates to the host
//  2. mount the root's own mounts (Target "/": the snapshot's overlay) on
//     the rootfs, here where they vanish with the container's namespace
//  3. or, with none, bind-mount the rootfs onto itself (pivot_root needs a
//     mount point)
//  4. mount /proc, /sys, the cgroups (read-only), /dev and its children,
//     and the other cfg.Mounts; make the cfg.Devices nodes
//  4. pivot_root into the rootfs and detach the host's root
//  5. mask and make read-only the dangerous /proc and /sys paths
//  6. with ReadOnly, remount "/" read-only
func Setup(cfg Config) error {
	root, err := filepath.Abs(cfg.Rootfs)
	if err != nil {
		return err
	}
	s := &setup{cfg: cfg, root: root, t: trace.Or(cfg.Tracer)}
	steps := []struct {
		name string
		run  func() error
	}{
		{"checking the mount namespace", ownMountNamespace},
		{"making / rprivate", s.makePrivate},
		{"mounting the root filesystem", s.mountRoot},
		{"bind-mounting the rootfs", s.bindRootfs},
		{"mounting /proc", s.mountProc},
		{"mounting /sys", s.mountSys},
		{"mounting /sys/fs/cgroup", s.mountCgroups},
		{"setting up /dev", s.mountDev},
		{"mounting volumes", s.mountExtra},
		{"making --device nodes", s.makeDevices},
		{"pivoting root", func() error { return PivotRoot(s.root, s.t) }},
		{"masking paths", s.maskPaths},
		{"making paths read-only", s.readonlyPaths},
		{"making / read-only", s.readonlyRoot},
	}
	for _, step := range steps {
		if err := step.run(); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return nil
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
	return s.mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
}

// mountRoot mounts the mounts whose target is "/" on the rootfs, in order.
// Made here, after makePrivate, they exist only in the container's mount
// namespace: when its last process exits they are gone, and an engine
// killed meanwhile leaves no mount on the host to clean up.
func (s *setup) mountRoot() error {
	for _, m := range s.cfg.Mounts {
		if m.Target != "/" {
			continue
		}
		if m.FD != 0 {
			if err := s.attach(m.FD, s.root, m.Type); err != nil {
				return err
			}
			s.rootMounted = true
			continue
		}
		if err := s.mountData(m.Source, s.root, m.Type, m.Flags, m.Data); err != nil {
			return fmt.Errorf("%s on %s: %w", m.Type, s.root, err)
		}
		s.rootMounted = true
	}
	return nil
}

// bindRootfs makes the rootfs a mount point of its own, which pivot_root(2)
// requires of its new root, unless mountRoot already made it one;
// recursive, so mounts already inside the rootfs come along.
func (s *setup) bindRootfs() error {
	if s.rootMounted {
		return nil
	}
	return s.mount(s.root, s.root, "", unix.MS_BIND|unix.MS_REC, "")
}

// mountProc mounts a fresh proc filesystem. It shows the processes of the
// PID namespace we are in, so in a new one PID 1 is the container's init.
func (s *setup) mountProc() error {
	target, err := mountPoint(s.root, "/proc", false)
	if err != nil {
		return err
	}
	return s.mount("proc", target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// mountSys mounts sysfs, read-only unless privileged.
func (s *setup) mountSys() error {
	target, err := mountPoint(s.root, "/sys", false)
	if err != nil {
		return err
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if !s.cfg.Privileged {
		flags |= unix.MS_RDONLY
	}
	err = s.mount("sysfs", target, "sysfs", flags, "")
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
	if s.cfg.Privileged {
		return nil
	}
	// Only the top mount becomes read-only; mounts below /sys (cgroups,
	// debugfs) keep their own flags, as with runc.
	return s.remountReadOnly(target)
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
	target, err := mountPoint(s.root, m.Target, file)
	if err != nil {
		return err
	}
	if !bind {
		return s.mount(m.Source, target, m.Type, m.Flags, m.Data)
	}
	// A bind mount ignores every flag but MS_REC at creation; ro, nosuid
	// and the like need a remount of the new mount.
	if err := s.mount(m.Source, target, "", unix.MS_BIND|m.Flags&unix.MS_REC, ""); err != nil {
		return err
	}
	if extra := m.Flags &^ (unix.MS_BIND | unix.MS_REC); extra != 0 {
		return s.remount(target, extra)
	}
	return nil
}

// readonlyRoot remounts the container's "/" read-only when asked. Only the
// root mount changes: /proc, /dev, /dev/shm and volumes stay writable.
func (s *setup) readonlyRoot() error {
	if !s.cfg.ReadOnly {
		return nil
	}
	return s.remountReadOnly("/")
}
