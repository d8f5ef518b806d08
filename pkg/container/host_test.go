package container

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/snapshot"
	"github.com/minictr/minictr/pkg/trace"
)

// TestProbeFailureIsNotKept: a probe that cannot set itself up (the root's
// filesystem is full, here a tmpfs with one inode left, enough for the
// probe's directory but not for what it makes inside) is an error, and
// nothing is kept in the run root; once there is room, the definite answer
// is kept. A full disk used to be kept as "copy" until the next boot.
func TestProbeFailureIsNotKept(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	root, runRoot := t.TempDir(), t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=1m,nr_inodes=32"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	must(t, os.Mkdir(filepath.Join(root, "containers"), 0o700))
	var filler []string
	for i := 0; ; i++ {
		p := filepath.Join(root, "filler"+strconv.Itoa(i))
		err := os.WriteFile(p, nil, 0o600)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		must(t, err)
		filler = append(filler, p)
	}
	must(t, os.Remove(filler[0])) // one inode: the probe's own directory
	cache := filepath.Join(runRoot, factsFile)

	f, err := hostSnapshotter(root, runRoot, &trace.Recorder{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("probe on a full disk = %+v, %v; want ENOSPC", f, err)
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed probe was kept in %s (%v)", cache, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "containers")); len(entries) != 0 {
		t.Errorf("the failed probe left %v", entries)
	}

	for _, p := range filler[1:] {
		must(t, os.Remove(p))
	}
	f, err = hostSnapshotter(root, runRoot, &trace.Recorder{})
	if err != nil || f.Kind != snapshot.Overlay {
		t.Fatalf("probe with room = %+v, %v; want overlay (tmpfs takes one)", f, err)
	}
	if data, err := os.ReadFile(cache); err != nil || !strings.Contains(string(data), `"kind":"overlay"`) {
		t.Errorf("the definite answer was not kept: %s, %v", data, err)
	}
}
