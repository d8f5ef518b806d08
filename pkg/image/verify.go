package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// checkManifest parses a raw image manifest after the checks that must come
// before trusting it: a size cap, a known media type, and not being an index
// at the same time (a document that is both could be read two ways by two
// tools, so that one image would have two meanings).
func checkManifest(raw []byte) (*v1.Manifest, error) {
	if len(raw) > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest of %d bytes is over the %d-byte limit", ErrInvalid, len(raw), MaxManifestSize)
	}
	if err := checkNotAmbiguous(raw); err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: parsing manifest: %v", ErrInvalid, err)
	}
	switch m.MediaType {
	case types.DockerManifestSchema2, types.OCIManifestSchema1, "":
	default:
		return nil, fmt.Errorf("%w: manifest media type %q is not an image manifest", ErrInvalid, m.MediaType)
	}
	if m.Config.Size > MaxManifestSize || m.Config.Size < 0 {
		return nil, fmt.Errorf("%w: config of %d bytes is over the %d-byte limit", ErrInvalid, m.Config.Size, MaxManifestSize)
	}
	if err := checkDigest("config", m.Config.Digest); err != nil {
		return nil, err
	}
	if len(m.Layers) == 0 {
		return nil, fmt.Errorf("%w: manifest lists no layers", ErrInvalid)
	}
	for i, l := range m.Layers {
		if err := checkDigest(fmt.Sprintf("layer %d", i+1), l.Digest); err != nil {
			return nil, err
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("%w: layer %s has a negative size", ErrInvalid, l.Digest)
		}
	}
	return m, nil
}

// checkDigest refuses a descriptor without a digest (go-containerregistry
// leaves it zero: the store would name blobs/ itself) or with another
// algorithm than the sha256 the store verifies and names files by.
func checkDigest(what string, d v1.Hash) error {
	if d.Algorithm != "sha256" {
		return fmt.Errorf("%w: %s has digest %q, want a sha256 digest", ErrInvalid, what, d)
	}
	return nil
}

// checkNotAmbiguous refuses a document with both "manifests" (an index) and
// "layers" or "config" (a manifest).
func checkNotAmbiguous(raw []byte) error {
	var probe struct {
		Manifests json.RawMessage `json:"manifests"`
		Layers    json.RawMessage `json:"layers"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return fmt.Errorf("%w: parsing manifest: %v", ErrInvalid, err)
	}
	if probe.Manifests != nil && (probe.Layers != nil || probe.Config != nil) {
		return fmt.Errorf("%w: document is both an index and a manifest", ErrInvalid)
	}
	return nil
}

// checkConfig verifies the config blob against its descriptor in the
// manifest, then parses it and checks that it describes as many layers as
// the manifest lists.
func checkConfig(raw []byte, m *v1.Manifest) (*v1.ConfigFile, error) {
	if int64(len(raw)) != m.Config.Size {
		return nil, fmt.Errorf("%w: config is %d bytes, manifest says %d", ErrInvalid, len(raw), m.Config.Size)
	}
	if got := sha256Hash(raw); got != m.Config.Digest {
		return nil, fmt.Errorf("%w: config digest mismatch: manifest says %s, content is %s", ErrInvalid, m.Config.Digest, got)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: parsing config: %v", ErrInvalid, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: config lists %d diff_ids for %d layers", ErrInvalid, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	return cfg, nil
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// chainIDs computes the OCI chain ID of each layer: the first layer's is its
// diff_id, each next one is sha256("<parent chain ID> <diff_id>"). A chain ID
// names a layer *together with everything under it*, which is what an
// unpacked directory depends on.
func chainIDs(diffIDs []v1.Hash) []v1.Hash {
	out := make([]v1.Hash, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = sha256Hash([]byte(out[i-1].String() + " " + d.String()))
	}
	return out
}
