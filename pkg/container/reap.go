package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/minictr/minictr/internal/stringid"
	"github.com/minictr/minictr/pkg/cgroups"
	"github.com/minictr/minictr/pkg/snapshot"
	"github.com/minictr/minictr/pkg/trace"
)

// ReapOptions say where containers live and how to let go of their leases.
type ReapOptions struct {
	Root, RunRoot string
	// Release drops the lease a container held on its image (the image
	// store's); nil when there is no store to tell.
	Release func(containerID string) error
	// Layout is the host's cgroup layout, as the command read it once;
	// nil: read it when a dead container's cgroup is to be removed.
	Layout *cgroups.Layout
	Tracer trace.Tracer
}

// Reap removes what containers whose owner is gone (an engine killed with
// SIGKILL, a crash, a reboot) left behind: the lease on their image, their
// cgroups, snapshots and state directories. Whether a container is dead is
// a fact, not a guess: its state record names its owner by PID and start
// time, and that process no longer runs; a container still starting has
// its record already and is left alone. Every command that changes state
// calls it first, so leftovers never pile up. Each container is claimed by
// renaming its state directory, so two minictr reaping at once never
// remove the same one twice.
func Reap(o ReapOptions) error {
	// The layout is read only when there is a cgroup to remove: most
	// commands find nothing dead and read no kernel table for it.
	destroy := func(name string, t trace.Tracer) error {
		if o.Layout == nil {
			l, err := cgroupLayout(t)
			if err != nil {
				return err
			}
			o.Layout = l
		}
		return destroyCgroup(name, o.Layout, t)
	}
	return reaper{ReapOptions: o, destroyCgroup: destroy}.reap()
}

// reaper is Reap with its one host-global action replaceable, so that the
// logic runs in tests without root and without real cgroups.
type reaper struct {
	ReapOptions
	destroyCgroup func(name string, t trace.Tracer) error
}

func (r reaper) reap() error {
	t := trace.Or(r.Tracer)
	errs := []error{r.reapProbes()}
	parent := filepath.Join(r.RunRoot, "containers")
	entries, err := os.ReadDir(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.Join(errs...)
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		var id string
		switch {
		case strings.HasPrefix(name, removingPrefix):
			// A removal cut short: finish it.
			id = strings.TrimPrefix(name, removingPrefix)
		case strings.HasPrefix(name, creatingPrefix):
			// A record being written: garbage once its writer is gone.
			if owner, ok := parseOwned(name, creatingPrefix); ok && !owner.alive() {
				errs = append(errs, os.RemoveAll(filepath.Join(parent, name)))
			}
			continue
		default:
			if !dead(filepath.Join(parent, name)) {
				continue
			}
			// Claim it: of two reapers, one rename wins.
			if err := os.Rename(filepath.Join(parent, name), filepath.Join(parent, removingPrefix+name)); err != nil {
				continue
			}
			id = name
			t.Step("engine", fmt.Sprintf("container %s was left by an engine that died: reclaiming it", stringid.Short(id)), "")
		}
		if err := r.reclaim(id, t); err != nil {
			errs = append(errs, fmt.Errorf("reclaiming container %s: %w", stringid.Short(id), err))
		}
	}
	return errors.Join(errs...)
}

// reapProbes removes the directories of overlay probes whose engine died
// while probing.
func (r reaper) reapProbes() error {
	parent := filepath.Join(r.Root, "containers")
	entries, _ := os.ReadDir(parent)
	var errs []error
	for _, e := range entries {
		if owner, ok := parseOwned(e.Name(), probePrefix); ok && !owner.alive() {
			errs = append(errs, os.RemoveAll(filepath.Join(parent, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// dead reports whether a container's state directory belongs to nobody:
// its record names an owner that is gone. A directory without a record is
// one a minictr older than records-first left; an unreadable record is left
// to a person.
func dead(dir string) bool {
	s, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && !s.Owner.alive()
}

// reclaim removes what the claimed container id used, in the order Run's
// undo would: lease last but one, so the image outlives the snapshot made
// of its layers, and the state directory last, so a reclaim cut short is
// found again.
func (r reaper) reclaim(id string, t trace.Tracer) error {
	var errs []error
	errs = append(errs, r.destroyCgroup("minictr-"+id, t))
	if snapDir := filepath.Join(r.Root, "containers", id); exists(snapDir) {
		errs = append(errs, snapshot.Remove(snapDir, t))
	}
	if r.Release != nil {
		errs = append(errs, r.Release(id))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(r.RunRoot, "containers", removingPrefix+id))
}

// destroyCgroup removes the cgroup name in every hierarchy, if it exists.
func destroyCgroup(name string, layout *cgroups.Layout, t trace.Tracer) error {
	cg, err := cgroups.Load(name, layout, t)
	switch {
	case err == nil:
		return cg.Destroy()
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return err
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
