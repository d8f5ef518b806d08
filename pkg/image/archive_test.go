package image

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func pulledStore(t *testing.T) (*Store, *Image, string) {
	host := startRegistry(t)
	ref := host + "/save/busybox:1"
	pushTo(t, ref, busyboxImage(t, "saved"))
	s := openStore(t)
	img, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s, img, ref
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s, img, ref := pulledStore(t)
	for _, format := range []string{DockerArchive, OCIArchive} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := s.Save(&buf, []string{ref}, format); err != nil {
				t.Fatal(err)
			}
			other := openStore(t)
			loaded, err := other.Load(context.Background(), &buf)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(loaded, []string{ref}) {
				t.Errorf("loaded %v, want [%s]", loaded, ref)
			}
			got, err := other.Get(ref)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != img.ID {
				t.Errorf("image ID changed: %s -> %s", img.ID, got.ID)
			}
			if format == OCIArchive && got.Digest != img.Digest {
				t.Errorf("OCI round trip changed the manifest digest: %s -> %s", img.Digest, got.Digest)
			}
			if data, err := os.ReadFile(filepath.Join(got.Layers[0], "etc/marker")); err != nil || string(data) != "saved" {
				t.Errorf("etc/marker = %q, %v", data, err)
			}
		})
	}
}

func TestLoadRefusesEscapingArchive(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "oci-layout", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	tw.Write([]byte("{}"))
	tw.WriteHeader(&tar.Header{Name: "../../escaped", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	s := openStore(t)
	before := listing(t, s)
	_, err := s.Load(context.Background(), &buf)
	if err == nil || !strings.Contains(err.Error(), "leaves the layout") {
		t.Fatalf("got %v, want the escaping entry refused", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.root), "escaped")); err == nil {
		t.Error("a file was written outside the store")
	}
	if listing(t, s) != before {
		t.Error("the store changed")
	}
}

func TestLoadRefusesUnknownArchive(t *testing.T) {
	s := openStore(t)
	if _, err := s.Load(context.Background(), strings.NewReader("not a tar")); err == nil {
		t.Fatal("loading garbage succeeded")
	}
}
