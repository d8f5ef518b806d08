package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestTagListRemove(t *testing.T) {
	s, img, ref := pulledStore(t)
	if err := s.Tag(context.Background(), ref, "student/app:v1"); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v; want 2 rows", list, err)
	}
	// Same image, same creation time: sorted by repository name.
	if list[1].Repository != "student/app" || list[1].Tag != "v1" || list[1].ID != img.ID {
		t.Errorf("second row %+v", list[1])
	}

	// Untagging one name keeps the image.
	rm, err := s.Remove(context.Background(), "student/app:v1", RemoveOptions{})
	if err != nil || len(rm.Untagged) != 1 || len(rm.Deleted) != 0 {
		t.Fatalf("Remove tag = %+v, %v", rm, err)
	}
	if _, err := s.Get(ref); err != nil {
		t.Fatal(err)
	}

	// An image a container uses is refused unless forced.
	s.opts.InUse = func(id string) bool { return id == img.ID }
	if _, err := s.Remove(context.Background(), ref, RemoveOptions{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove in-use image: %v, want ErrInUse", err)
	}
	// Forced, it loses its name but keeps its layers for the container.
	rm, err = s.Remove(context.Background(), ref, RemoveOptions{Force: true})
	if err != nil || len(rm.Untagged) != 1 || len(rm.Deleted) != 0 {
		t.Fatalf("Remove -f = %+v, %v", rm, err)
	}
	if got, err := s.Get(img.ID); err != nil || len(got.Tags) != 0 {
		t.Fatalf("the in-use image is gone: %v, %v", got, err)
	}
	if removed, _, _ := s.Prune(context.Background(), PruneOptions{}); len(removed) != 0 {
		t.Fatalf("prune removed an image in use: %v", removed)
	}
	// Once the container is gone, prune collects it.
	s.opts.InUse = nil
	removed, _, err := s.Prune(context.Background(), PruneOptions{})
	if err != nil || len(removed) != 1 {
		t.Fatalf("Prune = %v, %v", removed, err)
	}
	if _, err := s.Get(ref); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after rmi: %v, want ErrNotFound", err)
	}
	// Its blobs and layers went with it.
	for _, d := range []string{"blobs/sha256", "layers"} {
		entries, _ := os.ReadDir(filepath.Join(s.root, d))
		if len(entries) != 0 {
			t.Errorf("%s still holds %d entries", d, len(entries))
		}
	}
}

func TestRemoveKeepsSharedLayers(t *testing.T) {
	host := startRegistry(t)
	s := openStore(t)
	pushTo(t, host+"/a/b:1", busyboxImage(t, "1"))
	pushTo(t, host+"/a/b:2", busyboxImage(t, "2"))
	one, err := s.Pull(context.Background(), host+"/a/b:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	two, err := s.Pull(context.Background(), host+"/a/b:2", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(context.Background(), host+"/a/b:1", RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(one.Layers[0]); err == nil {
		t.Error("the removed image's own layer is still there")
	}
	if _, err := s.Get(host + "/a/b:2"); err != nil {
		t.Errorf("the other image broke: %v", err)
	}
	if _, err := os.Stat(filepath.Join(two.Layers[1], "bin/busybox")); err != nil {
		t.Errorf("shared layer removed: %v", err)
	}
}

func TestPruneRemovesDanglingImages(t *testing.T) {
	host := startRegistry(t)
	s := openStore(t)
	pushTo(t, host+"/p/q:latest", busyboxImage(t, "old"))
	old, err := s.Pull(context.Background(), host+"/p/q", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pushTo(t, host+"/p/q:latest", busyboxImage(t, "new"))
	if _, err := s.Pull(context.Background(), host+"/p/q", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	list, _ := s.List()
	if len(list) != 2 || list[1].Repository != "<none>" && list[0].Repository != "<none>" {
		t.Fatalf("want the old image listed as <none>, got %+v", list)
	}
	removed, freed, err := s.Prune(context.Background(), PruneOptions{})
	if err != nil || len(removed) != 1 || removed[0] != old.ID || freed <= 0 {
		t.Fatalf("Prune = %v, %d, %v; want the old image", removed, freed, err)
	}
	if _, err := s.Get(host + "/p/q"); err != nil {
		t.Error(err)
	}
}

func TestPushSendsOnlyMissingBlobs(t *testing.T) {
	s, img, ref := pulledStore(t)
	host := ref[:len(ref)-len("/save/busybox:1")]
	if err := s.Tag(context.Background(), ref, host+"/pushed/busybox:v2"); err != nil {
		t.Fatal(err)
	}
	var prog recordProgress
	pushed, err := NewClient(ClientOptions{Progress: &prog}).Push(context.Background(), s, host+"/pushed/busybox:v2", PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Digest != img.Digest {
		t.Errorf("pushed digest %s, want the stored manifest's %s", pushed.Digest, img.Digest)
	}
	desc, err := remote.Get(mustRef(t, host+"/pushed/busybox:v2"))
	if err != nil || desc.Digest.String() != img.Digest {
		t.Fatalf("registry has %v, %v", desc, err)
	}
	// The blobs were mounted from save/busybox or found: nothing uploaded.
	for _, e := range prog.events {
		if e.Status == StatusPushed {
			t.Errorf("layer %s uploaded again", e.ID)
		}
	}

	// A fresh repository on another registry gets the bytes.
	other := startRegistry(t)
	if err := s.Tag(context.Background(), ref, other+"/fresh/img:1"); err != nil {
		t.Fatal(err)
	}
	prog = recordProgress{}
	if _, err := NewClient(ClientOptions{Progress: &prog}).Push(context.Background(), s, other+"/fresh/img:1", PushOptions{}); err != nil {
		t.Fatal(err)
	}
	uploaded := 0
	for _, e := range prog.events {
		if e.Status == StatusPushed {
			uploaded++
		}
	}
	if uploaded != 2 {
		t.Errorf("%d layers uploaded to the fresh registry, want 2", uploaded)
	}
	// And pulling it back from there gives the same image.
	s2 := openStore(t)
	back, err := s2.Pull(context.Background(), other+"/fresh/img:1", PullOptions{})
	if err != nil || back.ID != img.ID {
		t.Fatalf("pull back: %v, %v", back, err)
	}
}
