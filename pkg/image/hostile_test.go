package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/minictr/minictr/internal/imagetest"
)

// hostileRegistry serves exactly the bytes it is given, so that a test can
// lie about digests and sizes as a compromised registry would.
type hostileRegistry struct {
	blobs     map[string][]byte // digest -> content
	manifests map[string][]byte // tag or digest -> content
	mediaType types.MediaType
}

func (h *hostileRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/v2/":
		return
	case strings.Contains(p, "/manifests/"):
		ref := p[strings.LastIndex(p, "/")+1:]
		m, ok := h.manifests[ref]
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", string(h.mediaType))
		w.Write(m)
	case strings.Contains(p, "/blobs/"):
		b, ok := h.blobs[p[strings.LastIndex(p, "/")+1:]]
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

func (h *hostileRegistry) start(t *testing.T) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// gzipTar returns a gzip'd tar of one file, and its diff_id.
func gzipTar(t *testing.T, name string, content []byte) ([]byte, v1.Hash) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
	tw.Write(content)
	tw.Close()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	return gz.Bytes(), sha256Hash(tarBuf.Bytes())
}

// parts is an image as its three kinds of documents, each of which a case
// corrupts before serving.
type parts struct {
	layer    []byte
	diffID   v1.Hash
	config   v1.ConfigFile
	manifest v1.Manifest
}

func goodParts(t *testing.T) *parts {
	layer, diffID := gzipTar(t, "hello.txt", []byte("hello\n"))
	p := &parts{layer: layer, diffID: diffID}
	p.config = v1.ConfigFile{OS: "linux", Architecture: runtimeArch(), RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}}}
	p.manifest = v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Layers: []v1.Descriptor{{MediaType: types.OCILayer, Size: int64(len(layer)), Digest: sha256Hash(layer)}}}
	return p
}

// serve publishes p as repo/img:latest; config and layer go under the
// digests the manifest claims, whatever their content.
func (p *parts) serve(t *testing.T) (host string, manifestDigest v1.Hash) {
	cfg, _ := json.Marshal(p.config)
	if p.manifest.Config.Digest.Hex == "" {
		p.manifest.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: sha256Hash(cfg)}
	}
	m, _ := json.Marshal(p.manifest)
	h := &hostileRegistry{
		blobs: map[string][]byte{
			p.manifest.Config.Digest.String():    cfg,
			p.manifest.Layers[0].Digest.String(): p.layer,
		},
		manifests: map[string][]byte{"latest": m, sha256Hash(m).String(): m},
		mediaType: types.OCIManifestSchema1,
	}
	return h.start(t), sha256Hash(m)
}

func TestPullRefusesHostileImages(t *testing.T) {
	cases := map[string]func(t *testing.T, p *parts){
		"layer digest mismatch": func(t *testing.T, p *parts) {
			// Same size, other bytes: the gzip header's mtime field, so
			// that only the digest can tell.
			p.layer = bytes.Clone(p.layer)
			p.layer[4] ^= 0xff
		},
		"config digest mismatch": func(t *testing.T, p *parts) {
			// The manifest claims a config of the same size, other content.
			cfg, _ := json.Marshal(p.config)
			other := bytes.Replace(cfg, []byte("linux"), []byte("LINUX"), 1)
			p.manifest.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: sha256Hash(other)}
		},
		"diff_id mismatch": func(t *testing.T, p *parts) {
			p.config.RootFS.DiffIDs[0] = sha256Hash([]byte("other"))
		},
		"truncated blob": func(t *testing.T, p *parts) {
			p.manifest.Layers[0].Size++ // the registry then sends one byte less than declared
		},
		"gzip bomb": func(t *testing.T, p *parts) {
			p.layer, p.diffID = gzipTar(t, "zeros", make([]byte, 8<<20))
			p.config.RootFS.DiffIDs[0] = p.diffID
			p.manifest.Layers[0].Size = int64(len(p.layer))
			p.manifest.Layers[0].Digest = sha256Hash(p.layer)
		},
		"manifest over the size cap": func(t *testing.T, p *parts) {
			p.manifest.Annotations = map[string]string{"padding": strings.Repeat("x", MaxManifestSize)}
		},
		"fewer diff_ids than layers": func(t *testing.T, p *parts) {
			p.config.RootFS.DiffIDs = nil
		},
	}
	for name, corrupt := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			p := goodParts(t)
			corrupt(t, p)
			host, _ := p.serve(t)
			s := openStore(t)
			s.minUnpackCap = 1 << 20 // the 8 MiB of zeros compress to ~8 KiB
			before := listing(t, s)
			_, err := s.Pull(context.Background(), host+"/repo/img:latest", PullOptions{})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			t.Logf("%s: %v", name, err)
			if !strings.Contains(err.Error(), host+"/repo/img:latest") {
				t.Errorf("error does not name the reference: %v", err)
			}
			if after := listing(t, s); after != before {
				t.Errorf("store changed:\nbefore:\n%safter:\n%s", before, after)
			}
		})
	}
}

func TestPullByDigestRefusesAnotherManifest(t *testing.T) {
	p := goodParts(t)
	cfg, _ := json.Marshal(p.config)
	p.manifest.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: sha256Hash(cfg)}
	m, _ := json.Marshal(p.manifest)
	wrong := sha256Hash([]byte("some other manifest"))
	h := &hostileRegistry{
		blobs:     map[string][]byte{p.manifest.Config.Digest.String(): cfg, p.manifest.Layers[0].Digest.String(): p.layer},
		manifests: map[string][]byte{wrong.String(): m}, // served under a digest it does not have
		mediaType: types.OCIManifestSchema1,
	}
	host := h.start(t)
	s := openStore(t)
	before := listing(t, s)
	_, err := s.Pull(context.Background(), host+"/repo/img@"+wrong.String(), PullOptions{})
	if err == nil {
		t.Fatal("pull by digest accepted a manifest with another digest")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "digest") || listing(t, s) != before {
		t.Errorf("want a digest error and an unchanged store, got %v", err)
	}
}

func TestPullRefusesIndexAndManifestInOne(t *testing.T) {
	p := goodParts(t)
	host, _ := p.serve(t)
	// Rewrite the served manifest into a document that is also an index.
	doc := map[string]any{}
	cfg, _ := json.Marshal(p.config)
	p.manifest.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: sha256Hash(cfg)}
	raw, _ := json.Marshal(p.manifest)
	json.Unmarshal(raw, &doc)
	doc["manifests"] = []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Size: 1, Digest: sha256Hash([]byte("x"))}}
	both, _ := json.Marshal(doc)
	h := &hostileRegistry{
		blobs:     map[string][]byte{p.manifest.Config.Digest.String(): cfg, p.manifest.Layers[0].Digest.String(): p.layer},
		manifests: map[string][]byte{"latest": both},
		mediaType: types.OCIManifestSchema1,
	}
	host = h.start(t)
	s := openStore(t)
	_, err := s.Pull(context.Background(), host+"/repo/img:latest", PullOptions{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "both an index and a manifest") {
		t.Fatalf("got %v, want the ambiguity refused", err)
	}
}

func TestPullGoodPartsWorks(t *testing.T) {
	// The control for the hostile cases: the same parts, uncorrupted, pull.
	p := goodParts(t)
	host, _ := p.serve(t)
	s := openStore(t)
	img, err := s.Pull(context.Background(), host+"/repo/img:latest", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(img.Layers[0], "hello.txt")); err != nil || string(data) != "hello\n" {
		t.Fatalf("hello.txt = %q, %v", data, err)
	}
}

// TestPullUnpacksContainedLayers pulls each layer of the second table of
// testdata/hostile/README.md: names as real tools write them (umoci's root
// entry "/", absolute and "./" names). podman and docker run such images;
// the pull must succeed, with the files below the layer's directory and
// nothing written beside the store or on the host.
func TestPullUnpacksContainedLayers(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "hostile")
	fixtures, err := imagetest.ContainedFixtures(dir)
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
			img, err := s.Pull(context.Background(), host+"/tidy/layer:latest", PullOptions{})
			if err != nil {
				t.Fatalf("pull refused a layer real tools write: %v", err)
			}
			for _, name := range fx.Lands {
				if _, err := os.Lstat(filepath.Join(img.Layers[0], name)); err != nil {
					t.Errorf("%s is not below the layer's directory: %v", name, err)
				}
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
