package chroot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/procfs"
	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/resolve"
	"github.com/minictr/minictr/pkg/trace"
)

func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"chroot-inside": inside})
}

// insideConfig is what the test sends to its re-executed self.
type insideConfig struct {
	Rootfs     string
	ReadOnly   bool
	Privileged bool
	Mounts     []Mount
	Cgroups    []CgroupMount // the host's, as the engine hands them over

	CgroupMode  string   // the host's: "v1" or "v2" (testenv.CgroupMode)
	CgroupNames []string // the host's /sys/fs/cgroup entries (v1)
	// With CgroupNS the child waits for a line on stdin (the test moves it
	// into its cgroup meanwhile), then unshares a cgroup namespace, as the
	// engine's init does, before Setup. CgroupFile must then read CgroupLimit.
	CgroupNS                bool
	CgroupFile, CgroupLimit string
	// With PauseAt, Setup stops at that point of its own (setup.at),
	// prints "paused POINT" and waits for a line on stdin: meanwhile the
	// test renames what it likes, as a host user racing the init would.
	PauseAt string
	// MovedProc is where the container's proc mount ends up when the test
	// renames /proc meanwhile; Only limits the checks to those named.
	MovedProc string
	Only      []string
	// Devices are --device nodes; each must then be found at its Path
	// with its number, mode and owner (check "devices").
	Devices []Device
}

// inside runs as PID 1 of new mount and PID namespaces: it calls Setup,
// says "ready", waits for the test to look at the host's mounts, then
// checks the container's view and prints one "ok NAME" or "FAIL NAME: why"
// per check.
func inside() int {
	var cfg insideConfig
	if err := json.Unmarshal([]byte(os.Getenv("CHROOT_TEST_CONFIG")), &cfg); err != nil {
		fmt.Println("FAIL config:", err)
		return 1
	}
	stdin := bufio.NewReader(os.Stdin)
	if cfg.CgroupNS {
		if _, err := stdin.ReadString('\n'); err != nil {
			fmt.Println("FAIL waiting to be moved into the cgroup:", err)
			return 1
		}
		// A namespace belongs to a thread: Setup must mount from this one.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			fmt.Println("FAIL unshare(CLONE_NEWCGROUP):", err)
			return 1
		}
	}
	if cfg.PauseAt != "" {
		setupHook = func(point string) {
			if point != cfg.PauseAt {
				return
			}
			fmt.Println("paused", point)
			if _, err := stdin.ReadString('\n'); err != nil {
				fmt.Println("FAIL waiting at", point, err)
			}
		}
	}
	err := Setup(Config{Rootfs: cfg.Rootfs, ReadOnly: cfg.ReadOnly, Privileged: cfg.Privileged,
		Mounts: cfg.Mounts, Cgroups: cfg.Cgroups, Devices: cfg.Devices, Tracer: trace.New(os.Stderr)})
	if err != nil {
		fmt.Println("FAIL setup:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.ReadAll(stdin) // until the test closes our stdin
	for _, c := range checks(cfg) {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, c.name) {
			continue
		}
		if err := c.fn(); err != nil {
			fmt.Printf("FAIL %s: %v\n", c.name, err)
		} else {
			fmt.Printf("ok %s\n", c.name)
		}
	}
	return 0
}

// hasVolume: the config mounts something besides the root.
func hasVolume(cfg insideConfig) bool {
	return slices.ContainsFunc(cfg.Mounts, func(m Mount) bool { return m.Target != "/" })
}

type check struct {
	name string
	fn   func() error
}

func checks(cfg insideConfig) []check {
	cs := []check{
		{"pid1", func() error {
			self, err := os.Readlink("/proc/self")
			if os.Getpid() != 1 || self != "1" {
				return fmt.Errorf("getpid %d, /proc/self -> %q (%v)", os.Getpid(), self, err)
			}
			return nil
		}},
		{"rootfs-only", func() error {
			// The rootfs has bin/busybox and no host directories like /boot.
			if _, err := os.Stat("/bin/busybox"); err != nil {
				return err
			}
			if _, err := os.Stat("/boot"); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("/boot visible: %v", err)
			}
			return nil
		}},
		{"old-root-gone", func() error {
			// Only the container's own mounts are left (the volume test
			// mounts on /etc, where its /data symlink points).
			ms, err := procfs.Mounts()
			if err != nil {
				return err
			}
			for _, m := range ms {
				mp := m.Point
				if mp != "/" && !strings.HasPrefix(mp, "/proc") && !strings.HasPrefix(mp, "/sys") &&
					!strings.HasPrefix(mp, "/dev") && !(hasVolume(cfg) && mp == "/etc") {
					return fmt.Errorf("host mount still visible: %+v", m)
				}
			}
			return nil
		}},
		{"dev-null", func() error {
			if err := os.WriteFile("/dev/null", []byte("swallowed"), 0); err != nil {
				return err
			}
			data, err := os.ReadFile("/dev/null")
			if err != nil || len(data) != 0 {
				return fmt.Errorf("read %q, %v", data, err)
			}
			return nil
		}},
		{"dev-zero", func() error {
			buf := []byte{1, 2, 3, 4}
			if err := readInto("/dev/zero", buf); err != nil {
				return err
			}
			if !bytes.Equal(buf, make([]byte, 4)) {
				return fmt.Errorf("read %v", buf)
			}
			return nil
		}},
		{"dev-full", func() error {
			err := os.WriteFile("/dev/full", []byte("x"), 0)
			if !errors.Is(err, unix.ENOSPC) {
				return fmt.Errorf("write to /dev/full: %v, want ENOSPC", err)
			}
			return nil
		}},
		{"dev-urandom", func() error { return readInto("/dev/urandom", make([]byte, 16)) }},
		{"dev-links", func() error {
			for name, want := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/ptmx": "pts/ptmx", "/dev/core": "/proc/kcore"} {
				if got, err := os.Readlink(name); got != want {
					return fmt.Errorf("%s -> %q (%v), want %q", name, got, err, want)
				}
			}
			return nil
		}},
		{"dev-pts", checkPts},
		{"dev-shm", func() error { return os.WriteFile("/dev/shm/x", []byte("x"), 0o600) }},
		{"dev-mqueue", func() error { return isFS("/dev/mqueue", mqueueMagic) }},
		{"cgroup-layout", func() error { return cgroupLayout(cfg) }},
		{"cgroup-ro", cgroupReadOnly},
	}
	if cfg.CgroupNS {
		cs = append(cs, check{"cgroup-limit", func() error {
			data, err := os.ReadFile(cfg.CgroupFile)
			if got := strings.TrimSpace(string(data)); got != cfg.CgroupLimit {
				return fmt.Errorf("%s = %q (%v), want %q", cfg.CgroupFile, got, err, cfg.CgroupLimit)
			}
			return nil
		}})
	}
	if cfg.MovedProc != "" {
		cs = append(cs, check{"moved-proc-masked", func() error { return movedProcMasked(cfg.MovedProc) }})
	}
	if cfg.Privileged {
		return append(cs,
			check{"sys-rw", func() error { return unix.Access("/sys/kernel", unix.W_OK) }},
			check{"timer-list-unmasked", func() error { return notMasked("/proc/timer_list") }},
		)
	}
	cs = append(cs,
		check{"masked-files-null", func() error {
			// This kernel may lack /proc/kcore; each masked file that
			// exists must be the null device and read empty.
			found := 0
			for _, p := range DefaultMaskedPaths {
				var st unix.Stat_t
				if unix.Stat(p, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
					continue
				}
				found++
				data, err := os.ReadFile(p)
				if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 || len(data) != 0 || err != nil {
					return fmt.Errorf("%s: mode %o rdev %d:%d, read %d bytes, %v", p, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), len(data), err)
				}
			}
			if found == 0 {
				return errors.New("no masked file exists on this kernel")
			}
			return nil
		}},
		check{"masked-dirs-empty", func() error {
			for _, p := range DefaultMaskedPaths {
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					if entries, err := os.ReadDir(p); err != nil || len(entries) != 0 {
						return fmt.Errorf("%s: %d entries, %v", p, len(entries), err)
					}
				}
			}
			return nil
		}},
		check{"proc-sys-ro", func() error {
			// Opening for writing is enough: the mount refuses before the sysctl sees anything.
			f, err := os.OpenFile("/proc/sys/kernel/hostname", os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			if !errors.Is(err, unix.EROFS) {
				return fmt.Errorf("open for write: %v, want EROFS", err)
			}
			return nil
		}},
		check{"sys-ro", func() error {
			if err := unix.Access("/sys/kernel", unix.W_OK); !errors.Is(err, unix.EROFS) {
				return fmt.Errorf("access(W_OK): %v, want EROFS", err)
			}
			return nil
		}},
	)
	if cfg.ReadOnly {
		cs = append(cs, check{"root-ro", func() error {
			if err := os.WriteFile("/tmp/x", nil, 0o600); !errors.Is(err, unix.EROFS) {
				return fmt.Errorf("write /tmp/x: %v, want EROFS", err)
			}
			return nil
		}})
	} else {
		cs = append(cs, check{"root-rw", func() error { return os.WriteFile("/tmp/x", nil, 0o600) }})
	}
	if hasVolume(cfg) {
		cs = append(cs, check{"volume", func() error {
			data, err := os.ReadFile("/data/hello")
			if string(data) != "from the host\n" {
				return fmt.Errorf("/data/hello = %q, %v", data, err)
			}
			// The volume was asked for read-only (MS_BIND|MS_RDONLY).
			if err := os.WriteFile("/data/x", nil, 0o600); !errors.Is(err, unix.EROFS) {
				return fmt.Errorf("write /data/x: %v, want EROFS", err)
			}
			return nil
		}})
	}
	if len(cfg.Devices) > 0 {
		cs = append(cs, check{"devices", func() error {
			for _, d := range cfg.Devices {
				var st unix.Stat_t
				if err := unix.Lstat(d.Path, &st); err != nil {
					return err
				}
				if st.Mode != d.Mode || st.Rdev != unix.Mkdev(d.Major, d.Minor) || st.Uid != d.UID || st.Gid != d.GID {
					return fmt.Errorf("%s: mode %o rdev %d:%d owner %d:%d, want %o %d:%d %d:%d", d.Path, st.Mode,
						unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Uid, st.Gid, d.Mode, d.Major, d.Minor, d.UID, d.GID)
				}
			}
			return nil
		}})
	}
	return cs
}

// movedProcMasked checks the masks and read-only paths on the container's
// proc mount at dir, where a rename moved it: /proc/keys (or timer_list)
// is /dev/null there, and /proc/sys read-only.
func movedProcMasked(dir string) error {
	if err := isFS(dir, unix.PROC_SUPER_MAGIC); err != nil {
		return err
	}
	masked := 0
	for _, name := range []string{"keys", "timer_list"} {
		var st unix.Stat_t
		if err := unix.Stat(dir+"/"+name, &st); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			return fmt.Errorf("%s/%s is not masked: mode %o", dir, name, st.Mode)
		}
		masked++
	}
	if masked == 0 {
		return fmt.Errorf("neither %s/keys nor %s/timer_list exists", dir, dir)
	}
	f, err := os.OpenFile(dir+"/sys/kernel/hostname", os.O_WRONLY, 0)
	if err == nil {
		f.Close()
	}
	if !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("open %s/sys/kernel/hostname for write: %v, want EROFS", dir, err)
	}
	return nil
}

// cgroupLayout checks that /sys/fs/cgroup looks like the host's: one
// cgroup2 mount (v2), or the host's directory names with cgroup mounts (v1).
func cgroupLayout(cfg insideConfig) error {
	if cfg.CgroupMode == "v2" {
		return isFS("/sys/fs/cgroup", unix.CGROUP2_SUPER_MAGIC)
	}
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, cfg.CgroupNames) {
		return fmt.Errorf("/sys/fs/cgroup holds %v, the host's %v", names, cfg.CgroupNames)
	}
	return isFS("/sys/fs/cgroup/memory", unix.CGROUP_SUPER_MAGIC)
}

// cgroupReadOnly checks that the container can neither create a cgroup nor
// move a process: both fail with EROFS, before the cgroup code is asked.
func cgroupReadOnly() error {
	dir := "/sys/fs/cgroup"
	if _, err := os.Stat(dir + "/memory"); err == nil {
		dir += "/memory" // v1
	}
	if err := os.Mkdir(dir+"/minictr-x", 0o755); !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("mkdir in %s: %v, want EROFS", dir, err)
	}
	f, err := os.OpenFile(dir+"/cgroup.procs", os.O_WRONLY, 0)
	if err == nil {
		f.Close()
	}
	if !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("open %s/cgroup.procs for write: %v, want EROFS", dir, err)
	}
	return nil
}

func readInto(path string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.ReadFull(f, buf)
	return err
}

func isFS(path string, magic int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	if st.Type != magic {
		return fmt.Errorf("%s: filesystem type %#x, want %#x", path, st.Type, magic)
	}
	return nil
}

// mqueueMagic is MQUEUE_MAGIC from linux/magic.h.
const mqueueMagic = 0x19800202

// notMasked checks that path is the real proc file, not /dev/null.
func notMasked(path string) error {
	if isFS(path, unix.PROC_SUPER_MAGIC) != nil {
		return fmt.Errorf("%s is not on proc", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR {
		return fmt.Errorf("%s is a device (masked by /dev/null)", path)
	}
	return nil
}

// checkPts opens a pseudo-terminal pair on the new devpts instance. Its
// numbering starts at 0: the host's terminals are not there.
func checkPts() error {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer ptmx.Close()
	var unlock int32
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, ptmx.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		return fmt.Errorf("unlockpt: %w", errno)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("first pty is %d, want 0 (a new devpts instance)", n)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	return pts.Close()
}

// runInside re-executes the test binary as "chroot-inside" in new
// namespaces and returns its check results. It fails the test if the host's
// mount table changes while the child runs or after it exits.
//
// With cfg.CgroupNS, moveIn is called with the child's PID before the child
// is told to go on.
func runInside(t *testing.T, cfg insideConfig, attr *syscall.SysProcAttr, moveIn func(pid int)) (results map[string]string, stderr string) {
	t.Helper()
	return runPaused(t, cfg, attr, moveIn, nil)
}

// runPaused is runInside for a cfg with PauseAt: once the child says it
// paused there, atPause runs, then the child goes on.
func runPaused(t *testing.T, cfg insideConfig, attr *syscall.SysProcAttr, moveIn func(pid int), atPause func()) (results map[string]string, stderr string) {
	t.Helper()
	if cfg.Cgroups == nil { // a test that gives its own layout also gives its mode
		cfg.Cgroups = hostCgroups(t)
		cfg.CgroupMode = testenv.CgroupMode()
	}
	if cfg.CgroupMode == "v1" {
		entries, err := os.ReadDir("/sys/fs/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			cfg.CgroupNames = append(cfg.CgroupNames, e.Name())
		}
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := mountTable(t)
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"chroot-inside"}
	cmd.Env = append(os.Environ(), "CHROOT_TEST_CONFIG="+string(data))
	cmd.SysProcAttr = attr
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if cfg.CgroupNS {
		moveIn(cmd.Process.Pid)
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	out := bufio.NewScanner(stdout)
	if cfg.PauseAt != "" {
		if !out.Scan() || out.Text() != "paused "+cfg.PauseAt {
			stdin.Close()
			_ = cmd.Wait()
			t.Fatalf("child did not pause at %q: %q\n%s", cfg.PauseAt, out.Text(), errBuf.String())
		}
		atPause()
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	if !out.Scan() || out.Text() != "ready" {
		stdin.Close()
		_ = cmd.Wait()
		t.Fatalf("child did not get ready: %q\n%s", out.Text(), errBuf.String())
	}
	if during := mountTable(t); !slices.Equal(before, during) {
		t.Errorf("host mount table changed while the container runs:\nbefore %v\nduring %v", before, during)
	}
	stdin.Close()
	results = map[string]string{}
	for out.Scan() {
		status, rest, _ := strings.Cut(out.Text(), " ")
		name, why, _ := strings.Cut(rest, ": ")
		results[name] = status
		if status != "ok" {
			t.Errorf("check %s failed: %s", name, why)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("child: %v\n%s", err, errBuf.String())
	}
	if after := mountTable(t); !slices.Equal(before, after) {
		t.Errorf("host mount table changed:\nbefore %v\nafter  %v", before, after)
	}
	return results, errBuf.String()
}

// hostCgroups reads the host's cgroup layout and turns the hierarchies a
// container sees into Config.Cgroups, as the engine does. (A test may
// compose two stages; the stages themselves never import each other.)
func hostCgroups(t *testing.T) []CgroupMount {
	t.Helper()
	l, err := cgroups.DetectLayout()
	if err != nil {
		t.Fatal(err)
	}
	var ms []CgroupMount
	for _, h := range l.Visible() {
		ms = append(ms, CgroupMount(h))
	}
	return ms
}

// mountTable lists the host's mount points, sorted.
func mountTable(t *testing.T) []string {
	ms, err := procfs.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	// Other packages' tests, running meanwhile, mount scratch filesystems in
	// their own temporary directories: those are not ours to judge. Ours
	// (named after this test) and everything outside the temporary
	// directory are.
	tmp := os.TempDir() + "/"
	ours, _, _ := strings.Cut(t.Name(), "/")
	var out []string
	for _, m := range ms {
		if strings.HasPrefix(m.Point, tmp) && !strings.Contains(m.Point, ours) {
			continue
		}
		out = append(out, m.Point)
	}
	slices.Sort(out)
	return out
}

func wantChecks(t *testing.T, results map[string]string, names ...string) {
	t.Helper()
	for _, n := range names {
		if results[n] != "ok" {
			t.Errorf("check %s: %q, want ok", n, results[n])
		}
	}
}

func busyboxRootfs(t *testing.T) string {
	t.Helper()
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := testenv.BusyboxRootfs(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

var newNS = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}

func TestSetup(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	rootfs := busyboxRootfs(t)
	results, stderr := runInside(t, insideConfig{Rootfs: rootfs}, newNS, nil)
	t.Logf("trace (the --explain view):\n%s", stderr)
	wantChecks(t, results, "pid1", "rootfs-only", "old-root-gone", "dev-null", "dev-zero", "dev-full",
		"dev-urandom", "dev-links", "dev-pts", "dev-shm", "dev-mqueue", "masked-files-null",
		"masked-dirs-empty", "proc-sys-ro", "sys-ro", "root-rw", "cgroup-layout", "cgroup-ro")
	// The rootfs itself gained no mounts and no /dev nodes on the host side.
	if entries, _ := os.ReadDir(filepath.Join(rootfs, "dev")); len(entries) != 0 {
		t.Errorf("host sees %d entries in rootfs/dev", len(entries))
	}
}

// TestSetupCgroupV2Layout runs the pure v2 path on any host: the engine
// hands over one unified hierarchy at /sys/fs/cgroup, and the container
// gets a cgroup2 mount there, read-only, with no tmpfs under it. (On a
// hybrid host this mounts its controller-less v2 hierarchy.)
func TestSetupCgroupV2Layout(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	if testenv.CgroupMode() == "" {
		t.Skip("the host mounts no cgroup filesystem")
	}
	cfg := insideConfig{Rootfs: busyboxRootfs(t), CgroupMode: "v2",
		Cgroups: []CgroupMount{{Point: "/sys/fs/cgroup", Type: "cgroup2", Root: "/"}}}
	results, stderr := runInside(t, cfg, newNS, nil)
	wantChecks(t, results, "cgroup-layout", "cgroup-ro")
	if want := "mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup2 " + cfg.Rootfs + "/sys/fs/cgroup\n"; !strings.Contains(stderr, want) {
		t.Errorf("trace lacks %q:\n%s", want, stderr)
	}
	if strings.Contains(stderr, " tmpfs "+cfg.Rootfs+"/sys/fs/cgroup\n") {
		t.Errorf("a tmpfs at /sys/fs/cgroup on a v2 layout:\n%s", stderr)
	}
}

// TestSetupOverlayRoot builds the root from a mount given as data (a
// snapshot's overlay, Target "/"): the container sees the merged view and
// writes to the upper directory, and the host's mount table never changes.
func TestSetupOverlayRoot(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	lower := busyboxRootfs(t)
	base := t.TempDir()
	upper, work, rootfs := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "rootfs")
	for _, d := range []string{upper, work, rootfs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := insideConfig{Rootfs: rootfs, Mounts: []Mount{{Source: "overlay", Target: "/", Type: "overlay",
		Data: "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work}}}
	results, stderr := runInside(t, cfg, newNS, nil)
	wantChecks(t, results, "pid1", "rootfs-only", "old-root-gone", "root-rw", "dev-null")
	if !strings.Contains(stderr, "[chroot] mount overlay on "+rootfs+"\n") {
		t.Errorf("trace does not show the overlay mount on %s:\n%s", rootfs, stderr)
	}
	if _, err := os.Stat(filepath.Join(upper, "tmp/x")); err != nil {
		t.Errorf("the container's write did not land in the upper directory: %v", err)
	}
	if entries, _ := os.ReadDir(rootfs); len(entries) != 0 {
		t.Errorf("the host sees %d entries in the mount point: the overlay was mounted on the host", len(entries))
	}
}

// TestMountDataManyLayers stacks more layers than mount(2) options can name
// in one page, which the new mount API (lowerdir+, Linux 6.8) handles; an
// older kernel gets an error that says so, and no mount.
func TestMountDataManyLayers(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	base := t.TempDir()
	var lowers []string
	for i := range 40 {
		l := filepath.Join(base, fmt.Sprintf("layer-%03d-%s", i, strings.Repeat("x", 80)))
		if err := os.MkdirAll(l, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		lowers = append([]string{l}, lowers...) // top first
	}
	upper, work, target := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "rootfs")
	for _, d := range []string{upper, work, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(data) < os.Getpagesize() {
		t.Fatalf("options fit in a page: the test does not test the long path")
	}
	rec := &trace.Recorder{}
	s := &setup{t: rec}
	tf, err := resolve.OpenRoot(target)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	err = s.mountData("overlay", tf, "overlay", 0, data)
	if err == nil {
		defer unix.Unmount(target, unix.MNT_DETACH)
	}
	if !testenv.KernelAtLeast(6, 8) {
		if err == nil || !strings.Contains(err.Error(), "lowerdir+ needs Linux 6.8") {
			t.Fatalf("mountData on Linux before 6.8 = %v, want the lowerdir+ error", err)
		}
		if slices.Contains(mountTable(t), target) {
			t.Errorf("a failed mountData left a mount")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 40 {
		t.Errorf("merged view holds %d files, want one from each of the 40 layers", len(entries))
	}
	if len(rec.Steps) == 0 || !strings.Contains(rec.Steps[0].Action, "lowerdir+") {
		t.Errorf("trace %+v does not say it used lowerdir+", rec.Steps)
	}
}

func TestSetupReadOnlyWithVolume(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	rootfs := busyboxRootfs(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A hostile image points /data at the host's /etc: the volume must
	// still land inside the rootfs.
	if err := os.Symlink("/etc", filepath.Join(rootfs, "data")); err != nil {
		t.Fatal(err)
	}
	cfg := insideConfig{Rootfs: rootfs, ReadOnly: true,
		Mounts: []Mount{{Source: vol, Target: "/data", Flags: unix.MS_BIND | unix.MS_RDONLY}}}
	results, _ := runInside(t, cfg, newNS, nil)
	wantChecks(t, results, "root-ro", "volume", "masked-files-null", "proc-sys-ro")
	if _, err := os.Stat(filepath.Join(rootfs, "etc/hello")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the volume was not mounted on the symlink's target inside the rootfs")
	}
}

func TestSetupPrivileged(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	results, _ := runInside(t, insideConfig{Rootfs: busyboxRootfs(t), Privileged: true}, newNS, nil)
	wantChecks(t, results, "pid1", "sys-rw", "timer-list-unmasked", "dev-null", "cgroup-layout", "cgroup-ro")
}

// TestSetupUserNamespace runs Setup where the kernel refuses mknod and a new
// sysfs, to exercise the bind-mount fallbacks.
func TestSetupUserNamespace(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	attr := &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		// Without an explicit uid 0 the child loses its capabilities at exec.
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0},
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
	}
	results, stderr := runInside(t, insideConfig{Rootfs: busyboxRootfs(t)}, attr, nil)
	t.Logf("trace:\n%s", stderr)
	wantChecks(t, results, "pid1", "dev-null", "dev-zero", "dev-pts", "masked-files-null", "proc-sys-ro", "sys-ro", "cgroup-ro")
	for _, want := range []string{"bind-mount the host's node", "sysfs refused", "mount refused (EPERM, user namespace without a cgroup namespace)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("trace lacks %q:\n%s", want, stderr)
		}
	}
}

// TestSetupCgroupNamespace runs Setup the way the engine's init does: in a
// cgroup with a memory limit and in a cgroup namespace of its own. The
// container must read its own limit at the usual place, read-only.
func TestSetupCgroupNamespace(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	const limit = "67108864" // 64 MiB
	var dir, limitFile, inside string
	switch testenv.CgroupMode() {
	case "v1":
		dir = "/sys/fs/cgroup/memory/minictr-chroot-" + testenv.UniqueID()
		limitFile, inside = "memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	case "v2":
		dir = "/sys/fs/cgroup/minictr-chroot-" + testenv.UniqueID()
		limitFile, inside = "memory.max", "/sys/fs/cgroup/memory.max"
	default:
		t.Skip("the host mounts no cgroup filesystem")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Error(err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(limit), 0); err != nil {
		t.Fatal(err) // on v2: is the memory controller enabled in the root's cgroup.subtree_control?
	}
	moveIn := func(pid int) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
	cfg := insideConfig{Rootfs: busyboxRootfs(t), CgroupNS: true, CgroupFile: inside, CgroupLimit: limit}
	results, stderr := runInside(t, cfg, newNS, moveIn)
	wantChecks(t, results, "cgroup-limit", "cgroup-layout", "cgroup-ro", "pid1")
	// The trace shows each cgroup mount as the command that makes it.
	want := "mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup2 " + cfg.Rootfs + "/sys/fs/cgroup"
	if testenv.CgroupMode() == "v1" {
		want = "mount -t cgroup -o ro,nosuid,nodev,noexec,memory cgroup " + cfg.Rootfs + "/sys/fs/cgroup/memory"
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("trace lacks %q:\n%s", want, stderr)
	}
}

// TestSetupRefusesHostNamespace checks the guard that keeps Setup from
// pivoting the host's root, without calling Setup itself.
func TestSetupRefusesHostNamespace(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	init, err2 := os.Readlink("/proc/1/ns/mnt")
	if err1 != nil || err2 != nil || self != init {
		t.Skip("the test does not run in PID 1's mount namespace")
	}
	if err := ownMountNamespace(); err == nil || !strings.Contains(err.Error(), "CLONE_NEWNS") {
		t.Errorf("ownMountNamespace() = %v, want a refusal", err)
	}
}

// TestSetupErrorNamesPath checks that a failing step names the syscall and
// the path, so the reader finds the man page: a missing rootfs fails where
// Setup opens it (its one lookup by name), a failing mount names mount(2)
// and the path of its target.
func TestSetupErrorNamesPath(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	rootfs := t.TempDir()
	for _, tc := range []struct {
		cfg  insideConfig
		want string
	}{
		{insideConfig{Rootfs: "/nonexistent-minictr-rootfs"},
			"FAIL setup: opening the rootfs: open /nonexistent-minictr-rootfs: no such file or directory"},
		{insideConfig{Rootfs: rootfs, Cgroups: []CgroupMount{}, Mounts: []Mount{{Source: "none", Target: "/data", Type: "minictr-nonexistent-fs"}}},
			"FAIL setup: mounting volumes: none on /data: mount " + rootfs + "/data: no such device"},
	} {
		data, err := json.Marshal(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/proc/self/exe")
		cmd.Args = []string{"chroot-inside"}
		cmd.Env = append(os.Environ(), "CHROOT_TEST_CONFIG="+string(data))
		cmd.SysProcAttr = newNS
		out, _ := cmd.Output()
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("got %q\nwant %q", got, tc.want)
		}
	}
}
