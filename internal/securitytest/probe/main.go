// Command probe makes the system calls busybox cannot, for the security
// test corpus (cmd/minictr/cli/testdata/security). Each subcommand tries
// one way out of a container and prints one line: what it got through to,
// or the errno's name (EPERM, ENOSYS, ...), so that a script can match the
// exact refusal. The exit status is 0 either way: the script decides.
//
// Some subcommands set up a victim on the host side instead (a session
// keyring with a key, a file handle, a terminal): the attack tests never aim
// at the host's own keys, files or terminals.
//
// The test builds it with CGO_ENABLED=0 and copies it into the container's
// root filesystem, which has no libc.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var probes = map[string]func(args []string) (string, error){
	"keys-session":    keysSession,
	"key-read":        keyRead,
	"chroot-breakout": chrootBreakout,
	"handle-of":       handleOf,
	"open-handle":     openHandle,
	"clock-settime":   clockSettime,
	"clock-adjtick":   clockAdjtick,
	"finit-module":    finitModule,
	"init-module":     initModule,
	"ptrace":          ptrace,
	"perf-event-open": perfEventOpen,
	"userfaultfd":     userfaultfd,
	"personality":     personality,
	"fanotify":        fanotify,
	"nft":             nft,
	"nft-child":       nftChild,
	"pty":             pty,
	"tiocsti":         tiocsti,
}

func main() {
	if len(os.Args) < 2 || probes[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: probe SUBCOMMAND [ARGS...]")
		os.Exit(2)
	}
	out, err := probes[os.Args[1]](os.Args[2:])
	if err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		out = unix.ErrnoName(errno)
	}
	if out != "" {
		fmt.Println(out)
	}
}

// keysSession joins a new session keyring, adds a "user" key DESC to it
// and runs CMD, which inherits the keyring: the victim a container must not
// read.
func keysSession(args []string) (string, error) {
	if len(args) < 2 {
		return "", errors.New("keys-session DESC CMD...")
	}
	runtime.LockOSThread() // the session keyring belongs to this thread until exec
	if _, err := unix.KeyctlJoinSessionKeyring("probe-victim"); err != nil {
		return "", err
	}
	if _, err := unix.AddKey("user", args[0], []byte("secret of "+args[0]), unix.KEY_SPEC_SESSION_KEYRING); err != nil {
		return "", err
	}
	path, err := exec.LookPath(args[1])
	if err != nil {
		return "", err
	}
	return "", syscall.Exec(path, args[1:], os.Environ())
}

// keyRead looks for the "user" key DESC in the caller's keyrings and reads
// it.
func keyRead(args []string) (string, error) {
	id, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", args[0], 0)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
	if err != nil {
		return "", err
	}
	return "read: " + string(buf[:min(n, len(buf))]), nil
}

// chrootBreakout is lesson 01's escape: chroot into a subdirectory while
// keeping the working directory outside it, climb "..", chroot ".". It
// reports whether MARKER, a path only the host has, is then reachable.
func chrootBreakout(args []string) (string, error) {
	if err := os.MkdirAll("/tmp/.breakout", 0o700); err != nil {
		return "", err
	}
	if err := os.Chdir("/"); err != nil {
		return "", err
	}
	if err := unix.Chroot("/tmp/.breakout"); err != nil {
		return "", &os.PathError{Op: "chroot", Path: "/tmp/.breakout", Err: err}
	}
	for range 128 {
		if err := unix.Chdir(".."); err != nil {
			return "", err
		}
	}
	if err := unix.Chroot("."); err != nil {
		return "", err
	}
	if _, err := os.Stat(args[0]); err != nil {
		return "contained: " + unix.ErrnoName(err.(*os.PathError).Err.(syscall.Errno)), nil
	}
	return "escaped: " + args[0] + " is reachable", nil
}

// handleOf prints PATH's file handle as TYPE:HEX (name_to_handle_at(2)).
func handleOf(args []string) (string, error) {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, args[0], 0)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%s", h.Type(), hex.EncodeToString(h.Bytes())), nil
}

// openHandle opens a TYPE:HEX handle on the filesystem of "/" with
// open_by_handle_at(2) and prints the file: the "shocker" escape, which
// reaches a file outside the container's root on the same filesystem.
func openHandle(args []string) (string, error) {
	typ, h, _ := strings.Cut(args[0], ":")
	t, _ := strconv.Atoi(typ)
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", err
	}
	root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", err
	}
	fd, err := unix.OpenByHandleAt(root, unix.NewFileHandle(int32(t), b), unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	n, _ := unix.Read(fd, buf)
	return "read: " + strings.TrimSpace(string(buf[:max(n, 0)])), nil
}

// clockSettime sets the realtime clock to what it reads (only ever run
// where the test expects EPERM: the host clock stays).
func clockSettime([]string) (string, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return "", err
	}
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return "", err
	}
	return "set", nil
}

// clockAdjtick sets the clock's tick length to its current value: the same
// CAP_SYS_TIME check as clock_settime(2), with no effect on the host.
func clockAdjtick([]string) (string, error) {
	var tx unix.Timex
	if _, err := unix.ClockAdjtime(unix.CLOCK_REALTIME, &tx); err != nil {
		return "", err
	}
	tx = unix.Timex{Modes: unix.ADJ_TICK, Tick: tx.Tick}
	if _, err := unix.ClockAdjtime(unix.CLOCK_REALTIME, &tx); err != nil {
		return "", err
	}
	return "set", nil
}

// finitModule hands FILE (not a module) to finit_module(2): ENOEXEC means
// the kernel got past the permission check and parsed it.
func finitModule(args []string) (string, error) {
	f, err := os.Open(args[0])
	if err != nil {
		return "", err
	}
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return "", err
	}
	return "loaded", nil
}

// initModule hands FILE's bytes to init_module(2), as finitModule does the
// file.
func initModule(args []string) (string, error) {
	image, err := os.ReadFile(args[0])
	if err != nil {
		return "", err
	}
	if err := unix.InitModule(image, ""); err != nil {
		return "", err
	}
	return "loaded", nil
}

// ptrace seizes PID (the tracer's exit lets it go).
func ptrace(args []string) (string, error) {
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		return "", err
	}
	runtime.LockOSThread()
	if err := unix.PtraceSeize(pid); err != nil {
		return "", err
	}
	return "attached", nil
}

// perfEventOpen counts this process's own CPU clock, user space only: what
// perf_event_paranoid ≤ 2 lets anyone do.
func perfEventOpen([]string) (string, error) {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Bits:   unix.PerfBitDisabled | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv,
	}
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return "", err
	}
	unix.Close(fd)
	return "opened", nil
}

// userfaultfd asks for a user-mode-only descriptor, which
// vm.unprivileged_userfaultfd=0 still allows (Linux 5.11).
func userfaultfd([]string) (string, error) {
	const userModeOnly = 1 // UFFD_USER_MODE_ONLY
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|userModeOnly, 0, 0)
	if e != 0 {
		return "", e
	}
	unix.Close(int(fd))
	return "opened", nil
}

// personality turns off address space randomisation for this process, one
// of the personalities docker's profile refuses.
func personality([]string) (string, error) {
	const addrNoRandomize = 0x0040000
	_, _, e := unix.Syscall(unix.SYS_PERSONALITY, addrNoRandomize, 0, 0)
	if e != 0 {
		return "", e
	}
	return "set", nil
}

// fanotify asks for the unprivileged flavour of fanotify_init(2) (Linux 5.13).
func fanotify([]string) (string, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_REPORT_FID, unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	unix.Close(fd)
	return "initialised", nil
}

// nft runs nft-child in a new user and network namespace, where it is root
// with every capability: the path from a container to nf_tables.
func nft([]string) (string, error) {
	cmd := exec.Command("/proc/self/exe", "nft-child")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	return "", cmd.Run() // the child prints what it got
}

// nftChild creates an nf_tables table: one netlink batch, as nft(8) sends.
func nftChild([]string) (string, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	msg := func(typ uint16, flags uint16, seq uint32, family uint8, resID uint16, attrs []byte) []byte {
		b := make([]byte, 16+4, 16+4+len(attrs))
		binary.NativeEndian.PutUint32(b[0:], uint32(20+len(attrs)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		binary.NativeEndian.PutUint16(b[6:], flags)
		binary.NativeEndian.PutUint32(b[8:], seq)
		b[16] = family
		binary.BigEndian.PutUint16(b[18:], resID)
		return append(b, attrs...)
	}
	name := []byte{8, 0, unix.NFTA_TABLE_NAME, 0, 'p', 'b', 0, 0} // nlattr{len 8, type} + "pb\0" padded
	var batch []byte
	batch = append(batch, msg(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, 1, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)...)
	batch = append(batch, msg(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_ACK, 2, unix.NFPROTO_INET, 0, name)...)
	batch = append(batch, msg(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, 3, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)...)
	if err := unix.Sendto(fd, batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return "", err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return "", err
	}
	if n < 20 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return "", fmt.Errorf("unexpected netlink answer (%d bytes)", n)
	}
	if code := int32(binary.NativeEndian.Uint32(buf[16:])); code != 0 {
		return "", syscall.Errno(-code)
	}
	return "table created", nil
}

// pty runs CMD as an interactive shell would: in a session of its own
// whose controlling terminal is a new pseudo-terminal (raw mode), with that
// terminal as stdin, stdout and stderr. Afterwards it reports how many bytes
// wait in the terminal's input queue: what something pushed with TIOCSTI
// for the next command to read.
func pty(args []string) (string, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return "", err
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return "", err
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return "", err
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return "", err
	}
	defer slave.Close()
	t, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		return "", err
	}
	t.Lflag &^= unix.ICANON | unix.ECHO
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, t); err != nil {
		return "", err
	}
	go func() { // drain the output so CMD never blocks on a full terminal
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			os.Stderr.Write(buf[:max(n, 0)])
			if err != nil {
				return
			}
		}
	}()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	status := "exit 0"
	if err := cmd.Run(); err != nil {
		status = err.Error()
	}
	time.Sleep(100 * time.Millisecond) // let the output drain
	queued, err := unix.IoctlGetInt(int(slave.Fd()), unix.TIOCINQ)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s; %d bytes queued for the terminal's next reader", status, queued), nil
}

// tiocsti pushes "id\n" into the input of the terminal on stdin, as if
// typed: the host's shell would run it once the container exits.
func tiocsti([]string) (string, error) {
	for _, c := range []byte("id\n") {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c))); e != 0 {
			return "", e
		}
	}
	return "injected", nil
}
