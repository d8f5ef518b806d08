package image

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// leaseInChild has another process (this test binary, see TestMain) take a
// lease and hold it; the returned kill ends it with SIGKILL, as an engine
// killed while its container runs.
func leaseInChild(t *testing.T, root, containerID, imageID string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MINICTR_TEST_LEASE="+root+"|"+containerID+"|"+imageID)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill = func() { cmd.Process.Kill(); cmd.Wait() } // by PID: our child
	t.Cleanup(kill)
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "leased\n" {
		t.Fatalf("the child did not lease: %q, %v", line, err)
	}
	return kill
}

// TestLease: a held lease keeps its image from rmi and prune, whichever
// process holds it; one whose holder was killed is deleted by the next of
// them; a lease on a missing image fails.
func TestLease(t *testing.T) {
	s, img, ref := pulledStore(t)

	if _, err := s.Lease(context.Background(), "c0", "sha256:"+fmt64('0')); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lease of a missing image = %v, want ErrNotFound", err)
	}
	release, err := s.Lease(context.Background(), "c1", img.ID)
	if err != nil {
		t.Fatal(err)
	}
	kill := leaseInChild(t, s.root, "c2", img.ID)
	if _, err := s.Remove(context.Background(), ref, RemoveOptions{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove of a leased image = %v, want ErrInUse", err)
	}
	if removed, _, err := s.Prune(context.Background(), PruneOptions{All: true}); err != nil || len(removed) != 0 {
		t.Fatalf("Prune -a removed %v (%v): the image is leased", removed, err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(context.Background(), ref, RemoveOptions{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove with the other process's lease = %v, want ErrInUse", err)
	}

	// The other container dies without releasing (its engine was killed):
	// the lease no longer holds, and rmi deletes it on the way.
	kill()
	rm, err := s.Remove(context.Background(), ref, RemoveOptions{})
	if err != nil || len(rm.Deleted) != 1 {
		t.Fatalf("Remove after the container died = %+v, %v", rm, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "leases", "c2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead lease is still there (%v)", err)
	}
	if err := release(); err != nil {
		t.Errorf("a second release: %v", err)
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
