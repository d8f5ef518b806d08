package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Edges found by bad-input testing of the CLI (issue 7, point 12).

// "sha256:abc" is an image ID, never docker.io/library/sha256:abc.
func TestFindSHA256IsAnID(t *testing.T) {
	s, img, _ := pulledStore(t)
	for _, ref := range []string{"sha256:abc", "sha256:", "sha256:xyz", "sha256:" + strings.Repeat("0", 64)} {
		_, err := s.Get(ref)
		if !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), "docker.io") || !strings.HasPrefix(err.Error(), ref+": ") {
			t.Errorf("Get(%q) = %v; want %q: image not found", ref, err, ref)
		}
	}
	// Prefixes of the real ID, with and without sha256:, short ones too.
	hex := strings.TrimPrefix(img.ID, "sha256:")
	for _, ref := range []string{"sha256:" + hex[:3], "sha256:" + hex[:12], hex[:12], img.ID} {
		if got, err := s.Get(ref); err != nil || got.ID != img.ID {
			t.Errorf("Get(%q) = %v; want image %s", ref, err, img.ID)
		}
	}
}

// A reader must not create the store: `--root /nonexistent/deep/x images`
// used to make the whole tree.
func TestOpenReadOnlyCreatesNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "deep", "x", "image")
	s, err := Open(root, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil || len(list) != 0 {
		t.Errorf("List of a missing store = %v, %v; want nothing", list, err)
	}
	if _, err := s.Get("busybox"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get from a missing store: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(root))); !os.IsNotExist(err) {
		t.Errorf("a read-only Open created %s (%v)", filepath.Dir(filepath.Dir(root)), err)
	}
}

// import of /dev/null, of an empty tar or of a non-tar stores nothing.
func TestImportRefusesEmptyOrNonTar(t *testing.T) {
	s := openStore(t)
	var emptyTar bytes.Buffer
	tar.NewWriter(&emptyTar).Close()
	before := listing(t, s)
	for name, input := range map[string][]byte{
		"nothing":     nil,
		"empty tar":   emptyTar.Bytes(),
		"short text":  []byte("hello, not a tar\n"),
		"garbage 4KB": bytes.Repeat([]byte("garbage!"), 512),
	} {
		_, err := s.Import(context.Background(), bytes.NewReader(input), ImportOptions{Ref: "x:y"})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Import = %v, want ErrInvalid", name, err)
		}
	}
	if after := listing(t, s); after != before {
		t.Errorf("refused imports changed the store:\n%s\nwas\n%s", after, before)
	}
	// A real one-file tar still imports.
	var one bytes.Buffer
	tw := tar.NewWriter(&one)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	if _, err := s.Import(context.Background(), &one, ImportOptions{Ref: "x:y"}); err != nil {
		t.Fatal(err)
	}
}

// --platform linux/s390x of a single-manifest amd64 image is refused before
// any layer is downloaded, in docker's words.
func TestPullRefusesAnotherPlatform(t *testing.T) {
	host := startRegistry(t)
	ref := host + "/single/arch:1"
	pushTo(t, ref, busyboxImage(t, "single"))
	s := openStore(t)
	before := listing(t, s)
	want := v1.Platform{OS: "linux", Architecture: "s390x"}
	if runtimeArch() == "s390x" {
		want.Architecture = "riscv64"
	}
	_, err := s.Pull(context.Background(), ref, PullOptions{Platform: &want})
	if !errors.Is(err, ErrPlatform) {
		t.Fatalf("Pull --platform %s = %v, want ErrPlatform", platformString(want), err)
	}
	msg := "image with reference " + ref + " was found but its platform (linux/" + runtimeArch() +
		") does not match the specified platform (" + platformString(want) + ")"
	if err.Error() != msg {
		t.Errorf("error %q\nwant  %q", err, msg)
	}
	if after := listing(t, s); after != before {
		t.Errorf("a refused pull changed the store:\n%s", after)
	}
	// The host's own platform, asked for by name, is fine; so is a local
	// image checked against it, and the other platform is refused.
	native := v1.Platform{OS: "linux", Architecture: runtimeArch()}
	img, err := s.Pull(context.Background(), ref, PullOptions{Platform: &native})
	if err != nil {
		t.Fatal(err)
	}
	if err := img.CheckPlatform(ref, native); err != nil {
		t.Errorf("CheckPlatform(host's) = %v", err)
	}
	if err := img.CheckPlatform(ref, want); !errors.Is(err, ErrPlatform) {
		t.Errorf("CheckPlatform(%s) = %v, want ErrPlatform", platformString(want), err)
	}
}
