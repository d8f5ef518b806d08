package privileges

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/trace"
)

const stage = "privileges"

// Config says what the container's process keeps.
type Config struct {
	User            User
	Capabilities    []string // "CAP_CHOWN", ... as returned by Capabilities
	NoNewPrivileges bool
	Tracer          trace.Tracer
}

// Apply drops the calling process to cfg, in the only order that works:
//
//  1. drop every other capability from the bounding set: PR_CAPBSET_DROP
//     needs CAP_SETPCAP, which we lose in step 4 (or at the uid change);
//  2. clear the ambient set, so nothing is carried across execve unasked;
//  3. setgroups, setresgid, setresuid: groups and gid first, since both
//     need CAP_SETGID, which a non-root uid no longer has;
//  4. capset: root keeps exactly the list as effective and permitted; a
//     non-root user has none (the uid change already cleared them, and
//     execve would too, as in docker);
//  5. PR_SET_NO_NEW_PRIVS, so setuid binaries cannot undo any of it.
//
// A seccomp filter (pkg/seccomp) comes before step 1 when no_new_privs is
// off, since installing one then needs CAP_SYS_ADMIN, and after step 5
// when it is on, on the same thread: the container's init does both.
//
// Capabilities and no_new_privs belong to a thread, not a process. Apply
// therefore locks the calling goroutine to its OS thread for good: call
// execve from the same goroutine, and the new program inherits this
// thread's credentials. (The uid and gid calls of package syscall change
// every thread.) Capabilities the running kernel does not know are skipped.
func Apply(cfg Config) error {
	runtime.LockOSThread() // never unlocked, see above
	t := trace.Or(cfg.Tracer)
	keep, err := capabilityMask(cfg.Capabilities)
	if err != nil {
		return err
	}
	if err := dropBoundingSet(keep, t); err != nil {
		return err
	}
	if err := clearAmbient(t); err != nil {
		return err
	}
	if err := setUser(cfg.User, t); err != nil {
		return err
	}
	if cfg.User.UID != 0 {
		keep = 0
	}
	if err := setCapabilities(keep, t); err != nil {
		return err
	}
	if !cfg.NoNewPrivileges {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err)
	}
	t.Step(stage, "prctl(PR_SET_NO_NEW_PRIVS, 1)", "setpriv --no-new-privs")
	return nil
}

// capabilityMask turns names into a bit mask of the capabilities the
// running kernel knows.
func capabilityMask(names []string) (uint64, error) {
	names, err := normalize(names)
	if err != nil {
		return 0, err
	}
	last := lastCap()
	var mask uint64
	for _, name := range names {
		n, ok := capabilityNumber(name)
		if !ok { // "ALL" has no number: resolve it with Capabilities first
			return 0, fmt.Errorf("capability %q: expand ALL with Capabilities", name)
		}
		if n <= last {
			mask |= 1 << n
		}
	}
	return mask, nil
}

// maskNames lists the capabilities in mask as capsh spells them.
func maskNames(mask uint64) string {
	var names []string
	for n := 0; n <= lastCap(); n++ {
		if mask&(1<<n) != 0 {
			names = append(names, strings.ToLower(capabilityNames[n]))
		}
	}
	return strings.Join(names, ",")
}

func dropBoundingSet(keep uint64, t trace.Tracer) error {
	var dropped uint64
	for n := 0; n <= lastCap(); n++ {
		if keep&(1<<n) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl PR_CAPBSET_DROP "+capabilityNames[n], err)
		}
		dropped |= 1 << n
	}
	names := maskNames(dropped)
	t.Step(stage, "prctl(PR_CAPBSET_DROP) for "+names, "capsh --drop="+names)
	return nil
}

func clearAmbient(t trace.Tracer) error {
	err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	if errors.Is(err, unix.EINVAL) {
		return nil // a kernel before 4.3 has no ambient set to clear
	}
	if err != nil {
		return os.NewSyscallError("prctl PR_CAP_AMBIENT_CLEAR_ALL", err)
	}
	t.Step(stage, "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)", "setpriv --ambient-caps -all")
	return nil
}

// setUser switches groups, gid and uid. The syscall package applies each
// to every thread of the process (since Go 1.16), as POSIX requires.
func setUser(u User, t trace.Tracer) error {
	// An empty list matters too: it drops the engine's own groups.
	if err := syscall.Setgroups(u.Groups); err != nil {
		return os.NewSyscallError("setgroups", err)
	}
	if err := syscall.Setresgid(u.GID, u.GID, u.GID); err != nil {
		return os.NewSyscallError("setresgid", err)
	}
	if err := syscall.Setresuid(u.UID, u.UID, u.UID); err != nil {
		return os.NewSyscallError("setresuid", err)
	}
	groups := make([]string, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = strconv.Itoa(g)
	}
	shell := fmt.Sprintf("setpriv --reuid=%d --regid=%d --groups=%s", u.UID, u.GID, strings.Join(groups, ","))
	if len(groups) == 0 {
		shell = fmt.Sprintf("setpriv --reuid=%d --regid=%d --clear-groups", u.UID, u.GID)
	}
	t.Step(stage, fmt.Sprintf("setgroups(%v), setresgid(%d, %d, %d), setresuid(%d, %d, %d)",
		u.Groups, u.GID, u.GID, u.GID, u.UID, u.UID, u.UID), shell)
	return nil
}

// setCapabilities makes keep the effective and permitted sets. The
// inheritable set is left empty, as docker does since CVE-2022-24769: a
// non-empty one would hand capabilities to any file carrying inheritable
// file capabilities, even for a non-root user.
func setCapabilities(keep uint64, t trace.Tracer) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	shell := "capsh --caps=" + maskNames(keep) + "+ep"
	if keep == 0 {
		shell = "capsh --caps='='"
	}
	t.Step(stage, fmt.Sprintf("capset(effective=permitted=%#x, inheritable=0)", keep), shell)
	return nil
}
