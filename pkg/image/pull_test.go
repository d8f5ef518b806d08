package image

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/minictr/minictr/pkg/trace"
)

type recordProgress struct {
	mu     sync.Mutex
	events []Event
}

func (r *recordProgress) Update(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recordProgress) statuses() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if !slices.Contains(out, e.Status) {
			out = append(out, e.Status)
		}
	}
	return out
}

func TestPullUnpacksLayersTopFirst(t *testing.T) {
	host := startRegistry(t)
	pushTo(t, host+"/test/busybox:1", busyboxImage(t, "one"))
	var tr trace.Recorder
	var prog recordProgress
	s, err := Open(filepath.Join(t.TempDir(), "image"), Options{Tracer: &tr})
	if err != nil {
		t.Fatal(err)
	}

	img, err := NewClient(ClientOptions{Tracer: &tr, Progress: &prog}).Pull(context.Background(), s, host+"/test/busybox:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 2 {
		t.Fatalf("got %d layer dirs, want 2", len(img.Layers))
	}
	// Top first: the marker is in the second (top) layer.
	if data, err := os.ReadFile(filepath.Join(img.Layers[0], "etc/marker")); err != nil || string(data) != "one" {
		t.Errorf("top layer etc/marker = %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(img.Layers[1], "bin/busybox")); err != nil {
		t.Errorf("bottom layer: %v", err)
	}
	if !slices.Equal(img.Config.Config.Cmd, []string{"sh"}) || !slices.Contains(img.Config.Config.Env, "MARKER=one") {
		t.Errorf("config = %+v", img.Config.Config)
	}
	if img.Tags[0] != host+"/test/busybox:1" || len(img.RepoDigests) != 1 {
		t.Errorf("tags %v repo digests %v", img.Tags, img.RepoDigests)
	}
	if !slices.Contains(prog.statuses(), StatusComplete) {
		t.Errorf("progress statuses %v, want %q", prog.statuses(), StatusComplete)
	}
	sawManifestGET := false
	for _, st := range tr.Steps {
		if st.Stage == "registry" && st.Shell != "" && filepath.Base(filepath.Dir(st.Action)) == "manifests" {
			sawManifestGET = true
		}
	}
	if !sawManifestGET {
		t.Errorf("--explain did not show the manifest request: %v", tr.Steps)
	}

	// Get finds it by tag, by ID prefix, and by digest.
	for _, ref := range []string{host + "/test/busybox:1", img.ID[7:19], img.RepoDigests[0]} {
		got, err := s.Get(ref)
		if err != nil || got.ID != img.ID {
			t.Errorf("Get(%q) = %v, %v", ref, got, err)
		}
	}

	// A second pull of an image sharing the bottom layer reuses it.
	pushTo(t, host+"/test/busybox:2", busyboxImage(t, "two"))
	prog2 := &recordProgress{}
	img2, err := NewClient(ClientOptions{Progress: prog2}).Pull(context.Background(), s, host+"/test/busybox:2", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img2.Layers[1] != img.Layers[1] {
		t.Errorf("shared bottom layer unpacked twice: %s vs %s", img2.Layers[1], img.Layers[1])
	}
	if !slices.Contains(prog2.statuses(), StatusExists) {
		t.Errorf("second pull statuses %v, want %q", prog2.statuses(), StatusExists)
	}
}

func TestPullSelectsPlatformFromIndex(t *testing.T) {
	host := startRegistry(t)
	other := "arm64"
	if runtimeArch() == "arm64" {
		other = "amd64"
	}
	native := busyboxImage(t, "native")
	foreign, err := mutate.ConfigFile(busyboxImage(t, "foreign"), func() *v1.ConfigFile {
		cf, _ := busyboxImage(t, "foreign").ConfigFile()
		cf = cf.DeepCopy()
		cf.Architecture = other
		return cf
	}())
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(emptyIndex(),
		mutate.IndexAddendum{Add: foreign, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: native, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtimeArch()}}},
	)
	ref := mustRef(t, host+"/multi/arch:latest")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	img, err := s.Pull(context.Background(), host+"/multi/arch", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.Architecture != runtimeArch() {
		t.Errorf("pulled %s, want the host's %s", img.Config.Architecture, runtimeArch())
	}
	p := v1.Platform{OS: "linux", Architecture: other}
	img, err = s.Pull(context.Background(), host+"/multi/arch", PullOptions{Platform: &p})
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.Architecture != other {
		t.Errorf("--platform linux/%s pulled %s", other, img.Config.Architecture)
	}
	p = v1.Platform{OS: "linux", Architecture: "s390x"}
	if _, err := s.Pull(context.Background(), host+"/multi/arch", PullOptions{Platform: &p}); err == nil {
		t.Error("pulling a platform the index lacks succeeded")
	}
}

func TestConcurrentPullsShareTheStore(t *testing.T) {
	host := startRegistry(t)
	s := openStore(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		tag := host + "/c/img:" + string(rune('a'+i))
		pushTo(t, tag, busyboxImage(t, tag))
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A separate Store value per goroutine, like separate processes.
			s2, _ := Open(s.root, Options{})
			_, errs[i] = s2.Pull(context.Background(), tag, PullOptions{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List()
	if err != nil || len(list) != 4 {
		t.Fatalf("List = %d images, %v; want 4", len(list), err)
	}
}

func TestPullBadInput(t *testing.T) {
	host := startRegistry(t)
	s := openStore(t)
	for _, ref := range []string{"UPPER/case", "a::b", "", host + "/nope/missing:latest", "127.0.0.1:1/x:y"} {
		before := listing(t, s)
		_, err := s.Pull(context.Background(), ref, PullOptions{})
		if err == nil {
			t.Errorf("Pull(%q) succeeded", ref)
			continue
		}
		t.Logf("Pull(%q): %v", ref, err)
		if after := listing(t, s); after != before {
			t.Errorf("Pull(%q) changed the store:\n%s", ref, after)
		}
	}
}
