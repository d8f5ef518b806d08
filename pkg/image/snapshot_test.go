package image

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/minictr/minictr/pkg/image/layer"
	"github.com/minictr/minictr/pkg/snapshot"
)

// TestPulledLayersStackIntoARootfs is the seam with the engine: the layer
// directories Get returns (top first) are what snapshot.Prepare stacks into
// a container's root filesystem (here as a copy, which needs no mount).
func TestPulledLayersStackIntoARootfs(t *testing.T) {
	s, img, _ := pulledStore(t)
	apply := func(r io.Reader, dir string) error {
		_, err := layer.Apply(r, dir, layer.Options{})
		return err
	}
	dir := filepath.Join(t.TempDir(), "snap")
	snap, err := snapshot.Prepare(dir, img.Layers, snapshot.Options{Kind: snapshot.Copy, Reason: "test", Apply: apply})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snapshot.Remove(dir, nil) })
	for name, want := range map[string]string{"etc/marker": "saved"} {
		if data, err := os.ReadFile(filepath.Join(snap.Rootfs(), name)); err != nil || string(data) != want {
			t.Errorf("%s = %q, %v", name, data, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(snap.Rootfs(), "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(snap.Rootfs(), "bin/busybox")); err != nil {
		t.Error(err)
	}
	// Writing in the container's root never changes the shared layers.
	if err := os.WriteFile(filepath.Join(snap.Rootfs(), "etc/marker"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := s.Get(img.ID)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(again.Layers[0], "etc/marker")); string(data) != "saved" {
		t.Errorf("the layer changed under the container: %q", data)
	}
}
