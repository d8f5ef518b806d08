package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/minictr/minictr/internal/stringid"
	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/image/layer"
	"github.com/minictr/minictr/pkg/trace"
)

// startGrace is how long a state directory without a state file may be
// young: a Run creates the directory a moment before it writes the file.
const startGrace = time.Minute

// Reap removes what containers of an engine that was killed (kill -9, a
// crash, a reboot) left behind: their cgroups, snapshots and state
// directories. A container counts as dead when the process in its state
// file is gone. Run calls it first, so leftovers never pile up. layout is
// the host's cgroup layout, as the command read it.
func Reap(root, runRoot string, layout *cgroups.Layout, t trace.Tracer) error {
	t = trace.Or(t)
	entries, err := os.ReadDir(filepath.Join(runRoot, "containers"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		id := e.Name()
		if !stale(filepath.Join(runRoot, "containers", id)) {
			continue
		}
		t.Step("engine", fmt.Sprintf("container %s was left by an engine that died: reclaiming it", stringid.Short(id)), "")
		if err := reap(root, runRoot, id, layout, t); err != nil {
			errs = append(errs, fmt.Errorf("reclaiming container %s: %w", stringid.Short(id), err))
		}
	}
	return errors.Join(errs...)
}

// stale reports whether a container's state directory belongs to nobody.
func stale(dir string) bool {
	s, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		fi, err := os.Stat(dir)
		return err == nil && time.Since(fi.ModTime()) > startGrace
	}
	if err != nil {
		return false // unreadable: leave it to a person
	}
	return !s.alive()
}

func reap(root, runRoot, id string, layout *cgroups.Layout, t trace.Tracer) error {
	var errs []error
	cg, err := cgroups.Load("minictr-"+id, layout, t)
	switch {
	case err == nil:
		errs = append(errs, cg.Destroy())
	case !errors.Is(err, fs.ErrNotExist):
		errs = append(errs, err)
	}
	if snapDir := filepath.Join(root, "containers", id); exists(snapDir) {
		errs = append(errs, layer.Load(snapDir, t).Remove())
	}
	errs = append(errs, os.RemoveAll(filepath.Join(runRoot, "containers", id)))
	return errors.Join(errs...)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
