package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"
)

// countingTransport counts the bytes of response bodies read through it:
// what the client took from the network.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// TestHugeManifestsAreRefusedAtTheTransport: a 50 MB manifest (with its
// Content-Length) is refused before a byte of it is read, and an endless
// chunked one as soon as it passes MaxManifestSize; go-containerregistry
// alone would read up to 100 MiB of either.
func TestHugeManifestsAreRefusedAtTheTransport(t *testing.T) {
	huge := bytes.Repeat([]byte(" "), 50<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasSuffix(r.URL.Path, "/manifests/huge"):
			w.Header().Set("Content-Length", fmt.Sprint(len(huge)))
			w.Write(huge)
		case strings.HasSuffix(r.URL.Path, "/manifests/endless"):
			// No Content-Length and flushed: chunked, and it never ends.
			chunk := bytes.Repeat([]byte(" "), 64<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		tag     string
		maxRead int64
	}{
		{"huge", 0},                            // refused by its Content-Length
		{"endless", MaxManifestSize + 256<<10}, // the cap and one buffer more
	} {
		t.Run(tc.tag, func(t *testing.T) {
			counter := &countingTransport{base: remote.DefaultTransport}
			c := NewClient(ClientOptions{Transport: counter})
			s := openStore(t)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := c.Pull(context.Background(), s, host+"/hostile/manifest:"+tc.tag, PullOptions{})
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("over the %d-byte limit", MaxManifestSize)) {
				t.Fatalf("got %v, want the manifest refused for its size", err)
			}
			read := counter.n.Load()
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%v; %d bytes read, %d MiB allocated", err, read, alloc>>20)
			if read > tc.maxRead {
				t.Errorf("read %d bytes of the manifest, want at most %d", read, tc.maxRead)
			}
			// Today's peaks without the cap: 198 MB (huge) and 261 MB (endless).
			if alloc > 32<<20 {
				t.Errorf("allocated %d MiB while refusing the manifest", alloc>>20)
			}
		})
	}
}

// TestLoadRefusesHugeDocuments: a docker-archive's manifest.json and the
// configs it names are refused for their size before they are read.
func TestLoadRefusesHugeDocuments(t *testing.T) {
	big := MaxManifestSize + 1
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"big/config:1"}, "Layers": []string{"layer.tar"}}})
	for _, tc := range []struct {
		name    string
		entries map[string]int // name -> size; manifest.json's content is manifest unless sized
		want    string
	}{
		{"manifest", map[string]int{"manifest.json": big}, "manifest.json of 4194305 bytes is over the 4194304-byte limit"},
		{"config", map[string]int{"manifest.json": 0, "config.json": big, "layer.tar": 1024}, "config.json of 4194305 bytes is over the 4194304-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "archive.tar")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			tw := tar.NewWriter(f)
			for _, name := range []string{"manifest.json", "config.json", "layer.tar"} {
				size, ok := tc.entries[name]
				if !ok {
					continue
				}
				content := io.Reader(strings.NewReader(strings.Repeat(" ", size)))
				if name == "manifest.json" && size == 0 {
					content, size = bytes.NewReader(manifest), len(manifest)
				}
				tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)})
				io.Copy(tw, content)
			}
			tw.Close()
			f.Close()
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			s := openStore(t)
			before := listing(t, s)
			_, err = s.Load(context.Background(), in)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if after := listing(t, s); after != before {
				t.Errorf("the store changed:\n%s", after)
			}
		})
	}
}

// TestLoadLayoutRefusesHugeDocuments: an OCI layout's index.json and
// manifests are read whole by go-containerregistry: one over the cap, or
// one that is no regular file (a FIFO, a link to /dev/zero: they may
// never end), is refused before.
func TestLoadLayoutRefusesHugeDocuments(t *testing.T) {
	const manifest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	index := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,"digest":"sha256:` + manifest + `"}]}`
	for _, tc := range []struct {
		name  string
		setup func(dir string) error
		want  string
	}{
		{"index", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "index.json"), make([]byte, MaxManifestSize+1), 0o644)
		}, "index.json of 4194305 bytes is over the 4194304-byte limit"},
		{"huge manifest", func(dir string) error {
			if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(index), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "blobs", "sha256", manifest), make([]byte, MaxManifestSize+1), 0o644)
		}, "blobs/sha256/" + manifest + " of 4194305 bytes is over the 4194304-byte limit"},
		{"FIFO manifest", func(dir string) error {
			if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(index), 0o644); err != nil {
				return err
			}
			fifo := filepath.Join(dir, "blobs", "sha256", manifest)
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				return err
			}
			// Should the FIFO be read after all, end that read in 2 s (the
			// test then fails on the error) rather than hang.
			time.AfterFunc(2*time.Second, func() {
				if f, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			})
			return nil
		}, "blobs/sha256/" + manifest + " is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
			os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
			if err := tc.setup(dir); err != nil {
				t.Fatal(err)
			}
			_, err := openStore(t).LoadLayout(context.Background(), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
