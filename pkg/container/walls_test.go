package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

// TestMain lets Run re-execute this test binary as the container's init.
func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"minictr": func() int {
		if !IsInit() {
			return 2
		}
		return InitMain()
	}})
}

// The engine's binary is out of reach while the init is still minictr:
// /proc/PID/exe of the waiting init is on a read-only overlayfs, so an
// open for writing fails with EROFS (by design; ETXTBSY would be luck),
// with or without O_TRUNC. The attack with the wall off is
// pkg/namespaces' TestExeWallOff, aimed at a copy: here the binary is this
// test's own.
func TestInitExeOutOfReach(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := testenv.BusyboxRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	checked := false
	testHookBeforeRelease = func(pid int) {
		checked = true
		exe := "/proc/" + strconv.Itoa(pid) + "/exe"
		var st unix.Statfs_t
		if err := unix.Statfs(exe, &st); err != nil {
			t.Error(err)
		} else if st.Type != unix.OVERLAYFS_SUPER_MAGIC || st.Flags&unix.ST_RDONLY == 0 {
			t.Errorf("the init runs from filesystem %#x, flags %#x: want a read-only overlayfs", st.Type, st.Flags)
		}
		for _, flags := range []int{os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC} {
			f, err := os.OpenFile(exe, flags, 0)
			if err == nil {
				f.Close()
			}
			if !errors.Is(err, syscall.EROFS) {
				t.Errorf("open %s with flags %#x: %v, want EROFS", exe, flags, err)
			}
		}
	}
	defer func() { testHookBeforeRelease = nil }()
	err := Run(context.Background(), RunOptions{
		Spec:    Spec{Rootfs: rootfs, Process: Process{Args: []string{"true"}}},
		Root:    filepath.Join(dir, "root"),
		RunRoot: filepath.Join(dir, "run"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("the hook never ran")
	}
}
