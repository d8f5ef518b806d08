package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ImportOptions are docker import's: a tag for the new image and
// --change instructions for its configuration.
type ImportOptions struct {
	Ref     string   // "repository[:tag]" to tag it with; "" leaves it untagged
	Changes []string // Dockerfile-like: CMD, ENTRYPOINT, ENV, WORKDIR, USER
}

// Import makes a one-layer image of a root filesystem tar stream (what
// `tar -C rootfs -c .` writes), as docker import does, and adds it to the
// store like any pulled image: verified, unpacked, tagged.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	var tags []Reference
	if opts.Ref != "" {
		ref, err := ParseReference(opts.Ref)
		if err != nil {
			return nil, err
		}
		tags = append(tags, ref)
	}
	cfg, err := applyChanges(v1.Config{}, opts.Changes)
	if err != nil {
		return nil, err
	}
	tmp, done, err := s.workDir("import")
	if err != nil {
		return nil, err
	}
	defer done()
	// Keep the tar: the layer is read twice, to digest it and to store it.
	name, err := spool(ctx, r, filepath.Join(tmp, "layer.tar"))
	if err != nil {
		return nil, fmt.Errorf("importing: reading the tar: %w", err)
	}
	l, err := tarball.LayerFromFile(name)
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	if err := checkTar(l); err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	now := v1.Time{Time: time.Now().UTC()}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created, cf.Config = runtime.GOARCH, "linux", now, cfg
	cf.History = []v1.History{{Created: now, CreatedBy: "minictr import", Comment: "Imported from tarball"}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	s.opts.Tracer.Step("image", "import a root filesystem tar as a one-layer image", "")
	return s.add(ctx, "import", incoming{img: img, tags: tags})
}

// checkTar refuses input that would make an image of nothing: an empty
// stream (/dev/null), a tar archive without entries, or no tar at all.
// One header is enough to tell; a tar broken further on fails at unpack.
func checkTar(l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = tar.NewReader(rc).Next()
	switch {
	case err == io.EOF:
		return fmt.Errorf("%w: the input is empty: want a tar archive of a root filesystem", ErrInvalid)
	case err != nil:
		return fmt.Errorf("%w: the input is not a tar archive: %v", ErrInvalid, err)
	}
	return nil
}

// applyChanges applies docker import's --change instructions. Values in
// JSON array form are taken as they are; others run through /bin/sh -c,
// as a Dockerfile's shell form.
func applyChanges(c v1.Config, changes []string) (v1.Config, error) {
	for _, ch := range changes {
		kw, arg, _ := strings.Cut(strings.TrimSpace(ch), " ")
		arg = strings.TrimSpace(arg)
		switch strings.ToUpper(kw) {
		case "CMD", "ENTRYPOINT":
			words, err := execForm(arg)
			if err != nil {
				return c, fmt.Errorf("invalid --change %q: %w", ch, err)
			}
			if strings.EqualFold(kw, "CMD") {
				c.Cmd = words
			} else {
				c.Entrypoint = words
			}
		case "ENV":
			k, v, ok := strings.Cut(arg, "=")
			if !ok {
				k, v, ok = strings.Cut(arg, " ")
			}
			if !ok || k == "" {
				return c, fmt.Errorf("invalid --change %q: want ENV KEY=VALUE", ch)
			}
			c.Env = append(c.Env, k+"="+strings.TrimSpace(v))
		case "WORKDIR":
			c.WorkingDir = arg
		case "USER":
			c.User = arg
		default:
			return c, fmt.Errorf("invalid --change %q: only CMD, ENTRYPOINT, ENV, WORKDIR and USER are supported", ch)
		}
	}
	return c, nil
}

func execForm(arg string) ([]string, error) {
	if !strings.HasPrefix(arg, "[") {
		return []string{"/bin/sh", "-c", arg}, nil
	}
	var words []string
	if err := json.Unmarshal([]byte(arg), &words); err != nil {
		return nil, fmt.Errorf("not a JSON array of strings")
	}
	return words, nil
}

// spool copies r into the file name (in a work directory of tmp/,
// removed by the caller), so that a stream can be read more than once; ctx stops it.
func spool(ctx context.Context, r io.Reader, name string) (string, error) {
	f, err := os.Create(name)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, &ctxReader{ctx: ctx, r: r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return name, err
}
