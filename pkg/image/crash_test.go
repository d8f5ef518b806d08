package image

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

// TestMain lets the test binary act as a second minictr process: with
// MINICTR_TEST_PULL=root|ref it pulls ref into root and exits, so that a
// test can kill it with SIGKILL at any moment.
func TestMain(m *testing.M) {
	if spec := os.Getenv("MINICTR_TEST_PULL"); spec != "" {
		root, ref, _ := strings.Cut(spec, "|")
		s, err := Open(root, Options{})
		if err == nil {
			_, err = s.Pull(context.Background(), ref, PullOptions{})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// slowRegistry serves the in-process registry, but sends blobs slowly, so
// that a pull spends its time in the middle of downloading and unpacking.
func slowRegistry(t *testing.T) string {
	reg := registry.New(registry.Logger(nullLogger()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			reg.ServeHTTP(&slowWriter{ResponseWriter: w}, r)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

type slowWriter struct{ http.ResponseWriter }

func (s *slowWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		chunk := min(len(b), 64<<10)
		k, err := s.ResponseWriter.Write(b[:chunk])
		n += k
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		b = b[chunk:]
		time.Sleep(10 * time.Millisecond)
	}
	return n, nil
}

// TestKillDuringPullLeavesAWorkingStore kills a pulling process with
// SIGKILL at several moments, then checks that the store still works: the
// image is either absent or complete, and the next pull finishes it.
func TestKillDuringPullLeavesAWorkingStore(t *testing.T) {
	host := slowRegistry(t)
	ref := host + "/crash/busybox:1"
	pushTo(t, ref, busyboxImage(t, "crash"))
	for _, delay := range []time.Duration{20, 80, 150, 250, 400} {
		delay *= time.Millisecond
		t.Run(delay.String(), func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "image")
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "MINICTR_TEST_PULL="+root+"|"+ref)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL) // our own child, by PID
			cmd.Wait()

			s, err := Open(root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// Whatever the moment, Get sees all of the image or none of it.
			if img, err := s.Get(ref); err == nil {
				if _, err := os.Stat(filepath.Join(img.Layers[1], "bin/busybox")); err != nil {
					t.Fatalf("Get returned an incomplete image: %v", err)
				}
			}
			img, err := s.Pull(context.Background(), ref, PullOptions{})
			if err != nil {
				t.Fatalf("pull after kill: %v", err)
			}
			if data, err := os.ReadFile(filepath.Join(img.Layers[0], "etc/marker")); err != nil || string(data) != "crash" {
				t.Fatalf("etc/marker = %q, %v", data, err)
			}
			if entries, _ := os.ReadDir(filepath.Join(root, "tmp")); len(entries) != 0 {
				t.Errorf("tmp/ still holds %d entries after a mutation", len(entries))
			}
		})
	}
}

// TestFullDiskDuringPull pulls into a 1 MiB tmpfs: the pull fails with
// ENOSPC and the store is as it was.
func TestFullDiskDuringPull(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	host := startRegistry(t)
	ref := host + "/full/busybox:1"
	pushTo(t, ref, busyboxImage(t, "full"))
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	s, err := Open(filepath.Join(dir, "image"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := listing(t, s)
	_, err = s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), ref) {
		t.Fatalf("got %v, want ENOSPC naming %s", err, ref)
	}
	t.Log(err)
	if after := listing(t, s); after != before {
		t.Errorf("store changed:\n%s", after)
	}
}
