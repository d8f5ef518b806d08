package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/trace"
)

// TestMain lets the test binary act as a second minictr process: with
// MINICTR_TEST_PULL=root|ref it pulls ref into root and exits, so that a
// test can kill it with SIGKILL in the middle of the pull; with
// MINICTR_TEST_LEASE=root|container|image it takes a lease and holds it
// until killed, as an engine running a container does; with
// MINICTR_TEST_WORK=root it makes a work directory, prints its path and
// works there until killed.
func TestMain(m *testing.M) {
	if spec := os.Getenv("MINICTR_TEST_PULL"); spec != "" {
		os.Exit(pullChild(spec, os.Getenv("MINICTR_TEST_PULL_STOP")))
	}
	if spec := os.Getenv("MINICTR_TEST_LEASE"); spec != "" {
		os.Exit(leaseChild(spec))
	}
	if root := os.Getenv("MINICTR_TEST_WORK"); root != "" {
		os.Exit(workChild(root))
	}
	os.Exit(m.Run())
}

// pullChild pulls as TestMain says. With stop = N it halts at the N-th
// step the store reports to its tracer (counting from 1): it prints
// "stopped at step N: ..." on stdout and waits there, with every later
// step, to be killed. So the test knows the pull has begun and cannot have
// finished when its kill lands.
func pullChild(spec, stop string) int {
	root, ref, _ := strings.Cut(spec, "|")
	var opts Options
	if stop != "" {
		n, err := strconv.Atoi(stop)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		opts.Tracer = &haltAt{n: n}
	}
	s, err := Open(root, opts)
	if err == nil {
		_, err = s.Pull(context.Background(), ref, PullOptions{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// leaseChild leases as TestMain says, says "leased" on stdout and waits to
// be killed.
func leaseChild(spec string) int {
	f := strings.SplitN(spec, "|", 3)
	if len(f) != 3 {
		return 2
	}
	s, err := Open(f[0], Options{})
	if err == nil {
		_, err = s.Lease(context.Background(), f[1], f[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("leased")
	for {
		time.Sleep(time.Hour)
	}
}

// workChild makes a work directory in the store at root, prints it and
// waits to be killed.
func workChild(root string) int {
	s, err := Open(root, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, _, err := s.workDir("save")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(dir)
	for {
		time.Sleep(time.Hour)
	}
}

type haltAt struct {
	mu   sync.Mutex
	n    int
	seen int
}

func (h *haltAt) Step(stage, action, shell string) {
	h.mu.Lock()
	h.seen++
	seen := h.seen
	h.mu.Unlock()
	if seen == h.n {
		fmt.Printf("stopped at step %d: [%s] %s\n", seen, stage, action)
	}
	for seen >= h.n {
		time.Sleep(time.Hour) // a timer, so the runtime never calls it a deadlock
	}
}

// gatedRegistry serves the in-process registry and counts the bytes it
// sends of one blob; with a limit set, it sends that many and then holds
// the rest back until the limit is lifted or the client goes away.
type gatedRegistry struct {
	reg http.Handler

	mu      sync.Mutex
	digest  string        // the blob that is counted and held back
	limit   int64         // -1: no limit
	served  int64         // bytes of the blob sent since the limit was set
	reached chan struct{} // closed when served reaches limit
	lifted  chan struct{} // closed when the limit is lifted
}

func newGatedRegistry(t *testing.T) (*gatedRegistry, string) {
	g := &gatedRegistry{reg: registry.New(registry.Logger(nullLogger())), limit: -1}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	t.Cleanup(g.lift) // before srv.Close, which waits for held requests
	return g, strings.TrimPrefix(srv.URL, "http://")
}

func (g *gatedRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	digest := g.digest
	g.mu.Unlock()
	if r.Method == http.MethodGet && digest != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+digest) {
		w = &gatedWriter{ResponseWriter: w, g: g, done: r.Context().Done()}
	}
	g.reg.ServeHTTP(w, r)
}

// hold sets the limit to n bytes of the blob, counted from now.
func (g *gatedRegistry) hold(n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit, g.served = n, 0
	g.reached, g.lifted = make(chan struct{}), make(chan struct{})
}

// lift lets every held request go on.
func (g *gatedRegistry) lift() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limit >= 0 {
		g.limit = -1
		close(g.lifted)
	}
}

type gatedWriter struct {
	http.ResponseWriter
	g    *gatedRegistry
	done <-chan struct{}
}

// Write sends b in small flushed chunks, so that the client really has
// what was counted, and stops at the limit.
func (w *gatedWriter) Write(b []byte) (int, error) {
	sent := 0
	for len(b) > 0 {
		w.g.mu.Lock()
		chunk := min(len(b), 16<<10)
		limit, lifted, reached := w.g.limit, w.g.lifted, w.g.reached
		if limit >= 0 {
			chunk = int(min(int64(chunk), limit-w.g.served))
		}
		w.g.mu.Unlock()
		if chunk == 0 {
			select {
			case <-reached:
			default:
				close(reached)
			}
			select {
			case <-lifted:
				continue
			case <-w.done:
				return sent, http.ErrAbortHandler
			}
		}
		n, err := w.ResponseWriter.Write(b[:chunk])
		w.g.mu.Lock()
		w.g.served += int64(n)
		w.g.mu.Unlock()
		sent += n
		if err != nil {
			return sent, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		b = b[n:]
	}
	return sent, nil
}

// TestKillDuringPullLeavesAWorkingStore kills a pulling process with
// SIGKILL at each step of the pull, and in the middle of its largest layer,
// then checks that the store still works: the image is either absent or
// complete, and the next pull finishes it. Each kill is proven to land
// mid-pull: the pull had reached the step, or the registry had sent part of
// the layer and held the rest back, and Wait reports death by SIGKILL, not
// an exit.
func TestKillDuringPullLeavesAWorkingStore(t *testing.T) {
	g, host := newGatedRegistry(t)
	ref := host + "/crash/busybox:1"
	img := busyboxImage(t, "crash")
	pushTo(t, ref, img)
	big := largestLayer(t, img)
	g.mu.Lock()
	g.digest = big.Digest.String()
	g.mu.Unlock()

	// The steps of a whole pull, recorded in this process.
	rec := &trace.Recorder{}
	s, err := Open(filepath.Join(t.TempDir(), "image"), Options{Tracer: rec})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(rec.Steps) < 6 {
		t.Fatalf("a pull reported only %d steps to its tracer: %+v", len(rec.Steps), rec.Steps)
	}

	for n := 1; n <= len(rec.Steps); n++ {
		t.Run(fmt.Sprintf("step-%02d", n), func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "image")
			cmd, lines := startPull(t, root, ref, strconv.Itoa(n))
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("the pull ended before step %d: %v\n%s", n, cmd.Wait(), cmd.Stderr)
				}
				t.Log(line)
			case <-time.After(30 * time.Second):
				t.Fatalf("the pull never reached step %d", n)
			}
			killMidPull(t, cmd)
			checkStoreAfterKill(t, root, ref)
		})
	}

	for _, part := range []int64{1, 2, 3} {
		held := big.Size * part / 4
		t.Run(fmt.Sprintf("layer-%d-of-%d-bytes", held, big.Size), func(t *testing.T) {
			g.hold(held)
			defer g.lift()
			root := filepath.Join(t.TempDir(), "image")
			cmd, lines := startPull(t, root, ref, "")
			select {
			case <-g.reached:
			case <-lines: // stdout closed: the process ended
				t.Fatalf("the pull ended before the registry held the layer back: %v\n%s", cmd.Wait(), cmd.Stderr)
			case <-time.After(30 * time.Second):
				t.Fatal("the pull never got that far into the layer")
			}
			// What was sent reaches tmp/ (the other layer is a few hundred
			// bytes: half of what was sent can only be this layer).
			deadline := time.Now().Add(10 * time.Second)
			for written := tmpBytes(t, root); written < held/2; written = tmpBytes(t, root) {
				if time.Now().After(deadline) {
					t.Fatalf("tmp/ holds %d bytes; the registry sent %d of the layer", written, held)
				}
				time.Sleep(10 * time.Millisecond)
			}
			killMidPull(t, cmd)
			g.mu.Lock()
			served := g.served
			g.mu.Unlock()
			if served != held {
				t.Fatalf("the registry sent %d bytes of the layer, want exactly %d of %d", served, held, big.Size)
			}
			g.lift()
			checkStoreAfterKill(t, root, ref)
		})
	}
}

// startPull starts the test binary as a pulling process (see TestMain) and
// returns it with a channel of its stdout lines, closed at its end.
func startPull(t *testing.T, root, ref, stop string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MINICTR_TEST_PULL="+root+"|"+ref, "MINICTR_TEST_PULL_STOP="+stop)
	cmd.Stderr = new(strings.Builder)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // our own child, by PID; harmless once reaped
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines
}

// killMidPull sends SIGKILL to the pulling process and checks that this is
// what ended it: a process that had already exited would prove nothing.
func killMidPull(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("the pull was not killed: Wait = %v\n%s", err, cmd.Stderr)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the pull ended with %v, want killed by SIGKILL\n%s", err, cmd.Stderr)
	}
}

// checkStoreAfterKill: whatever the moment, Get sees all of the image or
// none of it, and the next pull completes it and cleans tmp/.
func checkStoreAfterKill(t *testing.T, root, ref string) {
	t.Helper()
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
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
}

// largestLayer is the descriptor of img's largest layer (busybox).
func largestLayer(t *testing.T, img v1.Image) v1.Descriptor {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var big v1.Descriptor
	for _, l := range m.Layers {
		if l.Size > big.Size {
			big = l
		}
	}
	if big.Size < 64<<10 {
		t.Fatalf("the largest layer has %d bytes: too few to stop in the middle of", big.Size)
	}
	return big
}

// tmpBytes is the size of every regular file under root/tmp.
func tmpBytes(t *testing.T, root string) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(filepath.Join(root, "tmp"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
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
