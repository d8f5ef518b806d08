package chroot

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// mount calls mount(2) on the file target holds, through /proc/self/fd/N:
// the kernel follows that to the very file Setup resolved, whatever it is
// named by now (see fd.go). The trace names the target by its path and
// gives the equivalent mount(8) command.
func (s *setup) mount(source string, target *os.File, fstype string, flags uintptr, data string) error {
	return s.mountNamed(source, source, s.fdPath(target), target.Name(), fstype, flags, data)
}

// bind bind-mounts the file source holds onto the file target holds, both
// through /proc/self/fd/N; flags may add MS_REC.
func (s *setup) bind(source, target *os.File, flags uintptr) error {
	defer runtime.KeepAlive(source)
	return s.mountNamed(s.fdPath(source), source.Name(), s.fdPath(target), target.Name(), "", unix.MS_BIND|flags, "")
}

// mountNamed is mount(2) on source and target, traced under their names.
func (s *setup) mountNamed(source, sourceName, target, targetName, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &os.PathError{Op: "mount", Path: targetName, Err: err}
	}
	// The call as made, then what its /proc/self/fd/N paths are.
	var names []string
	for _, n := range [][2]string{{source, sourceName}, {target, targetName}} {
		if n[0] != n[1] && !slices.Contains(names, n[0]+" = "+n[1]) {
			names = append(names, n[0]+" = "+n[1])
		}
	}
	call := mountCall(source, target, fstype, flags, data)
	if len(names) > 0 {
		call += " (" + strings.Join(names, "; ") + ")"
	}
	s.t.Step(stage, call, mountShell(sourceName, targetName, fstype, flags, data))
	return nil
}

// attach moves the detached mount fd onto the directory target holds
// (move_mount(2), both ends by descriptor): the mount, made by the engine
// in no mount namespace, joins ours.
func (s *setup) attach(fd int, target *os.File, fstype string) error {
	if err := unix.MoveMount(fd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount " + fstype, Path: target.Name(), Err: err}
	}
	s.t.Step(stage, fmt.Sprintf("move_mount(%d, \"\", %d, \"\", MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH): attach the engine's detached %s to %s", fd, target.Fd(), fstype, target.Name()),
		fmt.Sprintf("# no shell equivalent: the %s was made by the engine (fsmount) and passed over the handshake socket", fstype))
	return nil
}

// remountReadOnly makes the mount whose root target holds read-only.
func (s *setup) remountReadOnly(target *os.File) error {
	return s.remount(target, unix.MS_RDONLY)
}

// remount adds the per-mount flags add (ro, nosuid, ...) to the mount whose
// root target holds (a remount acts on a mount's root only: EINVAL
// elsewhere). A remount replaces all of them, so the ones already set (ro,
// nosuid, nodev, noexec, atime) are carried over: dropping them would fail
// with EPERM inside a user namespace, where the kernel locks them, and
// would weaken the mount anyway.
func (s *setup) remount(target *os.File, add uintptr) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(target.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstatfs", Path: target.Name(), Err: err}
	}
	flags := unix.MS_BIND | unix.MS_REMOUNT | add
	for stFlag, msFlag := range map[int64]uintptr{
		unix.ST_RDONLY:     unix.MS_RDONLY,
		unix.ST_NOSUID:     unix.MS_NOSUID,
		unix.ST_NODEV:      unix.MS_NODEV,
		unix.ST_NOEXEC:     unix.MS_NOEXEC,
		unix.ST_NOATIME:    unix.MS_NOATIME,
		unix.ST_NODIRATIME: unix.MS_NODIRATIME,
		unix.ST_RELATIME:   unix.MS_RELATIME,
	} {
		if st.Flags&stFlag != 0 {
			flags |= msFlag
		}
	}
	return s.mount("", target, "", flags, "")
}

// flagNames lists the mount(2) flags in the order they are printed, with
// the MS_ constant name and the mount(8) option name.
var flagNames = []struct {
	flag      uintptr
	name, opt string
}{
	{unix.MS_RDONLY, "MS_RDONLY", "ro"},
	{unix.MS_NOSUID, "MS_NOSUID", "nosuid"},
	{unix.MS_NODEV, "MS_NODEV", "nodev"},
	{unix.MS_NOEXEC, "MS_NOEXEC", "noexec"},
	{unix.MS_NOATIME, "MS_NOATIME", "noatime"},
	{unix.MS_NODIRATIME, "MS_NODIRATIME", "nodiratime"},
	{unix.MS_RELATIME, "MS_RELATIME", "relatime"},
	{unix.MS_STRICTATIME, "MS_STRICTATIME", "strictatime"},
	{unix.MS_REMOUNT, "MS_REMOUNT", ""},
	{unix.MS_BIND, "MS_BIND", ""},
	{unix.MS_REC, "MS_REC", ""},
	{unix.MS_PRIVATE, "MS_PRIVATE", ""},
	{unix.MS_SLAVE, "MS_SLAVE", ""},
	{unix.MS_SHARED, "MS_SHARED", ""},
}

// mountCall renders the mount(2) call itself, the way strace would.
func mountCall(source, target, fstype string, flags uintptr, data string) string {
	var names []string
	for _, f := range flagNames {
		if flags&f.flag != 0 {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		names = []string{"0"}
	}
	return fmt.Sprintf("mount(%q, %q, %q, %s, %q)", source, target, fstype, strings.Join(names, "|"), data)
}

// mountShell renders the mount(8) command with the same effect.
func mountShell(source, target, fstype string, flags uintptr, data string) string {
	rec := flags&unix.MS_REC != 0
	switch {
	case flags&unix.MS_PRIVATE != 0:
		return "mount --make-" + map[bool]string{true: "r", false: ""}[rec] + "private " + target
	case flags&unix.MS_SLAVE != 0:
		return "mount --make-" + map[bool]string{true: "r", false: ""}[rec] + "slave " + target
	}
	var opts []string
	for _, f := range flagNames {
		if flags&f.flag != 0 && f.opt != "" {
			opts = append(opts, f.opt)
		}
	}
	switch {
	case flags&unix.MS_REMOUNT != 0:
		o := "remount"
		if flags&unix.MS_BIND != 0 {
			o += ",bind"
		}
		return "mount -o " + strings.Join(append([]string{o}, opts...), ",") + " " + target
	case flags&unix.MS_BIND != 0:
		cmd := "mount --bind "
		if rec {
			cmd = "mount --rbind "
		}
		if len(opts) > 0 {
			cmd += "-o " + strings.Join(opts, ",") + " "
		}
		return cmd + source + " " + target
	}
	if data != "" {
		opts = append(opts, data)
	}
	cmd := "mount -t " + fstype
	if len(opts) > 0 {
		cmd += " -o " + strings.Join(opts, ",")
	}
	return cmd + " " + source + " " + target
}

// mountData mounts a filesystem whose options (data) may be long, such as
// an overlay of many layers. mount(2) copies its options into one page
// (4096 bytes), so many long lowerdir paths do not fit. Then we use the new
// mount API (fsopen(2), fsconfig(2), fsmount(2), move_mount(2)), which takes
// the lower layers one at a time ("lowerdir+", Linux 6.8): no limit but the
// 500-layer stack of overlayfs. (The other way out, short relative paths
// from a chdir'd parent, would change the init's working directory.)
func (s *setup) mountData(source string, target *os.File, fstype string, flags uintptr, data string) error {
	shell := "mount -t " + fstype + " " + source + " -o " + data + " " + target.Name()
	if len(data) < os.Getpagesize() {
		s.t.Step(stage, "mount "+fstype+" on "+target.Name(), shell)
		if err := unix.Mount(source, s.fdPath(target), fstype, flags, data); err != nil {
			return &os.PathError{Op: "mount " + fstype, Path: target.Name(), Err: err}
		}
		return nil
	}
	opts := strings.Split(data, ",")
	s.t.Step(stage, fmt.Sprintf("mount %s on %s: %d bytes of options exceed a page, so fsopen, fsconfig lowerdir+ (one per layer), fsmount, move_mount",
		fstype, target.Name(), len(data)), shell)
	return mountNewAPI(fstype, opts, target, len(data))
}

// mountNewAPI mounts fstype with opts on target through the new mount API,
// giving a colon-separated lowerdir one layer at a time.
func mountNewAPI(fstype string, opts []string, target *os.File, size int) error {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("fsopen "+fstype, err)
	}
	defer unix.Close(fsfd)
	for _, o := range opts {
		key, val, hasVal := strings.Cut(o, "=")
		switch {
		case key == "lowerdir":
			lowers := strings.Split(val, ":")
			for _, l := range lowers {
				if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
					return fmt.Errorf("%d layers need %d bytes of mount options, more than a page, and this kernel cannot take them one by one (lowerdir+ needs Linux 6.8): %w",
						len(lowers), size, os.NewSyscallError("fsconfig lowerdir+ "+l, err))
				}
			}
		case hasVal:
			if err := unix.FsconfigSetString(fsfd, key, val); err != nil {
				return os.NewSyscallError("fsconfig "+key+" "+val, err)
			}
		default:
			if err := unix.FsconfigSetFlag(fsfd, key); err != nil {
				return os.NewSyscallError("fsconfig "+key, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return os.NewSyscallError("fsconfig create "+fstype, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fsmount "+fstype, err)
	}
	defer unix.Close(mfd)
	// Onto the descriptor itself (T_EMPTY_PATH): move_mount would not
	// follow a /proc/self/fd/N link without MOVE_MOUNT_T_SYMLINKS.
	if err := unix.MoveMount(mfd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "move_mount", Path: target.Name(), Err: err}
	}
	return nil
}
