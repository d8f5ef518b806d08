package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/minictr/minictr/internal/flock"
)

// Leases keep an image's layers on disk while a container uses them, as
// containerd's leases do: leases/<container ID> names the image ID. A
// container takes its lease before anything is made of the image, under
// the store lock, so an rmi or prune either runs first (and the start fails
// cleanly: the image is gone) or sees the lease (and leaves the image).
// The holder keeps an flock(2) on the lease file for as long as the
// container lives (internal/flock); a lease whose lock can be taken was
// left by a holder that is gone, and rmi and prune delete it. So the store
// knows nothing of processes, and the answer is the same for every
// minictr sharing the store, whatever its run root or PID namespace.

// leaseDir is where lease records live.
func (s *Store) leaseDir() string { return filepath.Join(s.root, "leases") }

// Lease records that the container containerID uses the image imageID. It
// fails with ErrNotFound when the image is gone. The lease holds while
// this process lives, until the returned release drops it (it is
// idempotent); once the process is gone, however it ended, it no longer
// holds.
func (s *Store) Lease(ctx context.Context, containerID, imageID string) (release func() error, err error) {
	if containerID == "" || strings.ContainsAny(containerID, "/.") {
		return nil, fmt.Errorf("lease: invalid container ID %q", containerID)
	}
	unlock, err := s.lock(ctx, "lease")
	if err != nil {
		return nil, err
	}
	defer unlock()
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	found := false
	for _, rec := range ix.Images {
		found = found || rec.ID == imageID
	}
	if !found {
		return nil, fmt.Errorf("%s: %w", imageID, ErrNotFound)
	}
	if err := os.MkdirAll(s.leaseDir(), 0o700); err != nil {
		return nil, fmt.Errorf("leasing image: %w", err)
	}
	// Created locked, under the store lock that every reader of leases
	// takes too: no one sees it unheld. A plain write: a lease cut short
	// by a kill is not held, and goes.
	path := filepath.Join(s.leaseDir(), containerID)
	l, err := flock.Create(path, 0o600)
	if err == nil {
		if _, err = l.File().WriteString(imageID + "\n"); err != nil {
			os.Remove(path)
			l.Unlock()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("leasing image: %w", err)
	}
	s.opts.Tracer.Step("store", fmt.Sprintf("lease %s for container %.12s, held by flock(2) while it lives", imageID, containerID),
		"echo "+imageID+" > "+path+"; flock "+path)
	var once sync.Once
	return func() error {
		err := s.Release(containerID)
		once.Do(func() { l.Unlock() }) // after the removal: no one deletes it meanwhile
		return err
	}, nil
}

// Release drops the lease of the container containerID, if it has one.
// It needs no lock: a lease only ever keeps an image, so removing one can
// never make a decision made under the lock wrong.
func (s *Store) Release(containerID string) error {
	err := os.Remove(filepath.Join(s.leaseDir(), containerID))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("releasing image lease: %w", err)
	}
	return nil
}

// inUse reports, under the store lock, whether a container uses the image:
// Options.InUse says so, or a held lease names it. Leases no one holds
// are deleted on the way.
func (s *Store) inUse(imageID string) bool {
	if s.opts.InUse != nil && s.opts.InUse(imageID) {
		return true
	}
	entries, _ := os.ReadDir(s.leaseDir())
	used := false
	for _, e := range entries {
		id := e.Name()
		path := filepath.Join(s.leaseDir(), id)
		l, err := flock.Try(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // released meanwhile
		case err == nil:
			// Its holder is gone (an engine killed with SIGKILL).
			_ = s.Release(id)
			l.Unlock()
			continue
		case !errors.Is(err, flock.ErrLocked):
			used = true // a lease we cannot judge counts: keeping an image is the safe mistake
			continue
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil || strings.TrimSpace(string(data)) == imageID {
			used = true // an unreadable lease counts too
		}
	}
	return used
}
