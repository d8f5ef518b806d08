package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/minictr/minictr/internal/flock"
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
// a fact, not a guess: its owner holds an flock(2) on its directories for
// as long as it lives, and Reap can take it (see state.go); a container
// still starting is locked from its first record on and is left alone.
// Reap walks the run root, then the root, whose snapshots outlive a reboot
// that emptied the run root. Every command that changes state calls it
// first, so leftovers never pile up.
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
	return errors.Join(r.reapRunRoot(t), r.reapRoot(t))
}

// reapRunRoot reclaims the containers of <run-root>/containers whose
// state directory no one holds.
func (r reaper) reapRunRoot(t trace.Tracer) error {
	parent := filepath.Join(r.RunRoot, "containers")
	names, err := readDirNames(parent)
	errs := []error{err}
	for _, name := range names {
		dir := filepath.Join(parent, name)
		if strings.HasPrefix(name, creatingPrefix) {
			errs = append(errs, removeUnheld(dir))
			continue
		}
		l, err := flock.Try(dir)
		if err != nil {
			continue // held: alive (or gone meanwhile)
		}
		// A record we cannot read is left to a person; a directory
		// without one is a removal cut short.
		if _, err := readState(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.Unlock()
			continue
		}
		t.Step("engine", fmt.Sprintf("container %s was left by an engine that died: reclaiming it", stringid.Short(name)), "")
		if err := r.reclaim(name, true, nil, t); err != nil {
			errs = append(errs, fmt.Errorf("reclaiming container %s: %w", stringid.Short(name), err))
		}
		l.Unlock()
	}
	return errors.Join(errs...)
}

// reapRoot reclaims the snapshots of <root>/containers that no one holds
// and whose live state is not in this run root (reapRunRoot decided
// those): a run root emptied by a reboot, or another run root's container
// whose engine died. A container that is not removed automatically is
// kept: it is stopped, not garbage.
func (r reaper) reapRoot(t trace.Tracer) error {
	parent := filepath.Join(r.Root, "containers")
	names, err := readDirNames(parent)
	errs := []error{err}
	for _, name := range names {
		dir := filepath.Join(parent, name)
		if strings.HasPrefix(name, creatingPrefix) || strings.HasPrefix(name, probePrefix) {
			errs = append(errs, removeUnheld(dir))
			continue
		}
		if exists(filepath.Join(r.RunRoot, "containers", name)) {
			continue
		}
		l, err := flock.Try(dir)
		if err != nil {
			continue
		}
		rec, err := readRootRecord(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A removal cut short (the record went first), or an older
			// minictr's snapshot: no one holds it either way.
			rec = rootRecord{AutoRemove: true}
		case err != nil, !rec.AutoRemove:
			l.Unlock()
			continue
		}
		boot, _ := bootID()
		sameBoot := rec.BootID == "" || rec.BootID == boot
		why := "left by an engine that died"
		if !sameBoot {
			why = "left by a run that a reboot ended"
		}
		t.Step("engine", fmt.Sprintf("container %s was %s: reclaiming it", stringid.Short(name), why), "")
		if err := r.reclaim(name, sameBoot, l, t); err != nil {
			errs = append(errs, fmt.Errorf("reclaiming container %s: %w", stringid.Short(name), err))
		}
		l.Unlock()
	}
	return errors.Join(errs...)
}

// reclaim removes what the dead container id used, in the order Run's undo
// would: the cgroup first, and nothing more if that fails, since processes
// left in it may still use the snapshot; the lease after the snapshot, so
// the image outlives what was made of its layers; the state directory
// last, so a reclaim cut short is found again. After a reboot there is no
// cgroup to remove (sameBoot false). snap is the snapshot directory's lock
// when the caller holds it already.
func (r reaper) reclaim(id string, sameBoot bool, snap *flock.Lock, t trace.Tracer) error {
	if sameBoot {
		if err := r.destroyCgroup("minictr-"+id, t); err != nil {
			return fmt.Errorf("%w (its snapshot is kept: processes may still use it)", err)
		}
	}
	snapDir := filepath.Join(r.Root, "containers", id)
	if snap == nil {
		l, err := flock.Try(snapDir)
		switch {
		case errors.Is(err, flock.ErrLocked):
			return nil // another reaper is removing it: the next reap finishes
		case err == nil:
			defer l.Unlock()
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if exists(snapDir) {
		if err := snapshot.Remove(snapDir, t); err != nil {
			return err
		}
	}
	if r.Release != nil {
		if err := r.Release(id); err != nil {
			return err
		}
	}
	return removeState(r.RunRoot, id)
}

// removeUnheld removes dir if no one holds it: a record or a probe whose
// maker died before it was done.
func removeUnheld(dir string) error {
	l, err := flock.Try(dir)
	if err != nil {
		return nil
	}
	defer l.Unlock()
	return os.RemoveAll(dir)
}

// readDirNames lists dir, which need not exist (yet).
func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, err
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
