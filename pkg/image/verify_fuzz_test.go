package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The seeds' digests: hex of the right length, not of any real content.
const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// validDigest is the form a digest must have before the store builds a
// path from it (blobs/sha256/<hex>): checked here by hand, not by the
// parser under test.
func validDigest(h v1.Hash) bool {
	return h.Algorithm == "sha256" && len(h.Hex) == 64 && strings.Trim(h.Hex, "0123456789abcdef") == ""
}

// FuzzCheckManifest feeds arbitrary documents to checkManifest, which
// guards every manifest a pull or a load stores. One it accepts is within
// the size cap, is an image manifest (not an index, and not both), lists
// at least one layer, and has sizes and digests the store can use; one it
// refuses gives a one-line error that is ErrInvalid.
func FuzzCheckManifest(f *testing.F) {
	layer := fmt.Sprintf(`{"mediaType":%q,"size":3,"digest":%q}`, types.DockerLayer, digestB)
	for _, s := range []string{
		fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"size":2,"digest":%q},"layers":[%s]}`,
			types.DockerManifestSchema2, types.DockerConfigJSON, digestA, layer),
		fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"size":2,"digest":%q},"layers":[%s,%s]}`,
			types.OCIManifestSchema1, types.OCIConfigJSON, digestA, layer, layer),
		fmt.Sprintf(`{"schemaVersion":2,"config":{"size":2,"digest":%q},"layers":[%s]}`, digestA, layer),
		// an index; both at once; no layers; negative and huge sizes; no digests
		fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"size":1,"digest":%q}]}`, types.OCIImageIndex, digestA),
		fmt.Sprintf(`{"schemaVersion":2,"manifests":[],"config":{"size":2,"digest":%q},"layers":[%s]}`, digestA, layer),
		fmt.Sprintf(`{"schemaVersion":2,"Manifests":[],"Layers":[%s]}`, layer),
		fmt.Sprintf(`{"schemaVersion":2,"config":{"size":2,"digest":%q},"layers":[]}`, digestA),
		fmt.Sprintf(`{"schemaVersion":2,"config":{"size":-1,"digest":%q},"layers":[%s]}`, digestA, layer),
		fmt.Sprintf(`{"schemaVersion":2,"config":{"size":99999999999,"digest":%q},"layers":[{"size":-5,"digest":%q}]}`, digestA, digestB),
		`{"schemaVersion":2,"config":{"size":2},"layers":[{"size":3}]}`,
		fmt.Sprintf(`{"schemaVersion":2,"config":{"size":2,"digest":"sha512:%s"},"layers":[%s]}`, strings.Repeat("a", 128), layer),
		`{"schemaVersion":1,"name":"x","fsLayers":[{"blobSum":"` + digestA + `"}]}`,
		`{"mediaType":"\n"}`, `null`, `[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := checkManifest(raw)
		if err != nil {
			oneLine(t, err)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q is not ErrInvalid", err)
			}
			return
		}
		if len(raw) > MaxManifestSize {
			t.Errorf("accepted a manifest of %d bytes", len(raw))
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(raw, &top); err != nil {
			t.Fatalf("accepted a document that is no JSON object: %v", err)
		}
		keys := map[string]bool{}
		for k := range top {
			keys[strings.ToLower(k)] = true // encoding/json matches field names in any case
		}
		if keys["manifests"] {
			t.Errorf("accepted a document with \"manifests\" (an index) as a manifest")
		}
		switch m.MediaType {
		case types.DockerManifestSchema2, types.OCIManifestSchema1, "":
		default:
			t.Errorf("accepted media type %q", m.MediaType)
		}
		if len(m.Layers) == 0 {
			t.Error("accepted a manifest without layers")
		}
		if m.Config.Size < 0 || m.Config.Size > MaxManifestSize {
			t.Errorf("accepted a config size of %d", m.Config.Size)
		}
		if !validDigest(m.Config.Digest) {
			t.Errorf("accepted config digest %q", m.Config.Digest)
		}
		for _, l := range m.Layers {
			if l.Size < 0 {
				t.Errorf("accepted layer size %d", l.Size)
			}
			if !validDigest(l.Digest) {
				t.Errorf("accepted layer digest %q", l.Digest)
			}
		}
	})
}

// FuzzCheckConfig feeds arbitrary config blobs to checkConfig, with a
// manifest that names the blob's true size and digest and n layers. One it
// accepts lists exactly n diff_ids, each a digest the store can name a
// layer directory by; one it refuses gives a one-line ErrInvalid.
func FuzzCheckConfig(f *testing.F) {
	for _, s := range []struct {
		cfg string
		n   uint8
	}{
		{fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[%q]}}`, digestA), 1},
		{fmt.Sprintf(`{"rootfs":{"type":"layers","diff_ids":[%q,%q]}}`, digestA, digestB), 2},
		{fmt.Sprintf(`{"rootfs":{"type":"layers","diff_ids":[%q,%q]}}`, digestA, digestB), 1},
		{`{"rootfs":{"type":"layers","diff_ids":["sha256:../../etc"]}}`, 1},
		{`{"rootfs":{"type":"layers","diff_ids":[""]}}`, 1},
		{`{"rootfs":{"diff_ids":null}}`, 0},
		{`{"config":{"Env":["A=\n"],"User":"0:0\n"},"rootfs":{"diff_ids":[]}}`, 0},
		{`{"created":"not a time"}`, 0}, {`null`, 0}, {``, 0},
	} {
		f.Add([]byte(s.cfg), s.n)
	}
	f.Fuzz(func(t *testing.T, raw []byte, n uint8) {
		m := &v1.Manifest{Config: v1.Descriptor{Size: int64(len(raw)), Digest: sha256Hash(raw)}, Layers: make([]v1.Descriptor, n)}
		cfg, err := checkConfig(raw, m)
		if err != nil {
			oneLine(t, err)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q is not ErrInvalid", err)
			}
			return
		}
		if len(cfg.RootFS.DiffIDs) != int(n) {
			t.Errorf("accepted %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), n)
		}
		for _, d := range cfg.RootFS.DiffIDs {
			if !validDigest(d) {
				t.Errorf("accepted diff_id %q", d)
			}
		}
		for i, c := range chainIDs(cfg.RootFS.DiffIDs) {
			if !validDigest(c) {
				t.Errorf("chain ID %d is %q", i, c)
			}
		}
		// A config that differs from its descriptor by a byte is refused.
		if len(raw) > 0 {
			bad := append([]byte(nil), raw...)
			bad[0] ^= 1
			if _, err := checkConfig(bad, m); !errors.Is(err, ErrInvalid) {
				t.Errorf("a config one bit off its digest: err = %v, want ErrInvalid", err)
			}
		}
	})
}

// FuzzPickManifest feeds arbitrary index documents (a registry's or an OCI
// layout's) to pickManifest with a platform. The manifest it picks is the
// first entry whose platform matches (checked here by hand), refused as
// ErrInvalid when that entry's digest is no sha256 digest; no match is
// ErrNotFound; every error is one line.
func FuzzPickManifest(f *testing.F) {
	entry := func(d, os, arch, variant string) string {
		return fmt.Sprintf(`{"mediaType":%q,"size":10,"digest":%q,"platform":{"os":%q,"architecture":%q,"variant":%q}}`,
			types.OCIManifestSchema1, d, os, arch, variant)
	}
	for _, s := range []struct{ index, platform string }{
		{fmt.Sprintf(`{"schemaVersion":2,"manifests":[%s,%s]}`, entry(digestA, "linux", "arm", "v7"), entry(digestB, "linux", "amd64", "")), "linux/amd64"},
		{fmt.Sprintf(`{"schemaVersion":2,"manifests":[%s,%s]}`, entry(digestA, "linux", "arm", "v7"), entry(digestB, "linux", "arm", "v6")), "linux/arm/v6"},
		{fmt.Sprintf(`{"schemaVersion":2,"manifests":[%s]}`, entry(digestA, "linux\n", "amd64\r", "")), "linux/arm64"},
		{fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"size":1,"digest":%q}]}`, digestA), "linux/amd64"},
		{`{"schemaVersion":2,"manifests":[{"platform":{"os":"linux","architecture":"amd64"}}]}`, "linux/amd64"},
		{`{"manifests":null}`, "linux/amd64"}, {`{}`, "windows/amd64"},
	} {
		f.Add([]byte(s.index), s.platform)
	}
	f.Fuzz(func(t *testing.T, raw []byte, platform string) {
		p, err := ParsePlatform(platform)
		if err != nil {
			p = v1.Platform{OS: "linux", Architecture: "amd64"}
		}
		im, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
		if err != nil {
			return // go-containerregistry's parser; what it refuses never reaches pickManifest
		}
		d, err := pickManifest(im, p, "the index")
		oneLine(t, err)
		want := -1
		for i, m := range im.Manifests {
			if m.Platform != nil && m.Platform.OS == p.OS && m.Platform.Architecture == p.Architecture &&
				(p.Variant == "" || m.Platform.Variant == "" || m.Platform.Variant == p.Variant) {
				want = i
				break
			}
		}
		switch {
		case want < 0 && !errors.Is(err, ErrNotFound):
			t.Errorf("no entry matches %+v: got %s, %v; want ErrNotFound", p, d, err)
		case want >= 0 && !validDigest(im.Manifests[want].Digest) && !errors.Is(err, ErrInvalid):
			t.Errorf("entry %d matches %+v by digest %q: got %s, %v; want ErrInvalid", want, p, im.Manifests[want].Digest, d, err)
		case want >= 0 && validDigest(im.Manifests[want].Digest) && (err != nil || d != im.Manifests[want].Digest):
			t.Errorf("entry %d (%s) matches %+v: got %s, %v", want, im.Manifests[want].Digest, p, d, err)
		}
		if err == nil && !validDigest(d) {
			t.Errorf("picked digest %q", d)
		}
	})
}
