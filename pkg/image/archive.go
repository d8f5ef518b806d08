package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	pathpkg "path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Archive formats of Save and Load.
const (
	DockerArchive = "docker-archive" // `docker save`: manifest.json, <config>.json, layer tars
	OCIArchive    = "oci-archive"    // a tar of an OCI image layout: oci-layout, index.json, blobs/
)

// Annotations an OCI layout names its images with: the first by the OCI
// spec (skopeo and podman read it), the second by containerd.
const (
	annotationRefName    = "org.opencontainers.image.ref.name"
	annotationContainerd = "io.containerd.image.name"
)

// Save writes the images refs name to w as one archive in format.
func (s *Store) Save(w io.Writer, refs []string, format string) error {
	if format != DockerArchive && format != OCIArchive && format != "" {
		return fmt.Errorf("unknown archive format %q (want %s or %s)", format, DockerArchive, OCIArchive)
	}
	ix, err := s.readIndex()
	if err != nil {
		return err
	}
	images := map[name.Reference]v1.Image{}
	var order []name.Reference
	for _, ref := range refs {
		m, err := ix.find(ref)
		if err != nil {
			return err // find names the reference
		}
		img, err := s.v1Image(ix.Images[m], m, nil)
		if err != nil {
			return fmt.Errorf("saving %s: %w", ref, err)
		}
		// Tag references keep their name in the archive; IDs save untagged.
		var r name.Reference
		if pr, err := ParseReference(ref); err == nil && ix.Tags[pr.String()] == m {
			r = pr.ref
		} else {
			d, _ := name.NewDigest("unnamed/image@" + m)
			r = d
		}
		images[r] = img
		order = append(order, r)
	}
	switch format {
	case DockerArchive, "":
		s.opts.Tracer.Step("archive", fmt.Sprintf("write docker-archive of %d image(s): manifest.json, config, layers", len(images)), "")
		return tarball.MultiRefWrite(images, w)
	case OCIArchive:
		return s.saveOCI(w, order, images)
	}
	return fmt.Errorf("unknown archive format %q", format) // checked above: not reached
}

// saveOCI writes an OCI layout in a work directory, then streams it as a
// tar. Save takes no lock: the directory is its own (workDir) until it
// exits, whatever other commands do meanwhile.
func (s *Store) saveOCI(w io.Writer, order []name.Reference, images map[name.Reference]v1.Image) error {
	dir, done, err := s.workDir("save")
	if err != nil {
		return err
	}
	defer done()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	for _, r := range order {
		var opts []layout.Option
		if t, ok := r.(name.Tag); ok {
			full := Reference{Registry: displayRegistry(t.RegistryStr()), Repository: t.RepositoryStr(), Tag: t.TagStr()}
			opts = append(opts, layout.WithAnnotations(map[string]string{
				annotationRefName:    full.String(),
				annotationContainerd: full.String(),
			}))
		}
		if err := p.AppendImage(images[r], opts...); err != nil {
			return fmt.Errorf("writing OCI layout: %w", err)
		}
	}
	s.opts.Tracer.Step("archive", "write oci-archive: oci-layout, index.json, blobs/sha256/*", "tar -C LAYOUT -cf - .")
	return tarDir(w, dir)
}

// tarDir writes the regular files and directories under dir as a tar.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// Load reads a docker-archive or an OCI archive (told apart by content)
// from r, verifies each image as a pull does, and returns the references it
// tagged (or image IDs, for untagged images). Reading r takes no lock: a
// slow pipe into load holds up no other command.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]string, error) {
	tmp, done, err := s.workDir("load")
	if err != nil {
		return nil, err
	}
	defer done()
	// A tar may list manifest.json last and the reader may be a pipe: keep
	// a copy to read it as often as the docker-archive reader needs.
	archive, err := spool(ctx, r, filepath.Join(tmp, "archive.tar"))
	if err != nil {
		return nil, fmt.Errorf("loading: %w", err)
	}
	entries, format, err := readTarIndex(archive)
	if err != nil {
		return nil, err
	}
	s.opts.Tracer.Step("archive", "load "+format, "")
	if format == DockerArchive {
		return s.loadDocker(ctx, archive, entries)
	}
	dir := filepath.Join(tmp, "layout")
	if err := untarFiles(archive, dir); err != nil {
		return nil, fmt.Errorf("loading oci-archive: %w", err)
	}
	return s.loadLayout(ctx, dir)
}

// LoadLayout imports the images of an OCI layout directory (skopeo's oci:DIR).
func (s *Store) LoadLayout(ctx context.Context, dir string) ([]string, error) {
	return s.loadLayout(ctx, dir)
}

// readTarIndex lists the entries of an archive by cleaned name (the first
// entry of each name, which is the one go-containerregistry's reader
// finds), and tells a docker-archive (manifest.json) from an OCI layout
// (oci-layout) by whichever of the two comes first.
func readTarIndex(path string) (map[string]*tar.Header, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	entries := map[string]*tar.Header{}
	format := ""
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("loading: reading archive: %w", err)
		}
		name := pathpkg.Clean(hdr.Name)
		if _, ok := entries[name]; !ok {
			entries[name] = hdr
		}
		if format == "" && name == "manifest.json" {
			format = DockerArchive
		}
		if format == "" && name == "oci-layout" {
			format = OCIArchive
		}
	}
	if format == "" {
		return nil, "", fmt.Errorf("loading: %w: neither manifest.json nor oci-layout in the archive", ErrInvalid)
	}
	return entries, format, nil
}

// checkSmall refuses, before anything reads it, a document of the archive
// (manifest.json, a config) over MaxManifestSize: an archive is untrusted
// input, and go-containerregistry reads these whole. Links are followed as
// that reader follows them.
func checkSmall(entries map[string]*tar.Header, name string) error {
	for hops := 0; hops < 40; hops++ {
		hdr, ok := entries[pathpkg.Clean(name)]
		if !ok {
			return fmt.Errorf("%w: %s is not in the archive", ErrInvalid, name)
		}
		if hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink {
			name = pathpkg.Join(pathpkg.Dir(name), pathpkg.Clean(hdr.Linkname))
			continue
		}
		if hdr.Size > MaxManifestSize {
			return fmt.Errorf("%w: %s of %d bytes is over the %d-byte limit", ErrInvalid, name, hdr.Size, MaxManifestSize)
		}
		return nil
	}
	return fmt.Errorf("%w: %s: too many links", ErrInvalid, name)
}

// checkSmallFile refuses a document of an OCI layout over MaxManifestSize,
// or one that is no regular file (a link to /dev/zero never ends), before
// anything reads it. A missing file is left for the reader to report.
func checkSmallFile(dir string, elem ...string) error {
	name := filepath.Join(elem...)
	info, err := os.Stat(filepath.Join(dir, name))
	switch {
	case err != nil:
		return nil
	case !info.Mode().IsRegular():
		return fmt.Errorf("%w: %s is not a regular file", ErrInvalid, name)
	case info.Size() > MaxManifestSize:
		return fmt.Errorf("%w: %s of %d bytes is over the %d-byte limit", ErrInvalid, name, info.Size(), MaxManifestSize)
	}
	return nil
}

func (s *Store) loadDocker(ctx context.Context, archive string, entries map[string]*tar.Header) ([]string, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(archive) }
	if err := checkSmall(entries, "manifest.json"); err != nil {
		return nil, fmt.Errorf("loading docker-archive: %w", err)
	}
	mf, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("loading docker-archive: %w", err)
	}
	var loaded []string
	for _, entry := range mf {
		var tags []Reference
		var tag *name.Tag
		for _, rt := range entry.RepoTags {
			r, err := ParseReference(rt)
			if err != nil {
				return loaded, fmt.Errorf("loading docker-archive: %w", err)
			}
			tags = append(tags, r)
			if t, ok := r.ref.(name.Tag); ok && tag == nil {
				tag = &t
			}
		}
		if tag == nil && len(mf) > 1 {
			return loaded, fmt.Errorf("loading docker-archive: an untagged image among %d cannot be told apart", len(mf))
		}
		if err := checkSmall(entries, entry.Config); err != nil {
			return loaded, fmt.Errorf("loading docker-archive: %w", err)
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return loaded, fmt.Errorf("loading docker-archive: %w", err)
		}
		got, err := s.add(ctx, "load", incoming{img: img, tags: tags})
		if err != nil {
			return loaded, fmt.Errorf("loading docker-archive: %w", err)
		}
		loaded = append(loaded, names(got, tags)...)
	}
	return loaded, nil
}

func (s *Store) loadLayout(ctx context.Context, dir string) ([]string, error) {
	if err := checkSmallFile(dir, "index.json"); err != nil {
		return nil, fmt.Errorf("loading OCI layout: %w", err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("loading OCI layout: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("loading OCI layout: %w", err)
	}
	var loaded []string
	for _, desc := range im.Manifests {
		img, err := s.layoutImage(dir, idx, desc)
		if err != nil {
			return loaded, fmt.Errorf("loading OCI layout: %w", err)
		}
		var tags []Reference
		if n := refName(desc.Annotations); n != "" {
			r, err := ParseReference(n)
			if err != nil {
				return loaded, fmt.Errorf("loading OCI layout: %w", err)
			}
			tags = append(tags, r)
		}
		got, err := s.add(ctx, "load", incoming{img: img, tags: tags})
		if err != nil {
			return loaded, fmt.Errorf("loading OCI layout: %w", err)
		}
		loaded = append(loaded, names(got, tags)...)
	}
	return loaded, nil
}

// layoutImage returns the image a layout's index entry names, picking the
// platform from a nested index.
func (s *Store) layoutImage(dir string, idx v1.ImageIndex, desc v1.Descriptor) (v1.Image, error) {
	// go-containerregistry reads these documents whole: cap them first.
	if err := checkSmallFile(dir, "blobs", desc.Digest.Algorithm, desc.Digest.Hex); err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		return idx.Image(desc.Digest)
	}
	child, err := idx.ImageIndex(desc.Digest)
	if err != nil {
		return nil, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	d, err := pickManifest(cm, s.opts.Platform, "the layout")
	if err != nil {
		return nil, err
	}
	if err := checkSmallFile(dir, "blobs", d.Algorithm, d.Hex); err != nil {
		return nil, err
	}
	return child.Image(d)
}

// refName is the image name an OCI index entry carries. A bare tag
// ("latest", as some tools write) is no name: such images load untagged.
func refName(ann map[string]string) string {
	if n := ann[annotationContainerd]; n != "" {
		return n
	}
	n := ann[annotationRefName]
	if strings.ContainsAny(n, "/:") {
		return n
	}
	return ""
}

func names(img *Image, tags []Reference) []string {
	if len(tags) == 0 {
		return []string{img.ID}
	}
	var out []string
	for _, t := range tags {
		out = append(out, t.String())
	}
	return out
}

// untarFiles extracts the regular files and directories of an archive
// (an OCI layout holds nothing else) into dir, refusing names that would
// land outside it.
func untarFiles(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := os.OpenRoot(filepath.Dir(dir))
	if err != nil {
		return err
	}
	defer root.Close()
	base := filepath.Base(dir)
	if err := root.Mkdir(base, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rel := filepath.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if rel == "." {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("%w: archive entry %q leaves the layout", ErrInvalid, hdr.Name)
		}
		target := filepath.Join(base, rel)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := root.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			out, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			out.Close()
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: archive entry %q is not a file or directory", ErrInvalid, hdr.Name)
		}
	}
}
