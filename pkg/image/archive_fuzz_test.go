package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/minictr/minictr/internal/imagetest"
)

// FuzzLoad feeds arbitrary archives to Store.Load, as `minictr load` reads
// them from a file or a pipe. Whatever the archive holds:
//   - Load fails with a one-line error, or returns names that each find an
//     image in the store;
//   - the store's tmp/ is empty afterwards;
//   - nothing changes beside the store (a sibling tree in the same
//     temporary directory).
//
// Seeds: a docker-archive and an OCI archive of a small valid image, and
// docker-archives whose one layer is a hostile fixture of testdata/hostile.
// Header checksums are repaired first (imagetest.FixTarChecksums).
func FuzzLoad(f *testing.F) {
	valid, hostile := loadSeeds(f)
	for _, b := range append(valid, hostile...) {
		f.Add(b)
	}
	base := f.TempDir()
	s, err := Open(filepath.Join(base, "store"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	sibling := filepath.Join(base, "sibling")
	if err := os.MkdirAll(filepath.Join(sibling, "dir"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sibling, "dir", "file"), []byte("keep"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		before := siblings(t, base)
		loaded, err := s.Load(context.Background(), bytes.NewReader(imagetest.FixTarChecksums(data)))
		if err != nil {
			oneLine(t, err)
		} else if len(loaded) == 0 {
			t.Error("Load succeeded and loaded nothing")
		}
		for _, n := range loaded {
			if _, err := s.Get(n); err != nil {
				t.Errorf("Load returned %q, but Get: %v", n, err)
			}
		}
		if left, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(left) > 0 {
			t.Errorf("tmp/ holds %d entries after Load, first %s", len(left), left[0].Name())
		}
		if after := siblings(t, base); !slices.Equal(before, after) {
			t.Errorf("beside the store, %v became %v", before, after)
		}
	})
}

// loadSeeds are FuzzLoad's seeds: valid archives, and archives whose
// layer is hostile.
func loadSeeds(tb testing.TB) (valid, hostile [][]byte) {
	img := fuzzImage(tb, fuzzLayerTar(tb, map[string]string{"etc/os-release": "ID=fuzz\n", "bin/sh": "#!"}))
	valid = [][]byte{dockerArchive(tb, img, "fuzz/valid:1"), ociArchive(tb, img, "docker.io/fuzz/valid:2")}
	dir := filepath.Join("..", "..", "testdata", "hostile")
	fixtures, err := imagetest.HostileFixtures(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range fixtures {
		if strings.HasSuffix(h.File, ".gz") {
			continue // the bomb and a truncated stream: the tar ones cover the layer's side
		}
		data, err := os.ReadFile(filepath.Join(dir, h.File))
		if err != nil {
			tb.Fatal(err)
		}
		hostile = append(hostile, dockerArchive(tb, fuzzImage(tb, data), "fuzz/hostile:1"))
	}
	return valid, hostile
}

// TestLoadFuzzSeeds proves that FuzzLoad's seeds reach both ends: the
// valid ones load, the hostile ones are refused.
func TestLoadFuzzSeeds(t *testing.T) {
	valid, hostile := loadSeeds(t)
	s := openStore(t)
	for i, b := range valid {
		if loaded, err := s.Load(context.Background(), bytes.NewReader(b)); err != nil || len(loaded) != 1 {
			t.Errorf("valid seed %d: loaded %v, %v", i, loaded, err)
		}
	}
	for i, b := range hostile {
		if loaded, err := s.Load(context.Background(), bytes.NewReader(b)); err == nil {
			t.Errorf("hostile seed %d: loaded %v", i, loaded)
		}
	}
}

// siblings lists everything under base but the store.
func siblings(t *testing.T, base string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if rel == "store" {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, rel+" "+info.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fuzzLayerTar is a small uncompressed layer of regular files.
func fuzzLayerTar(f testing.TB, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(files[n])), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Fatal(err)
		}
		io.WriteString(tw, files[n])
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

// fuzzImage is an image of one layer, the tar layerTar, gzip'd.
func fuzzImage(f testing.TB, layerTar []byte) v1.Image {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layerTar)
	zw.Close()
	data := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		f.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		f.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		f.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtimeArch()
	cf.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		f.Fatal(err)
	}
	return img
}

func dockerArchive(f testing.TB, img v1.Image, tag string) []byte {
	t, err := name.NewTag(tag)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarball.MultiRefWrite(map[name.Reference]v1.Image{t: img}, &buf); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

func ociArchive(f testing.TB, img v1.Image, ref string) []byte {
	dir := filepath.Join(f.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		f.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRefName: ref})); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarDir(&buf, dir); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}
