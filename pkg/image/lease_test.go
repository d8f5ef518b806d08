package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestLease: a live lease keeps its image from rmi and prune; a dead one is
// deleted by the next of them; a lease on a missing image fails.
func TestLease(t *testing.T) {
	s, img, ref := pulledStore(t)
	alive := map[string]bool{"c1": true}
	s.opts.LeaseAlive = func(id string) bool { return alive[id] }

	if _, err := s.Lease(context.Background(), "c0", "sha256:"+fmt64('0')); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lease of a missing image = %v, want ErrNotFound", err)
	}
	release, err := s.Lease(context.Background(), "c1", img.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(context.Background(), ref, RemoveOptions{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove of a leased image = %v, want ErrInUse", err)
	}
	if removed, _, err := s.Prune(context.Background(), PruneOptions{All: true}); err != nil || len(removed) != 0 {
		t.Fatalf("Prune -a removed %v (%v): the image is leased", removed, err)
	}

	// The container dies without releasing (its engine was killed): the
	// lease no longer holds, and rmi deletes it on the way.
	alive["c1"] = false
	rm, err := s.Remove(context.Background(), ref, RemoveOptions{})
	if err != nil || len(rm.Deleted) != 1 {
		t.Fatalf("Remove after the container died = %+v, %v", rm, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "leases", "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead lease is still there (%v)", err)
	}
	if err := release(); err != nil {
		t.Errorf("release after the lease went: %v", err)
	}
	if _, err := s.Lease(context.Background(), "c2", img.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lease of a removed image = %v, want ErrNotFound", err)
	}
	if _, err := s.Lease(context.Background(), "../x", img.ID); err == nil {
		t.Errorf("a container ID with a path in it was accepted")
	}
}

// TestLeaseRelease: releasing lets rmi remove the image.
func TestLeaseRelease(t *testing.T) {
	s, img, ref := pulledStore(t)
	s.opts.LeaseAlive = func(string) bool { return true }
	release, err := s.Lease(context.Background(), "c1", img.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(context.Background(), ref, RemoveOptions{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove of a leased image = %v, want ErrInUse", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if rm, err := s.Remove(context.Background(), ref, RemoveOptions{}); err != nil || len(rm.Deleted) != 1 {
		t.Fatalf("Remove after release = %+v, %v", rm, err)
	}
}

func fmt64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
