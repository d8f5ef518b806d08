// Package testenv is what every minictr test shares: the testscript
// conditions ([root], [cgroup1], [cgroup2]), a busybox root filesystem made
// from the host's static busybox, per-script unique names and state
// directories, and a leak check around a whole test binary.
package testenv

import (
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rogpeppe/go-internal/testscript"
)

// Busybox is where Debian's busybox-static puts its binary.
const Busybox = "/bin/busybox"

// CgroupMode reports how the host mounts cgroups: "v2" for a pure unified
// hierarchy, "v1" for v1 controllers (with or without a v2 hybrid mount),
// or "" when it cannot tell.
func CgroupMode() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "v2"
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		return "v1"
	}
	return ""
}

// IsRoot reports whether the test runs as root.
func IsRoot() bool { return os.Geteuid() == 0 }

// SkipIfNotRoot skips t with a reason unless it runs as root.
func SkipIfNotRoot(t testing.TB) {
	t.Helper()
	if !IsRoot() {
		t.Skip("needs root: creates namespaces, mounts or cgroups")
	}
}

// Condition answers the minictr testscript conditions. An unknown condition
// is an error, so that a typo never silently skips a check.
func Condition(cond string) (bool, error) {
	switch cond {
	case "root":
		return IsRoot(), nil
	case "cgroup1":
		return CgroupMode() == "v1", nil
	case "cgroup2":
		return CgroupMode() == "v2", nil
	case "busybox":
		return StaticBusybox() == nil, nil
	}
	// [kernel:M.N]: the running kernel is M.N or newer.
	if v, ok := strings.CutPrefix(cond, "kernel:"); ok {
		var major, minor int
		if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
			return false, fmt.Errorf("condition %q: want kernel:MAJOR.MINOR", cond)
		}
		return KernelAtLeast(major, minor), nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// StaticBusybox returns nil when the host has a statically linked busybox,
// the one a root filesystem can use without any library. Every script's
// Setup asks: the answer is worked out once.
func StaticBusybox() error { return staticBusybox() }

var staticBusybox = sync.OnceValue(checkStaticBusybox)

func checkStaticBusybox() error {
	f, err := elf.Open(Busybox)
	if err != nil {
		return fmt.Errorf("%s: %w (install busybox-static)", Busybox, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (install busybox-static)", Busybox)
		}
	}
	return nil
}

// UniqueID returns a short random hex string for host-global names
// (cgroups, links, tables) so that parallel tests never collide.
func UniqueID() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// BusyboxRootfs fills dir with a minimal root filesystem: the static
// busybox, a symlink per applet, /etc/passwd and /etc/group with root,
// nobody and a "student" user, and the empty mount points a container needs.
func BusyboxRootfs(dir string) error {
	if err := StaticBusybox(); err != nil {
		return err
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home/student", "var", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(dir, "home/student"), 1000, 1000); err != nil && IsRoot() {
		return err
	}
	data, err := os.ReadFile(Busybox)
	if err != nil {
		return err
	}
	if err := writeExecutable(filepath.Join(dir, "bin/busybox"), data); err != nil {
		return err
	}
	applets, err := busyboxApplets()
	if err != nil {
		return err
	}
	for _, applet := range applets {
		if filepath.Base(applet) == "busybox" {
			continue
		}
		link := filepath.Join(dir, applet)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("/bin/busybox", link); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
			"student:x:1000:1000:Student:/home/student:/bin/sh\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group": "root:x:0:\n" +
			"student:x:1000:\n" +
			"audio:x:29:student\n" +
			"video:x:44:student\n" +
			"nogroup:x:65534:\n",
		"etc/hostname": "busybox\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeExecutable writes a program that another goroutine may run at once.
// Scripts run in parallel in this process, and a fork made by one while
// the file is open for writing holds that descriptor until its exec: an
// exec of the new program in that window fails with ETXTBSY ("text file
// busy", golang.org/issue/22315). Holding syscall.ForkLock for writing
// keeps every fork of this process out of the window.
func writeExecutable(name string, data []byte) error {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	return os.WriteFile(name, data, 0o755)
}

// busyboxApplets lists the applets' paths (bin/sh, usr/bin/tr, ...), asked
// of busybox once.
var busyboxApplets = sync.OnceValues(func() ([]string, error) {
	out, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	return strings.Fields(string(out)), nil
})

// Setup prepares a testscript environment: $ID (unique per script),
// $MINICTR_ROOT and $MINICTR_RUN_ROOT (private state directories) and, when
// a static busybox exists, $ROOTFS (a fresh busybox root filesystem).
func Setup(env *testscript.Env) error {
	id := UniqueID()
	env.Setenv("ID", id)
	state := filepath.Join(env.WorkDir, ".minictr")
	env.Setenv("MINICTR_ROOT", filepath.Join(state, "root"))
	env.Setenv("MINICTR_RUN_ROOT", filepath.Join(state, "run"))
	// A script that mounts (or runs a container that mounts) and then fails
	// halfway must not leak the mount: detach whatever is left under $WORK.
	env.Defer(func() { UnmountUnder(env.WorkDir) })
	if StaticBusybox() == nil {
		rootfs := filepath.Join(env.WorkDir, "rootfs")
		if err := BusyboxRootfs(rootfs); err != nil {
			return err
		}
		env.Setenv("ROOTFS", rootfs)
	}
	return nil
}

// Params returns the testscript parameters every minictr script uses:
// scripts in dir, Setup, Condition, and extra commands.
func Params(dir string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		Setup:               Setup,
		Condition:           Condition,
		RequireExplicitExec: true,
	}
}

// UnmountUnder detaches every mount point at or below dir, deepest first.
func UnmountUnder(dir string) {
	var points []string
	for p := range mountPoints() {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = unix.Unmount(p, unix.MNT_DETACH)
	}
}

// KernelAtLeast reports whether the running kernel is major.minor or newer.
func KernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	ok, _ := releaseAtLeast(unix.ByteSliceToString(u.Release[:]), major, minor)
	return ok
}

// releaseAtLeast compares a kernel release such as "6.1.0-56-amd64" with
// major.minor.
func releaseAtLeast(release string, major, minor int) (bool, error) {
	var maj, min int
	if _, err := fmt.Sscanf(strings.TrimSpace(release), "%d.%d", &maj, &min); err != nil {
		return false, fmt.Errorf("kernel release %q: %w", release, err)
	}
	return maj > major || maj == major && min >= minor, nil
}
