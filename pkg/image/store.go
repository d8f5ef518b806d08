package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minictr/minictr/internal/atomicfile"
	"github.com/minictr/minictr/pkg/trace"
)

// Sentinel errors, for errors.Is.
var (
	ErrNotFound = errors.New("image not found")
	ErrInUse    = errors.New("image is in use by a container")
	ErrInvalid  = errors.New("invalid image")
	// ErrUnauthorized: the registry wants (other) credentials.
	ErrUnauthorized = errors.New("unauthorized")
)

// Limits on what we read from a registry or an archive before parsing it.
const (
	MaxManifestSize = 4 << 20 // manifests, indexes and configs
	// A layer may not unpack to more than this multiple of its compressed
	// size (nor less than MinUnpackCap): this is what stops a gzip bomb.
	unpackRatio  = 64
	MinUnpackCap = 256 << 20
)

// Options configure a Store.
type Options struct {
	Tracer   trace.Tracer // store steps (--explain); nil = none
	Progress Progress     // per-layer progress of Load and Import; nil = none
	// Platform selects from the multi-arch indexes of OCI layouts; zero =
	// the host's.
	Platform v1.Platform
	// Waiting is told, once per wait, that a change of the store waits for
	// the lock another process holds; nil = wait silently. The wait itself
	// ends when the lock frees or the context is cancelled.
	Waiting func(LockHolder)
	// InUse reports whether a container uses an image (by ID); Remove
	// refuses such images unless forced.
	InUse func(imageID string) bool
	// ReadOnly opens without creating anything: a store that does not
	// exist reads as empty (for verbs that only read, such as `images`).
	ReadOnly bool
}

// A Store keeps images under one root directory:
//
//	blobs/sha256/<hex>     manifests, configs and compressed layers, by digest
//	layers/<chain-hex>/    one unpacked layer: rootfs/ and layer.json (written last)
//	index.json             tags (repository:tag -> manifest) and image records
//	lock                   flock(2)ed while the index changes; names its holder
//	tmp/<op>.*/            work in progress of one operation, flock(2)ed by it (see workDir)
//
// Everything enters the store by rename(2) after it has been verified, so a
// reader never sees half a blob or half a layer, and kill -9 at any moment
// leaves a store that works. Readers take no lock; slow work (downloads,
// unpacking, reading an archive) happens in tmp/ without it, and only the
// renames and the index write that make it part of the store hold it.
type Store struct {
	root string
	opts Options
	// minUnpackCap is the smallest unpacked-size cap of a layer; tests
	// lower it to prove the gzip bomb defence without writing 256 MiB.
	minUnpackCap int64
}

// Open opens (creating if needed, unless opts.ReadOnly) the store at root,
// and reclaims what dead operations left in tmp/.
func Open(root string, opts Options) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "layers", "tmp"} {
		if opts.ReadOnly { // a reader must not create a mistyped --root
			break
		}
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("opening image store: %w", err)
		}
	}
	opts.Tracer = trace.Or(opts.Tracer)
	if opts.Progress == nil {
		opts.Progress = discardProgress{}
	}
	if opts.Platform.OS == "" {
		opts.Platform = hostPlatform()
	}
	s := &Store{root: root, opts: opts, minUnpackCap: MinUnpackCap}
	s.reclaim()
	return s, nil
}

// hostPlatform is the platform this binary runs on.
func hostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// Root is the directory of the store.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(d v1.Hash) string {
	return filepath.Join(s.root, "blobs", d.Algorithm, d.Hex)
}

func (s *Store) layerPath(chain v1.Hash) string {
	return filepath.Join(s.root, "layers", chain.Hex)
}

// index is the store's table of contents, index.json.
type index struct {
	// Tags maps a full reference ("docker.io/library/busybox:latest") to the
	// digest of a manifest in Images.
	Tags map[string]string `json:"tags"`
	// Images maps a manifest digest to what we know about that image.
	Images map[string]*record `json:"images"`
}

// A record is one image of the store.
type record struct {
	ID          string    `json:"id"`     // config digest: docker's image ID
	Config      string    `json:"config"` // == ID, kept for readers of the file
	Layers      []string  `json:"layers"` // compressed layer digests, bottom first
	DiffIDs     []string  `json:"diff_ids"`
	ChainIDs    []string  `json:"chain_ids"`
	Size        int64     `json:"size"` // unpacked bytes
	RepoDigests []string  `json:"repo_digests,omitempty"`
	Source      string    `json:"source,omitempty"` // repository it came from, for cross-repo mounts
	Added       time.Time `json:"added"`
}

func (s *Store) readIndex() (*index, error) {
	ix := &index{Tags: map[string]string{}, Images: map[string]*record{}}
	data, err := os.ReadFile(filepath.Join(s.root, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return ix, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading image index: %w", err)
	}
	if err := json.Unmarshal(data, ix); err != nil {
		return nil, fmt.Errorf("reading image index %s: %w", filepath.Join(s.root, "index.json"), err)
	}
	if ix.Tags == nil {
		ix.Tags = map[string]string{}
	}
	if ix.Images == nil {
		ix.Images = map[string]*record{}
	}
	return ix, nil
}

func (s *Store) writeIndex(ix *index) error {
	data, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(s.root, "index.json")
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return fmt.Errorf("writing image index: %w", err)
	}
	s.opts.Tracer.Step("store", "rename index.json (tags -> manifest digests)", "")
	return nil
}

// update is the one way the index changes: lock, read, change, write.
// change edits the index it is given; when it returns an error nothing is
// written. op names the operation for whoever waits for the lock. When
// images leave the index, what they alone used is collected after the write.
//
// On a full disk the new index.json has no room (atomicfile writes it next
// to the old one): the layer blobs that the changed index no longer needs
// are then removed first, and the write tried again, so that rmi and prune
// can always empty a full disk (see makeRoom).
func (s *Store) update(ctx context.Context, op string, change func(*index) error) error {
	unlock, err := s.lock(ctx, op)
	if err != nil {
		return err
	}
	defer unlock()
	ix, err := s.readIndex()
	if err != nil {
		return err
	}
	before, images := layerBlobs(ix), len(ix.Images)
	if err := change(ix); err != nil {
		if errors.Is(err, errUnchanged) {
			return nil
		}
		return err
	}
	err = s.writeIndex(ix)
	if isNoSpace(err) && s.makeRoom(before, layerBlobs(ix)) {
		err = s.writeIndex(ix)
	}
	if err != nil || len(ix.Images) >= images {
		return err
	}
	// Images left the index: their blobs and layers that no other image
	// shares go too, now that the index no longer names them.
	return s.collect(ix)
}

// errUnchanged, returned by the change of update, skips the write: a full
// disk has no room for even the same index.
var errUnchanged = errors.New("index unchanged")

// find resolves a user's reference against the index: a tag, a digest
// reference, an image ID or a unique prefix of one (as docker accepts).
// It returns the manifest digest.
func (ix *index) find(s string) (string, error) {
	// "sha256:..." is always an image ID (or a prefix of one), never a
	// repository named sha256; 4 or more bare hex digits are tried as an ID
	// prefix first, then as a name, as docker does.
	id, isID := strings.CutPrefix(s, "sha256:")
	if isID || len(id) >= 4 && isHex(id) {
		var match []string
		for m, r := range ix.Images {
			if id != "" && isHex(id) && strings.HasPrefix(strings.TrimPrefix(r.ID, "sha256:"), id) {
				match = append(match, m)
			}
		}
		if len(match) == 1 {
			return match[0], nil
		}
		if len(match) > 1 {
			return "", fmt.Errorf("%s: ambiguous image ID prefix", s)
		}
		if isID {
			return "", fmt.Errorf("%s: %w", s, ErrNotFound)
		}
	}
	ref, err := ParseReference(s)
	if err != nil {
		return "", err
	}
	if ref.Digest != "" {
		for m, r := range ix.Images {
			if m == ref.Digest {
				return m, nil
			}
			for _, rd := range r.RepoDigests {
				if rd == ref.Name()+"@"+ref.Digest {
					return m, nil
				}
			}
		}
		return "", fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	if m, ok := ix.Tags[ref.String()]; ok {
		return m, nil
	}
	return "", fmt.Errorf("%s: %w", ref, ErrNotFound)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
