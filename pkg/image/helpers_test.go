package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/minictr/minictr/internal/testenv"
)

// startRegistry serves go-containerregistry's in-process registry on
// 127.0.0.1 and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// tarLayer makes a gzip'd layer from name -> content entries; a content
// starting with "->" is a symlink to the rest.
func tarLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0)})
			}
		}
		c := files[n]
		if target, ok := strings.CutPrefix(c, "->"); ok {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: time.Unix(0, 0)})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(c)), ModTime: time.Unix(0, 0)})
		tw.Write([]byte(c))
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// busyboxImage is the base image of the tests: /bin/busybox in one layer,
// /bin/sh and a marker file in a second.
func busyboxImage(t *testing.T, marker string) v1.Image {
	t.Helper()
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	bb, err := os.ReadFile(testenv.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image,
		tarLayer(t, map[string]string{"bin/busybox": string(bb)}),
		tarLayer(t, map[string]string{"bin/sh": "->busybox", "etc/marker": marker}))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtimeArch()
	cf.Created = v1.Time{Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Env = []string{"PATH=/bin", "MARKER=" + marker}
	cf.Config.WorkingDir = "/"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func pushTo(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "image"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listing is every path under the store with its size, so that a test can
// prove that a failed operation left the store as it was.
func listing(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(s.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.root, p)
		if rel == "lock" {
			return nil
		}
		info, _ := d.Info()
		size := int64(0)
		if d.Type().IsRegular() {
			size = info.Size()
		}
		b.WriteString(rel + " " + strconv.FormatInt(size, 10) + "\n")
		return nil
	})
	return b.String()
}

// Pull is the tests' shorthand for a registry client pulling into s, as
// minictr pull does, with the store's tracer (the crash test counts the
// steps); the library itself has it as Client.Pull.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	return NewClient(ClientOptions{Tracer: s.opts.Tracer}).Pull(ctx, s, ref, opts)
}

func runtimeArch() string { return runtime.GOARCH }

func emptyIndex() v1.ImageIndex { return empty.Index }

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func nullLogger() *log.Logger { return log.New(io.Discard, "", 0) }
