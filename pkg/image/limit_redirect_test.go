package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A registry that redirects blob GETs to a storage URL without "/blobs/"
// in its path (as quay.io, ECR and GCR do).
func TestBlobRedirectedToStorageIsNotCapped(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") && r.URL.Query().Get("cdn") == "" {
			http.Redirect(w, r, "/storage/object"+"?cdn=1&p="+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/storage/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = r.URL.Query().Get("p")
			r2.URL.RawQuery = "cdn=1"
			reg.ServeHTTP(w, r2)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	big := make([]byte, 6<<20)
	rand.Read(big)
	img, _ := mutate.AppendLayers(empty.Image, tarLayer(t, map[string]string{"big": string(big)}))
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtimeArch()
	img, _ = mutate.ConfigFile(img, cf)
	if err := remote.Write(mustRef(t, host+"/cdn/img:1"), img); err != nil {
		t.Fatal(err)
	}
	_, err := openStore(t).Pull(context.Background(), host+"/cdn/img:1", PullOptions{})
	t.Logf("pull of a 6 MiB layer via redirect: %v", err)
	if err != nil {
		t.Errorf("pull failed: %v", err)
	}
}

// A hostile registry redirects the manifest to a path holding "/blobs/":
// the transport's cap is skipped.
func TestManifestRedirectedToABlobPathIsCapped(t *testing.T) {
	huge := bytes.Repeat([]byte(" "), 50<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasSuffix(r.URL.Path, "/manifests/huge"):
			http.Redirect(w, r, "/x/blobs/y", http.StatusTemporaryRedirect)
		case r.URL.Path == "/x/blobs/y":
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Content-Length", fmt.Sprint(len(huge)))
			w.Write(huge)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	counter := &countingTransport{base: remote.DefaultTransport}
	c := NewClient(ClientOptions{Transport: counter})
	_, err := c.Pull(context.Background(), openStore(t), host+"/hostile/m:huge", PullOptions{})
	t.Logf("err=%v; read %d bytes", err, counter.n.Load())
	if counter.n.Load() > MaxManifestSize+1<<20 {
		t.Errorf("read %d MiB of a redirected manifest", counter.n.Load()>>20)
	}
}
