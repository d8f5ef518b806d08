package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/minictr/minictr/internal/stringid"
)

// PushOptions tune Push.
type PushOptions struct{}

// Pushed is what the registry now holds: the manifest's digest and size.
type Pushed struct {
	Digest string
	Size   int64
}

// Push sends an image of s to the registry its reference names. Blobs the
// registry already has are skipped (a HEAD request each); blobs the image
// was pulled with from another repository of the same registry are mounted
// from there instead of uploaded.
func (c *Client) Push(ctx context.Context, s *Store, ref string, opts PushOptions) (Pushed, error) {
	r, err := c.Parse(ref)
	if err != nil {
		return Pushed{}, err
	}
	ix, err := s.readIndex()
	if err != nil {
		return Pushed{}, err
	}
	m, err := ix.find(ref)
	if err != nil {
		return Pushed{}, err // find names the reference
	}
	img, err := s.v1Image(ix.Images[m], m, c.opts.Progress)
	if err != nil {
		return Pushed{}, fmt.Errorf("pushing %s: %w", r, err)
	}
	if err := remote.Write(r.ref, img, c.remoteOptions(ctx)...); err != nil {
		return Pushed{}, fmt.Errorf("pushing %s: %w", r, classify(err))
	}
	for _, l := range img.blobs {
		st := StatusLayerFound
		if l.read.Load() {
			st = StatusPushed
		}
		c.opts.Progress.Update(Event{ID: stringid.Short(l.desc.Digest.Hex), Status: st, Current: l.desc.Size, Total: l.desc.Size})
	}
	// Remember the digest it now has in that repository, and the repository
	// as the place its blobs can be mounted from by the next push.
	if err := s.addRepoDigest(ctx, m, r.Name()+"@"+m, r.ref.Context().String()); err != nil {
		return Pushed{}, err
	}
	raw, err := img.RawManifest()
	return Pushed{Digest: m, Size: int64(len(raw))}, err
}

// addRepoDigest records that the image manifest names is rd in a
// registry, and that its blobs can be mounted from source.
func (s *Store) addRepoDigest(ctx context.Context, manifest, rd, source string) error {
	return s.update(ctx, "push", func(ix *index) error {
		rec, ok := ix.Images[manifest]
		if !ok || slices.Contains(rec.RepoDigests, rd) && rec.Source == source {
			return errUnchanged
		}
		if !slices.Contains(rec.RepoDigests, rd) {
			rec.RepoDigests = append(rec.RepoDigests, rd)
		}
		rec.Source = source
		return nil
	})
}

// v1Image presents a stored image as a go-containerregistry v1.Image, whose
// bytes are exactly the stored blobs: the manifest digest does not change
// on the way out, which is what lets push, save and skopeo agree.
// p receives the progress of uploads (push); nil = none.
func (s *Store) v1Image(rec *record, manifest string, p Progress) (*storeImage, error) {
	if p == nil {
		p = discardProgress{}
	}
	md, err := v1.NewHash(manifest)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(s.blobPath(md))
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	mf, err := checkManifest(raw)
	if err != nil {
		return nil, err
	}
	core := &storeCore{s: s, raw: raw, manifest: mf, p: p}
	img, err := partial.CompressedToImage(core)
	if err != nil {
		return nil, err
	}
	var src name.Reference
	if rec.Source != "" {
		if repo, err := name.NewRepository(rec.Source); err == nil {
			src = repo.Tag("latest")
		}
	}
	out := &storeImage{Image: img}
	for _, d := range mf.Layers {
		sl := &storeLayer{s: s, desc: d, p: p}
		l, err := partial.CompressedToLayer(sl)
		if err != nil {
			return nil, err
		}
		out.blobs = append(out.blobs, sl)
		if src != nil {
			l = &remote.MountableLayer{Layer: l, Reference: src}
		}
		out.layers = append(out.layers, l)
	}
	return out, nil
}

// storeImage overrides Layers so that remote.Write sees mountable layers.
type storeImage struct {
	v1.Image
	layers []v1.Layer
	blobs  []*storeLayer // the same layers, to see which were uploaded
}

func (i *storeImage) Layers() ([]v1.Layer, error) { return i.layers, nil }

type storeCore struct {
	s        *Store
	raw      []byte
	manifest *v1.Manifest
	p        Progress
}

func (c *storeCore) RawManifest() ([]byte, error) { return c.raw, nil }

func (c *storeCore) MediaType() (types.MediaType, error) {
	if c.manifest.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return c.manifest.MediaType, nil
}

func (c *storeCore) RawConfigFile() ([]byte, error) {
	return os.ReadFile(c.s.blobPath(c.manifest.Config.Digest))
}

func (c *storeCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, d := range c.manifest.Layers {
		if d.Digest == h {
			return &storeLayer{s: c.s, desc: d, p: c.p}, nil
		}
	}
	if h == c.manifest.Config.Digest {
		return &storeLayer{s: c.s, desc: c.manifest.Config, p: c.p}, nil
	}
	return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
}

// storeLayer is one compressed blob of the store.
type storeLayer struct {
	s    *Store
	desc v1.Descriptor
	p    Progress
	read atomic.Bool // Compressed was called: the blob was uploaded
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storeLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.s.blobPath(l.desc.Digest))
	if err != nil {
		return nil, err
	}
	l.read.Store(true)
	pr := &progressReader{r: f, p: l.p, ev: Event{ID: stringid.Short(l.desc.Digest.Hex), Status: StatusPushing, Total: l.desc.Size}}
	return readCloser{pr, f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
