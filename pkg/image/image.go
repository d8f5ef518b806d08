package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minictr/minictr/internal/stringid"
)

// An Image is an image of the store, ready to run.
type Image struct {
	ID          string        // config digest ("sha256:..."), docker's IMAGE ID
	Digest      string        // manifest digest
	Tags        []string      // full references pointing at it
	RepoDigests []string      // "repo@sha256:..." it was pulled or pushed by
	Config      v1.ConfigFile // Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, Volumes ...
	Layers      []string      // unpacked layer directories, top first (for snapshot.Prepare)
	DiffIDs     []string      // bottom first, as in the config
	LayerSizes  []int64       // unpacked bytes of each layer, bottom first
	Size        int64         // unpacked bytes
	Created     time.Time     // from the config
}

// Get returns a local image by reference, image ID or ID prefix. It takes
// no lock: everything it reads was renamed into place complete.
func (s *Store) Get(ref string) (*Image, error) {
	// Readers take no lock: an rmi may remove the image between our read
	// of the index and of its files. A file gone missing sends us back to
	// the index, which then says the image is gone (ErrNotFound), or
	// names its new files if it was pulled again meanwhile.
	for attempt := 1; ; attempt++ {
		ix, err := s.readIndex()
		if err != nil {
			return nil, err
		}
		m, err := ix.find(ref)
		if err != nil {
			return nil, err
		}
		img, err := s.image(ix, m)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue
		}
		return img, err
	}
}

// image builds an Image from its record.
func (s *Store) image(ix *index, manifest string) (*Image, error) {
	rec, ok := ix.Images[manifest]
	if !ok {
		return nil, fmt.Errorf("%s: %w", manifest, ErrNotFound)
	}
	cfgDigest, err := v1.NewHash(rec.Config)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", manifest, err)
	}
	raw, err := os.ReadFile(s.blobPath(cfgDigest))
	if err != nil {
		return nil, fmt.Errorf("image %s: reading config: %w", stringid.Short(rec.ID), err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("image %s: parsing config: %w", rec.ID, err)
	}
	img := &Image{
		ID:          rec.ID,
		Digest:      manifest,
		RepoDigests: rec.RepoDigests,
		Config:      *cfg,
		DiffIDs:     rec.DiffIDs,
		Size:        rec.Size,
		Created:     cfg.Created.Time,
	}
	img.Tags = tagsOf(ix, manifest)
	// One read of each layer's layer.json (written last: a layer without
	// it is incomplete), bottom first; Layers is top first, as overlayfs
	// wants its lowerdirs.
	img.Layers = make([]string, len(rec.ChainIDs))
	for i, c := range rec.ChainIDs {
		chain, err := v1.NewHash(c)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", rec.ID, err)
		}
		meta, err := s.readLayerMeta(chain)
		if errors.Is(err, fs.ErrNotExist) {
			// Get reads the index again: removed meanwhile, or broken.
			return nil, fmt.Errorf("image %s: layer %s is missing from the store: %w", rec.ID, chain, err)
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", rec.ID, chain, err)
		}
		img.Layers[len(rec.ChainIDs)-1-i] = filepath.Join(s.layerPath(chain), "rootfs")
		img.LayerSizes = append(img.LayerSizes, meta.Size)
	}
	return img, nil
}

// A Summary is one line of `images`: an image under one of its tags.
type Summary struct {
	Repository string // familiar name ("busybox"), "<none>" for untagged
	Tag        string
	Reference  string // full reference, "" for untagged
	Digest     string // manifest digest
	ID         string
	Created    time.Time
	Size       int64
}

// List returns every tag of every image, and untagged images once, newest
// first as docker shows them.
func (s *Store) List() ([]Summary, error) {
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []Summary
	for m := range ix.Images {
		img, err := s.image(ix, m)
		if err != nil {
			return nil, err
		}
		base := Summary{Repository: "<none>", Tag: "<none>", Digest: m, ID: img.ID, Created: img.Created, Size: img.Size}
		if len(img.Tags) == 0 {
			out = append(out, base)
		}
		for _, t := range img.Tags {
			ref, err := ParseReference(t)
			if err != nil {
				continue
			}
			sum := base
			sum.Repository, sum.Tag, sum.Reference = ref.Familiar(), ref.Tag, t
			out = append(out, sum)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		if out[i].Repository != out[j].Repository {
			return out[i].Repository < out[j].Repository
		}
		return out[i].Tag < out[j].Tag
	})
	return out, nil
}

// Tag points target (a tag reference) at the image src names.
func (s *Store) Tag(ctx context.Context, src, target string) error {
	ref, err := ParseReference(target)
	if err != nil {
		return err
	}
	if ref.Tag == "" || ref.Digest != "" {
		return fmt.Errorf("tag %q: a tag reference has a tag and no digest", target)
	}
	return s.update(ctx, "tag", func(ix *index) error {
		m, err := ix.find(src)
		if err != nil {
			return err
		}
		ix.Tags[ref.String()] = m
		return nil
	})
}

// RemoveOptions tune Remove.
type RemoveOptions struct {
	Force bool // remove the image even if a container uses it, and every tag of it
}

// Removed says what Remove did, in docker's words.
type Removed struct {
	Untagged []string
	Deleted  []string // image IDs whose image is gone
}

// Remove untags ref; when no tag is left (or ref is an ID), the image itself
// goes, and the blobs and layers no other image shares. An image a container
// uses (Options.InUse) is refused with ErrInUse; forced, it loses its tags
// but stays on disk for the container until a prune finds it unused.
func (s *Store) Remove(ctx context.Context, ref string, opts RemoveOptions) (Removed, error) {
	var out Removed
	err := s.update(ctx, "rmi", func(ix *index) error {
		out = Removed{}
		m, err := ix.find(ref)
		if err != nil {
			return err
		}
		rec := ix.Images[m]
		byTag := false
		if r, err := ParseReference(ref); err == nil && ix.Tags[r.String()] == m {
			byTag = true
			delete(ix.Tags, r.String())
			out.Untagged = append(out.Untagged, r.String())
		}
		remaining := tagsOf(ix, m)
		if byTag && len(remaining) > 0 {
			return nil
		}
		if !byTag && len(remaining) > 1 && !opts.Force {
			return fmt.Errorf("image %s is referenced in multiple repositories (use -f to remove them all)", stringid.Short(rec.ID))
		}
		inUse := s.inUse(rec.ID)
		if inUse && !opts.Force {
			return fmt.Errorf("%s: %w (use -f to untag it anyway)", ref, ErrInUse)
		}
		for _, t := range remaining {
			delete(ix.Tags, t)
			out.Untagged = append(out.Untagged, t)
		}
		if inUse {
			// Forced, but a running container has these layers as its
			// overlay's lower directories: only the names go. The image
			// stays, untagged, until `image prune` finds it unused.
			return nil
		}
		delete(ix.Images, m)
		out.Deleted = append(out.Deleted, rec.ID)
		return nil
	})
	if err != nil {
		return Removed{}, err
	}
	return out, nil
}

func tagsOf(ix *index, manifest string) []string {
	var out []string
	for t, m := range ix.Tags {
		if m == manifest {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// PruneOptions tune Prune.
type PruneOptions struct {
	All bool // also images without a container, not only untagged ones
}

// Prune removes untagged images (all unused images with All), then every
// blob and layer no image refers to. It returns the removed image IDs and
// the bytes freed.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) ([]string, int64, error) {
	var removed []string
	var before int64
	err := s.update(ctx, "prune", func(ix *index) error {
		removed, before = nil, s.diskUsage()
		for m, rec := range ix.Images {
			if s.inUse(rec.ID) {
				continue
			}
			tags := tagsOf(ix, m)
			if len(tags) > 0 && !opts.All {
				continue
			}
			for _, t := range tags {
				delete(ix.Tags, t)
			}
			delete(ix.Images, m)
			removed = append(removed, rec.ID)
		}
		if len(removed) == 0 {
			// Nothing leaves the index: collect what crashes left.
			if err := s.collect(ix); err != nil {
				return err
			}
			return errUnchanged
		}
		return nil // update collects what the removed images leave
	})
	if err != nil {
		return nil, 0, err
	}
	return removed, max(0, before-s.diskUsage()), nil
}
