package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Leases keep an image's layers on disk while a container uses them, as
// containerd's leases do: leases/<container ID> names the image ID. A
// container takes its lease before anything is made of the image, under
// the store lock, so an rmi or prune either runs first (and the start fails
// cleanly: the image is gone) or sees the lease (and leaves the image).
// Whether a lease still holds is the engine's to say (Options.LeaseAlive):
// the store knows nothing of processes.

// leaseDir is where lease records live.
func (s *Store) leaseDir() string { return filepath.Join(s.root, "leases") }

// Lease records that the container containerID uses the image imageID. It
// fails with ErrNotFound when the image is gone. The returned release
// drops the lease; it is idempotent.
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
	// A plain write: every reader of leases holds the lock we hold, and a
	// lease cut short by a kill is named for its container, whose
	// release (or reclaim) removes it.
	if err := os.WriteFile(filepath.Join(s.leaseDir(), containerID), []byte(imageID+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("leasing image: %w", err)
	}
	s.opts.Tracer.Step("store", fmt.Sprintf("lease %s for container %.12s", imageID, containerID),
		"echo "+imageID+" > "+filepath.Join(s.leaseDir(), containerID))
	return func() error { return s.Release(containerID) }, nil
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
// Options.InUse says so, or a live lease names it. Leases whose container
// is dead are deleted on the way.
func (s *Store) inUse(imageID string) bool {
	if s.opts.InUse != nil && s.opts.InUse(imageID) {
		return true
	}
	entries, _ := os.ReadDir(s.leaseDir())
	used := false
	for _, e := range entries {
		id := e.Name()
		if s.opts.LeaseAlive != nil && !s.opts.LeaseAlive(id) {
			_ = s.Release(id)
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.leaseDir(), id))
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil || strings.TrimSpace(string(data)) == imageID {
			used = true // an unreadable lease counts: keeping an image is the safe mistake
		}
	}
	return used
}
