package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// timedRegistry is the in-process registry sending blobs slowly (64 KiB
// every 10 ms), and recording when each download of a large blob (a
// layer, not a config) of each repository was in flight.
type timedRegistry struct {
	srv     *httptest.Server
	mu      sync.Mutex
	windows map[string][][2]time.Time // repository -> [start, end] of blob GETs
}

func startTimedRegistry(t *testing.T) (string, *timedRegistry) {
	tr := &timedRegistry{windows: map[string][][2]time.Time{}}
	reg := registry.New(registry.Logger(nullLogger()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, _, isBlob := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/")
		if r.Method != http.MethodGet || !isBlob {
			reg.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		pw := &pacedWriter{ResponseWriter: w}
		reg.ServeHTTP(pw, r)
		if pw.n > 100<<10 {
			tr.mu.Lock()
			tr.windows[repo] = append(tr.windows[repo], [2]time.Time{start, time.Now()})
			tr.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	tr.srv = srv
	return strings.TrimPrefix(srv.URL, "http://"), tr
}

// overlap reports whether a blob download of repository a was in flight
// while one of b was. It stops the server first: a handler records its
// window after the client has read the last byte.
func (tr *timedRegistry) overlap(a, b string) bool {
	tr.srv.Close() // waits for the handlers
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, x := range tr.windows[a] {
		for _, y := range tr.windows[b] {
			if x[0].Before(y[1]) && y[0].Before(x[1]) {
				return true
			}
		}
	}
	return false
}

type pacedWriter struct {
	http.ResponseWriter
	n int // bytes written
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		chunk := min(len(b), 64<<10)
		k, err := p.ResponseWriter.Write(b[:chunk])
		n += k
		p.n += k
		if err != nil {
			return n, err
		}
		if f, ok := p.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		b = b[chunk:]
		time.Sleep(10 * time.Millisecond)
	}
	return n, nil
}

// TestPullsOfDifferentImagesOverlap: the store lock is not held while a
// pull downloads, so a second pull of another image downloads at the same
// time instead of queueing behind the first.
func TestPullsOfDifferentImagesOverlap(t *testing.T) {
	host, tr := startTimedRegistry(t)
	pushTo(t, host+"/one/img:1", busyboxImage(t, "one"))
	pushTo(t, host+"/two/img:1", busyboxImage(t, "two"))
	root := filepath.Join(t.TempDir(), "image")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, repo := range []string{"one", "two"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A Store value each: flock(2) treats them as two processes.
			s, err := Open(root, Options{})
			if err == nil {
				_, err = s.Pull(context.Background(), host+"/"+repo+"/img:1", PullOptions{})
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !tr.overlap("one/img", "two/img") {
		t.Errorf("the two pulls did not download at the same time: %v", tr.windows)
	}
	s := openStoreAt(t, root)
	for _, ref := range []string{host + "/one/img:1", host + "/two/img:1"} {
		if _, err := s.Get(ref); err != nil {
			t.Error(err)
		}
	}
}

// TestConcurrentPullsOfOneImage: N pulls of the same image at once all
// succeed and leave one consistent image: every layer once, complete,
// every blob once, nothing in tmp/.
func TestConcurrentPullsOfOneImage(t *testing.T) {
	host, _ := startTimedRegistry(t)
	ref := host + "/same/img:1"
	pushTo(t, ref, busyboxImage(t, "same"))
	root := filepath.Join(t.TempDir(), "image")
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(root, Options{})
			if err != nil {
				errs[i] = err
				return
			}
			img, err := s.Pull(context.Background(), ref, PullOptions{})
			if err == nil {
				ids[i] = img.ID
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if ids[i] != ids[0] {
			t.Errorf("pull %d got image %s, pull 0 %s", i, ids[i], ids[0])
		}
	}
	s := openStoreAt(t, root)
	list, err := s.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v; want one image", list, err)
	}
	img, err := s.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(img.Layers[0], "etc/marker")); err != nil || string(data) != "same" {
		t.Errorf("etc/marker = %q, %v", data, err)
	}
	layers, _ := os.ReadDir(filepath.Join(root, "layers"))
	if len(layers) != 2 {
		t.Errorf("layers/ holds %d entries, want 2", len(layers))
	}
	for _, l := range layers {
		if _, err := os.Stat(filepath.Join(root, "layers", l.Name(), "layer.json")); err != nil {
			t.Errorf("layer %s is incomplete: %v", l.Name(), err)
		}
	}
	blobs, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	if len(blobs) != 4 { // 2 layers, config, manifest
		var names []string
		for _, b := range blobs {
			names = append(names, b.Name())
		}
		t.Errorf("blobs/ holds %v, want 2 layers, a config and a manifest", names)
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %d entries", len(tmp))
	}
}

// TestPullRestagesALayerRemovedMeanwhile: a layer the store had when the
// pull looked is removed (rmi) before the pull commits; the pull fetches
// it after all instead of recording an image with a missing layer.
func TestPullRestagesALayerRemovedMeanwhile(t *testing.T) {
	host := startRegistry(t)
	pushTo(t, host+"/r/a:1", busyboxImage(t, "a"))
	pushTo(t, host+"/r/b:1", busyboxImage(t, "b"))
	s := openStore(t)
	if _, err := s.Pull(context.Background(), host+"/r/a:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	// Between staging (the shared busybox layer exists) and commit, the
	// only image using that layer goes.
	removed := false
	s.opts.Waiting = nil
	c := NewClient(ClientOptions{Progress: progressFunc(func(e Event) {
		if e.Status == StatusExists && !removed {
			removed = true
			other := openStoreAt(t, s.root)
			if _, err := other.Remove(context.Background(), host+"/r/a:1", RemoveOptions{}); err != nil {
				t.Error(err)
			}
		}
	})})
	img, err := c.Pull(context.Background(), s, host+"/r/b:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !removed {
		t.Fatal("the pull never found the shared layer in the store")
	}
	if _, err := os.Stat(filepath.Join(img.Layers[1], "bin/busybox")); err != nil {
		t.Errorf("the pulled image lacks its bottom layer: %v", err)
	}
}

type progressFunc func(Event)

func (f progressFunc) Update(e Event) { f(e) }

// TestWaitingForTheLock: a command that waits for the store lock says who
// holds it, and Ctrl-C (its context) ends the wait at once.
func TestWaitingForTheLock(t *testing.T) {
	s, _, ref := pulledStore(t)
	unlock, err := s.lock(context.Background(), "load")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	told := make(chan LockHolder, 1)
	waiter := openStoreAt(t, s.root)
	waiter.opts.Waiting = func(h LockHolder) { told <- h }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- waiter.Tag(ctx, ref, "waiting/for:lock") }()
	select {
	case h := <-told:
		if h.PID != os.Getpid() || h.Op != "load" {
			t.Errorf("holder = %+v, want PID %d (load)", h, os.Getpid())
		}
	case err := <-done:
		t.Fatalf("Tag did not wait for the lock: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("nobody was told about the wait")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled wait: %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("cancelling the context did not end the wait")
	}
	unlock()
	if err := waiter.Tag(context.Background(), ref, "waiting/for:lock"); err != nil {
		t.Errorf("Tag once the lock is free: %v", err)
	}
}

func openStoreAt(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
