package image

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/minictr/minictr/pkg/image/layer"
)

// TestPulledLayersStackIntoARootfs is the seam with the engine: the layer
// directories Get returns (top first) are what layer.Prepare stacks into a
// container's root filesystem.
func TestPulledLayersStackIntoARootfs(t *testing.T) {
	s, img, _ := pulledStore(t)
	snap, err := layer.Prepare(img.Layers, filepath.Join(t.TempDir(), "snap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Remove() })
	for name, want := range map[string]string{"etc/marker": "saved"} {
		if data, err := os.ReadFile(filepath.Join(snap.Rootfs, name)); err != nil || string(data) != want {
			t.Errorf("%s = %q, %v", name, data, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(snap.Rootfs, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(snap.Rootfs, "bin/busybox")); err != nil {
		t.Error(err)
	}
	// Writing in the container's root never changes the shared layers.
	if err := os.WriteFile(filepath.Join(snap.Rootfs, "etc/marker"), []byte("changed"), 0o644); err != nil {
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
