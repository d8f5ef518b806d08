package container

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/minictr/minictr/pkg/image/layer"
	"github.com/minictr/minictr/pkg/snapshot"
)

// TestCopyThroughLowerSymlink: a copy snapshot of two layers, the lower
// with Debian's var/run -> /run, the upper writing var/run/NAME, starts
// (the review saw "resolves outside it" here) and writes nothing outside
// the snapshot. The upper layer, unpacked in its own directory, holds
// var/run as a directory: the copy, like an overlay of the same layers,
// shows that directory over the lower layer's symlink.
func TestCopyThroughLowerSymlink(t *testing.T) {
	base := t.TempDir()
	name := fmt.Sprintf("minictr-copytest-%d", os.Getpid()) // would be /run/NAME on the host
	unpack := func(dir string, hdrs ...*tar.Header) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			must(t, tw.WriteHeader(h))
			_, err := tw.Write(make([]byte, h.Size))
			must(t, err)
		}
		must(t, tw.Close())
		must(t, os.MkdirAll(dir, 0o755))
		if _, err := layer.Unpack(&buf, dir, layer.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	lower, upper := filepath.Join(base, "layers/1"), filepath.Join(base, "layers/2")
	unpack(lower, &tar.Header{Name: "run/", Typeflag: tar.TypeDir, Mode: 0o755}, &tar.Header{Name: "var/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "var/run", Typeflag: tar.TypeSymlink, Linkname: "/run"})
	unpack(upper, &tar.Header{Name: "var/run/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 4})
	snap, err := snapshot.Prepare(filepath.Join(base, "snap"), []string{upper, lower},
		snapshot.Options{Kind: snapshot.Copy, Reason: "test", Apply: applyLayer})
	if err != nil {
		t.Fatalf("copy snapshot of a layer under a lower layer's absolute symlink: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(snap.Rootfs(), "var/run", name)); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("var/run/%s in the copy: %v, %v; want the upper layer's file", name, fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(snap.Rootfs(), "var/run")); err != nil || !fi.IsDir() {
		t.Errorf("var/run in the copy: %v, %v; want the upper layer's directory, as an overlay shows it", fi, err)
	}
	if _, err := os.Lstat(filepath.Join("/run", name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/run/%s exists on the host (%v)", name, err)
		os.Remove(filepath.Join("/run", name))
	}
}
