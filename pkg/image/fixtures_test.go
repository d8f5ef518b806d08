package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/minictr/minictr/internal/imagetest"
)

// TestPullRefusesHostileLayers serves each hostile layer of
// testdata/hostile (made by internal/hostilegen) from an honest registry:
// the digests are right, the content is the attack. Each pull must fail
// with the fixture's error, write nothing outside the store, and leave the
// store unchanged.
func TestPullRefusesHostileLayers(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "hostile")
	fixtures, err := imagetest.HostileFixtures(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures {
		t.Run(fx.File, func(t *testing.T) {
			host := serveFixtureLayer(t, dir, fx.File)

			parent := t.TempDir()
			s, err := Open(filepath.Join(parent, "image"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.minUnpackCap = 1 << 20 // as the fixtures' README says for the bomb
			before := listing(t, s)
			_, err = s.Pull(context.Background(), host+"/hostile/layer:latest", PullOptions{})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			if !strings.Contains(err.Error(), fx.Want) || !strings.Contains(err.Error(), "hostile/layer:latest") {
				t.Errorf("error %q does not say %q and name the reference", err, fx.Want)
			}
			if after := listing(t, s); after != before {
				t.Errorf("store changed:\n%s", after)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 1 {
				t.Errorf("something was written next to the store: %v", entries)
			}
			for _, name := range []string{"/tmp/minictr-hostile-absolute", "/tmp/minictr-hostile-symlink"} {
				if _, err := os.Lstat(name); err == nil {
					t.Errorf("%s was written on the host", name)
				}
			}
		})
	}
}

// asLayer returns a layer blob (gzip'd) and its diff_id. A .gz fixture is
// used as is; its diff_id covers what decompresses (all of it, unless the
// fixture is truncated on purpose).
func asLayer(t *testing.T, raw []byte, gzipped bool) ([]byte, v1.Hash) {
	if gzipped {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(zr) // a truncated fixture ends early: fine
		return raw, sha256Hash(data)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	return buf.Bytes(), sha256Hash(raw)
}

// serveFixtureLayer serves the fixture file of dir as the one layer of an
// honest image (right digests, the content is what is tested) from a test
// registry, and returns the registry's host.
func serveFixtureLayer(t *testing.T, dir, file string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	blob, diffID := asLayer(t, raw, strings.HasSuffix(file, ".gz"))
	p := &parts{layer: blob, diffID: diffID}
	p.config = v1.ConfigFile{OS: "linux", Architecture: runtimeArch(), RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}}}
	p.manifest = v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Layers: []v1.Descriptor{{MediaType: types.OCILayer, Size: int64(len(blob)), Digest: sha256Hash(blob)}}}
	host, _ := p.serve(t)
	return host
}
