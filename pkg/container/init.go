package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/chroot"
	"github.com/minictr/minictr/pkg/namespaces"
	"github.com/minictr/minictr/pkg/privileges"
	"github.com/minictr/minictr/pkg/seccomp"
	"github.com/minictr/minictr/pkg/trace"
)

// initArg is argv[1] of the re-executed container init ("minictr init").
const initArg = "init"

// initEnv marks the environment of a real container init, so that a user
// typing "minictr init" gets a normal command-line error instead.
const initEnv = "_MINICTR_INIT=1"

// initSpec is what the engine sends the init over the handshake socket:
// the process to exec, and the root to build around it.
type initSpec struct {
	Process    Process        `json:"process"`
	Rootfs     string         `json:"rootfs"`
	Mounts     []chroot.Mount `json:"mounts,omitempty"` // Target "/": the snapshot's, mounted on Rootfs
	Hostname   string         `json:"hostname"`
	ReadOnly   bool           `json:"readOnly"`
	Privileged bool           `json:"privileged"`
	TraceFD    int            `json:"traceFD,omitempty"`
	// Cgroups are the host's hierarchies to mount at /sys/fs/cgroup, from
	// the layout the engine read once.
	Cgroups []chroot.CgroupMount `json:"cgroups,omitempty"`
	// Devices are the --device nodes to make.
	Devices []chroot.Device `json:"devices,omitempty"`
	// FileMounts are the indexes in Mounts of the detached mounts the
	// engine sends as files with the spec, in that order (idmapRoot).
	FileMounts []int `json:"fileMounts,omitempty"`
	// Seccomp is the compiled filter (seccomp.Filter.MarshalBinary) to
	// install before exec; empty for an unconfined container.
	Seccomp []byte `json:"seccomp,omitempty"`
	// Tty: make a terminal in the container's /dev/pts, its stdio.
	Tty bool `json:"tty,omitempty"`
	// Keyring names the fresh session keyring the init joins; "" keeps the
	// engine's (NoNewKeyring).
	Keyring string `json:"keyring,omitempty"`
}

// openTerminal makes a terminal in the container's own devpts, as runc
// does for a console: a pair from /dev/ptmx, whose other end becomes the
// init's controlling terminal (the init leads a session of its own,
// namespaces.Config.NewSession) and its stdin, stdout and stderr. The
// master goes to the engine, which copies it; `tty` in the container
// prints /dev/pts/0, a terminal the host never had.
func openTerminal(t trace.Tracer) (*os.File, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: "/dev/ptmx", Err: err}
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	fail := func(err error) (*os.File, error) { master.Close(); return nil, err }
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return fail(os.NewSyscallError("ioctl TIOCSPTLCK", err))
	}
	// TIOCGPTPEER opens the other end through the master, never through a
	// path in /dev/pts that something could have replaced.
	peer, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY)
	if errno != 0 {
		return fail(os.NewSyscallError("ioctl TIOCGPTPEER", errno))
	}
	slave := int(peer)
	defer unix.Close(slave)
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return fail(os.NewSyscallError("ioctl TIOCSCTTY", err))
	}
	for i := 0; i <= 2; i++ {
		if err := unix.Dup3(slave, i, 0); err != nil {
			return fail(os.NewSyscallError("dup3", err))
		}
	}
	n, _ := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	t.Step("tty", fmt.Sprintf("open /dev/ptmx, TIOCGPTPEER: /dev/pts/%d as the controlling terminal (TIOCSCTTY) and stdio; its master goes to the engine", n), "")
	return master, nil
}

// filter decodes the compiled seccomp filter; nil for none.
func (s *initSpec) filter() (*seccomp.Filter, error) {
	if len(s.Seccomp) == 0 {
		return nil, nil
	}
	var f seccomp.Filter
	if err := f.UnmarshalBinary(s.Seccomp); err != nil {
		return nil, fmt.Errorf("reading init spec: %w", err)
	}
	return &f, nil
}

// keyPossessorAll is KEY_POS_ALL: every right for the keyring's
// possessors, none for anyone else (keyctl_setperm(3)).
const keyPossessorAll = 0x3f000000

// joinSessionKeyring gives the container a session keyring of its own, as
// runc does. Keyrings are not namespaced: a process that inherits the
// engine's session keyring possesses it, so it could read the keys in it
// (and every keyring linked there) and add keys the host's session then
// holds. A fresh one is empty and belongs to the container alone.
//
// ENOSYS is a kernel without keys: nothing to reach. EPERM is a seccomp
// filter of minictr's own (minictr run inside another container) that
// refuses keyctl: the container inherits that filter, so it cannot reach
// a keyring either.
func joinSessionKeyring(name string, t trace.Tracer) error {
	if name == "" {
		return nil
	}
	id, err := unix.KeyctlJoinSessionKeyring(name)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Step("keyring", fmt.Sprintf("no session keyring of its own: keyctl: %v", err), "")
		return nil
	}
	if err != nil {
		return os.NewSyscallError("keyctl KEYCTL_JOIN_SESSION_KEYRING", err)
	}
	// A new keyring lets every process of its uid view, list and link it:
	// root in any other container could. Only its possessors may now,
	// the processes of this container, whatever uid they switch to.
	if err := unix.KeyctlSetperm(id, keyPossessorAll); err != nil {
		return os.NewSyscallError("keyctl KEYCTL_SETPERM", err)
	}
	t.Step("keyring", fmt.Sprintf("keyctl(KEYCTL_JOIN_SESSION_KEYRING, %q): a new, empty session keyring, for its possessors only", name),
		fmt.Sprintf("keyctl session %s  # then: keyctl setperm @s %#x", name, keyPossessorAll))
	return nil
}

// IsInit reports whether this process is a container init started by Run.
func IsInit() bool {
	return len(os.Args) > 1 && os.Args[1] == initArg && os.Getenv("_MINICTR_INIT") == "1"
}

// InitMain is the whole life of the container init: wait for the engine,
// set the container up, and exec the user's command. It only returns on
// failure, after telling the engine why.
func InitMain() int {
	payload, rep, err := namespaces.Handshake()
	if err != nil {
		fmt.Fprintf(os.Stderr, "minictr init: %v\n", err)
		return 125
	}
	var s initSpec
	if err := json.Unmarshal(payload, &s); err != nil {
		rep.Fail(125, fmt.Errorf("reading init spec: %w", err))
		return 125
	}
	if err := s.receiveMounts(rep.Files()); err != nil {
		rep.Fail(125, err)
		return 125
	}
	code, err := s.start(rep)
	rep.Fail(code, err)
	return code
}

// start is the init checklist, in the order that makes each step possible:
// the root filesystem first (everything after reads the container's files),
// then identity, then dropping privileges, then exec.
func (s *initSpec) start(rep *namespaces.Reporter) (int, error) {
	t := trace.Discard
	if s.TraceFD > 0 {
		t = trace.New(os.NewFile(uintptr(s.TraceFD), "explain"))
	}
	err := chroot.Setup(chroot.Config{
		Rootfs:     s.Rootfs,
		Mounts:     s.Mounts,
		ReadOnly:   s.ReadOnly,
		Privileged: s.Privileged,
		Cgroups:    s.Cgroups,
		Devices:    s.Devices,
		Tracer:     t,
	})
	if err != nil {
		return 125, fmt.Errorf("preparing the root filesystem: %w", err)
	}
	if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
		return 125, os.NewSyscallError("sethostname", err)
	}
	t.Step("uts", fmt.Sprintf("sethostname(%q)", s.Hostname), "hostname "+s.Hostname)
	if err := loopbackUp(t); err != nil {
		return 125, err
	}
	if err := joinSessionKeyring(s.Keyring, t); err != nil {
		return 125, err
	}
	var master *os.File // -t: the terminal's, for the engine
	if s.Tty {
		if master, err = openTerminal(t); err != nil {
			return 125, err
		}
		defer master.Close()
	}

	p := s.Process
	user, err := privileges.LookupUser("/", p.User)
	if err != nil {
		return 125, err
	}
	env := containerEnv(p.Env, s.Hostname, user.Home)
	if err := enterWorkdir(p.Workdir, t); err != nil {
		return 125, err
	}
	path, err := lookPath(p.Args[0], envValue(env, "PATH"))
	if err != nil {
		return execCode(err), err
	}
	filter, err := s.filter()
	if err != nil {
		return 125, err
	}
	// seccomp(2) lets a thread install a filter only with no_new_privs or
	// with CAP_SYS_ADMIN (a filter could otherwise fool a setuid program
	// into running with a syscall failed under it). Docker sets
	// no_new_privs only when asked, so without it the filter goes in now,
	// while the init still holds CAP_SYS_ADMIN, and the calls that drop
	// privileges run under it, as in runc (the engine checked that the
	// profile lets them through). With no_new_privs it goes in last,
	// after every step but exec, so that as little as possible of the
	// init runs filtered.
	early := filter != nil && !p.NoNewPrivileges
	if early {
		if err := seccomp.Install(filter, t); err != nil {
			return 125, err
		}
	}
	err = privileges.Apply(privileges.Config{
		User:            user,
		Capabilities:    p.Capabilities,
		NoNewPrivileges: p.NoNewPrivileges,
		Tracer:          t,
	})
	if err != nil {
		return 125, fmt.Errorf("dropping privileges: %w", err)
	}
	// The kernel clears the parent-death signal when the uid or gid
	// changes: set it again, or a container run with -u would outlive a
	// killed engine.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return 125, os.NewSyscallError("prctl PR_SET_PDEATHSIG", err)
	}
	t.Step("init", "prctl(PR_SET_PDEATHSIG, SIGKILL) again: a uid change cleared it", "")
	// Only stdin, stdout and stderr may reach the user's program.
	if err := privileges.MarkCloexecFrom(3); err != nil {
		return 125, err
	}
	// Last word with the engine, which sets the limits a Go init could not
	// live under (pids) while we wait.
	var send []*os.File
	if master != nil {
		send = append(send, master)
	}
	if err := rep.Ready(send...); err != nil {
		return 125, err
	}
	if filter != nil && !early {
		// On this thread, which set no_new_privs (privileges.Apply and
		// Handshake lock it): Install checks no_new_privs on the caller.
		if err := seccomp.Install(filter, t); err != nil {
			return 125, err
		}
	}
	t.Step("exec", fmt.Sprintf("execve(%q, %q)", path, p.Args), "exec "+shellQuote(p.Args))
	err = unix.Exec(path, p.Args, env)
	err = &fs.PathError{Op: "exec", Path: p.Args[0], Err: err}
	return execCode(err), err
}

// enterWorkdir creates the working directory if the image lacks it, as
// docker does, and changes into it. It runs after pivot_root, in the root
// the container sees (an image's snapshot exists nowhere else), where a
// symlink climbing out of the root stays in it, as with docker; a path
// that loops or runs through a file is refused in the words the --rootfs
// check uses.
func enterWorkdir(dir string, t trace.Tracer) error {
	if dir == "" {
		dir = "/"
	}
	if err := checkInside("/", dir); err != nil {
		return fmt.Errorf("%w: working directory %s: %w", ErrInvalidSpec, dir, err)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating working directory: %w", err)
		}
		t.Step("init", "mkdir -p "+dir, "mkdir -p "+dir)
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("changing to working directory: %w", err)
	}
	t.Step("init", fmt.Sprintf("chdir(%q)", dir), "cd "+dir)
	return nil
}

// errNotFound is the error for a command missing from the container.
var errNotFound = errors.New("executable file not found in $PATH")

// lookPath finds the command in the container's PATH as execvp(3) does: a
// name with a slash is used as it is; otherwise the first executable match
// wins, and a match that cannot be executed only counts when nothing else
// matches (then it is "permission denied", 126, rather than 127).
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", fmt.Errorf("exec: %q: %w", name, err)
		}
		return name, nil
	}
	var denied error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		err := checkExecutable(p)
		switch {
		case err == nil:
			return p, nil
		case !errors.Is(err, fs.ErrNotExist) && denied == nil:
			denied = err
		}
	}
	if denied != nil {
		return "", fmt.Errorf("exec: %q: %w", name, denied)
	}
	return "", fmt.Errorf("exec: %q: %w", name, errNotFound)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: p, Err: syscall.EACCES}
	}
	return nil
}

// execCode is docker's exit status for a command that could not run:
// 127 when it does not exist, 126 when it exists but cannot be executed.
func execCode(err error) int {
	if errors.Is(err, errNotFound) || errors.Is(err, fs.ErrNotExist) {
		return 127
	}
	return 126
}

// containerEnv is docker's environment: PATH and HOSTNAME first, then the
// user's variables (a later one replaces an earlier one of the same name),
// and HOME from /etc/passwd unless set.
func containerEnv(user []string, hostname, home string) []string {
	env := []string{"PATH=" + DefaultPath, "HOSTNAME=" + hostname}
	for _, e := range user {
		env = setEnv(env, e)
	}
	if !hasEnv(env, "HOME") {
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	return env
}

func setEnv(env []string, kv string) []string {
	key, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}

func envValue(env []string, key string) string {
	for _, e := range env {
		if k, v, _ := strings.Cut(e, "="); k == key {
			return v
		}
	}
	return ""
}

// shellQuote renders args as a shell would need them typed.
func shellQuote(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			quoted[i] = a
			continue
		}
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}

// loopbackUp brings up "lo" in the container's new network namespace, as
// docker does even with --network none: 127.0.0.1 must work. (The
// networking stage adds eth0; this is all a container has until then.)
func loopbackUp(t trace.Tracer) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCGIFFLAGS lo", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCSIFFLAGS lo", err)
	}
	t.Step("network", "ioctl(SIOCSIFFLAGS, lo, IFF_UP)", "ip link set lo up")
	return nil
}
