package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
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
	Tracer   trace.Tracer // registry requests and unpack steps (--explain)
	Progress Progress     // per-layer progress of pull and push; nil = none
	// Platform selects from multi-arch indexes; zero = the host's.
	Platform v1.Platform
	// Insecure lists registries reached over plain HTTP besides loopback.
	Insecure []string
	// Keychain finds credentials; nil = ~/.docker/config.json and its
	// credential helpers (authn.DefaultKeychain).
	Keychain authn.Keychain
	// InUse reports whether a container uses an image (by ID); Remove
	// refuses such images unless forced.
	InUse func(imageID string) bool
	// LeaseAlive reports whether the container holding a lease (Lease) still
	// lives; a dead container's lease is deleted. nil: every lease holds.
	LeaseAlive func(containerID string) bool
}

// A Store keeps images under one root directory:
//
//	blobs/sha256/<hex>     manifests, configs and compressed layers, by digest
//	layers/<chain-hex>/    one unpacked layer: rootfs/ and layer.json (written last)
//	index.json             tags (repository:tag -> manifest) and image records
//	lock                   flock(2)ed while the store changes
//	tmp/                   work in progress; cleaned at the next mutation
//
// Everything enters the store by rename(2) after it has been verified, so a
// reader never sees half a blob or half a layer, and kill -9 at any moment
// leaves a store that works. Readers take no lock.
type Store struct {
	root string
	opts Options
	// minUnpackCap is the smallest unpacked-size cap of a layer; tests
	// lower it to prove the gzip bomb defence without writing 256 MiB.
	minUnpackCap int64
}

// Open opens (creating if needed) the store at root.
func Open(root string, opts Options) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "layers", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("opening image store: %w", err)
		}
	}
	opts.Tracer = trace.Or(opts.Tracer)
	if opts.Progress == nil {
		opts.Progress = discardProgress{}
	}
	if opts.Platform.OS == "" {
		opts.Platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		if runtime.GOARCH == "arm64" {
			opts.Platform.Variant = "v8"
		}
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	return &Store{root: root, opts: opts, minUnpackCap: MinUnpackCap}, nil
}

// Root is the directory of the store.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(d v1.Hash) string {
	return filepath.Join(s.root, "blobs", d.Algorithm, d.Hex)
}

func (s *Store) layerPath(chain v1.Hash) string {
	return filepath.Join(s.root, "layers", chain.Hex)
}

// lock takes the store lock (an exclusive flock(2) on root/lock), then
// removes what interrupted operations left in tmp/: holding the lock, we
// know no other minictr is using it. The returned func releases the lock.
func (s *Store) lock() (func(), error) {
	path := filepath.Join(s.root, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking image store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking image store: %w", &os.PathError{Op: "flock", Path: path, Err: err})
	}
	s.opts.Tracer.Step("store", "flock(LOCK_EX) "+path, "flock "+path)
	s.cleanTmp()
	return func() { f.Close() }, nil // closing the file releases the flock
}

// cleanTmp removes the leftovers of interrupted operations.
func (s *Store) cleanTmp() {
	tmp := filepath.Join(s.root, "tmp")
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
}

// tempDir makes a directory in tmp/ for work in progress.
func (s *Store) tempDir(pattern string) (string, error) {
	return os.MkdirTemp(filepath.Join(s.root, "tmp"), pattern)
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

// find resolves a user's reference against the index: a tag, a digest
// reference, an image ID or a unique prefix of one (as docker accepts).
// It returns the manifest digest.
func (ix *index) find(s string) (string, error) {
	id := strings.TrimPrefix(s, "sha256:")
	if len(id) >= 4 && isHex(id) {
		var match []string
		for m, r := range ix.Images {
			if strings.HasPrefix(strings.TrimPrefix(r.ID, "sha256:"), id) {
				match = append(match, m)
			}
		}
		if len(match) == 1 {
			return match[0], nil
		}
		if len(match) > 1 {
			return "", fmt.Errorf("%s: ambiguous image ID prefix", s)
		}
		if strings.HasPrefix(s, "sha256:") {
			// An image ID, not a repository named "sha256".
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
