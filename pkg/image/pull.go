package image

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PullOptions tune Pull.
type PullOptions struct {
	// Platform overrides the store's platform for this pull (--platform).
	Platform *v1.Platform
}

// Pull downloads ref from its registry into s: it verifies every part,
// unpacks the layers and tags the image. From a multi-arch index it picks
// the platform's manifest. Errors name the reference and the cause.
func (c *Client) Pull(ctx context.Context, s *Store, ref string, opts PullOptions) (*Image, error) {
	r, err := c.Parse(ref)
	if err != nil {
		return nil, err
	}
	img, err := c.pull(ctx, s, r, opts)
	if errors.Is(err, ErrPlatform) {
		return nil, err // names the reference already, in docker's words
	}
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", r, classify(err))
	}
	return img, nil
}

func (c *Client) pull(ctx context.Context, s *Store, r Reference, opts PullOptions) (*Image, error) {
	platform := c.opts.Platform
	if opts.Platform != nil {
		platform = *opts.Platform
	}
	ropts := append(c.remoteOptions(ctx), remote.WithPlatform(platform))
	desc, err := remote.Get(r.ref, ropts...)
	if err != nil {
		return nil, err
	}
	if len(desc.Manifest) > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest of %d bytes is over the %d-byte limit", ErrInvalid, len(desc.Manifest), MaxManifestSize)
	}
	if err := checkNotAmbiguous(desc.Manifest); err != nil {
		return nil, err
	}
	if sha256Hash(desc.Manifest) != desc.Digest {
		return nil, fmt.Errorf("%w: manifest digest mismatch: registry says %s, content is %s", ErrInvalid, desc.Digest, sha256Hash(desc.Manifest))
	}
	c.opts.Tracer.Step("registry", fmt.Sprintf("resolved %s to %s (%s)", r, desc.Digest, desc.MediaType), "")

	src := r.ref.Context()
	repoDigest := r.Name() + "@" + desc.Digest.String()
	var img v1.Image
	if desc.MediaType.IsIndex() {
		child, err := selectPlatform(desc, platform)
		if err != nil {
			return nil, err
		}
		c.opts.Tracer.Step("registry", fmt.Sprintf("index: picked %s for %s", child, platformString(platform)), "")
		img, err = remote.Image(src.Digest(child.String()), ropts...)
		if err != nil {
			return nil, err
		}
	} else {
		img, err = desc.Image()
		if err != nil {
			return nil, err
		}
		// A single manifest names no platform: its config does. Check it
		// before any layer is downloaded, or an amd64 image asked for as
		// linux/s390x would be stored and run.
		if opts.Platform != nil {
			cfg, err := img.ConfigFile()
			if err != nil {
				return nil, err
			}
			if err := matchPlatform(r.String(), cfg, platform); err != nil {
				return nil, err
			}
		}
	}

	in := incoming{img: img, repoDigest: repoDigest, source: src.String(), progress: c.opts.Progress}
	if r.Tag != "" && r.Digest == "" {
		in.tags = []Reference{r}
	}
	return s.add(ctx, "pull", in)
}

// ErrPlatform: an image is not for the platform asked for (--platform).
var ErrPlatform = errors.New("image platform does not match")

// CheckPlatform refuses a local image that is not for p, as docker refuses
// `run --platform` of an image of another platform. ref is the reference
// the user gave, for the error.
func (img *Image) CheckPlatform(ref string, p v1.Platform) error {
	return matchPlatform(ref, &img.Config, p)
}

// matchPlatform compares an image's config with the platform asked for:
// OS and architecture, and the variant when both name one. A config that
// names no OS (some hand-made images) is taken as matching.
func matchPlatform(ref string, cfg *v1.ConfigFile, want v1.Platform) error {
	have := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if have.OS == "" || have.OS == want.OS && have.Architecture == want.Architecture &&
		(want.Variant == "" || have.Variant == "" || have.Variant == want.Variant) {
		return nil
	}
	return platformError{ref: ref, have: have, want: want}
}

type platformError struct {
	ref        string
	have, want v1.Platform
}

func (e platformError) Error() string {
	return fmt.Sprintf("image with reference %s was found but its platform (%s) does not match the specified platform (%s)",
		e.ref, platformString(e.have), platformString(e.want))
}

func (e platformError) Is(target error) bool { return target == ErrPlatform }

// selectPlatform picks from a registry's index the manifest for platform.
func selectPlatform(desc *remote.Descriptor, p v1.Platform) (v1.Hash, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	return pickManifest(im, p, "the index")
}

// pickManifest picks from an index the manifest for platform, as docker
// does: OS and architecture must match, and the variant when both name
// one. where says which index, for the error.
func pickManifest(im *v1.IndexManifest, p v1.Platform, where string) (v1.Hash, error) {
	var seen []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		ps := platformString(*m.Platform)
		if slices.ContainsFunc(strings.Split(ps, "/"), badPlatformPart) {
			ps = strconv.Quote(ps) // the index's text, not ours: no newline may reach the error
		}
		seen = append(seen, ps)
		if m.Platform.OS == p.OS && m.Platform.Architecture == p.Architecture &&
			(p.Variant == "" || m.Platform.Variant == "" || p.Variant == m.Platform.Variant) {
			if err := checkDigest("the manifest for "+platformString(p)+" in "+where, m.Digest); err != nil {
				return v1.Hash{}, err
			}
			return m.Digest, nil
		}
	}
	return v1.Hash{}, fmt.Errorf("%w: no manifest for platform %s in %s (it has %s)", ErrNotFound, platformString(p), where, strings.Join(seen, ", "))
}

// platformString is os/arch[/variant], as --platform takes it.
func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform reads "os/arch[/variant]" as --platform takes it. Each part
// is letters, digits, '_', '-' or '.', as containerd's parser wants: a space
// or a newline would only travel on into a registry query or an error.
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || slices.ContainsFunc(parts, badPlatformPart) {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func badPlatformPart(p string) bool {
	return p == "" || strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != ""
}
