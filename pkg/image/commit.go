package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/minictr/minictr/internal/atomicfile"
	"github.com/minictr/minictr/internal/stringid"
	"github.com/minictr/minictr/pkg/image/layer"
)

// parallelLayers is how many layers download and unpack at once.
const parallelLayers = 4

// incoming is an image arriving in the store, from a registry or an archive.
type incoming struct {
	img        v1.Image    // where the parts come from
	tags       []Reference // tags to point at it
	repoDigest string      // "repo@sha256:..." it was pulled by, or ""
	source     string      // repository it came from (for cross-repo mounts)
	progress   Progress    // per-layer progress; nil = the store's
}

// add verifies an incoming image and adds it to the store, in two phases:
//
//  1. stage, without the lock: download (or read), verify and unpack every
//     layer the store lacks into a work directory of tmp/. This is the
//     slow part, and two pulls of different images do it at the same
//     time; two pulls of the same image each do it, and both succeed.
//  2. commit, under the lock (update): rename the staged layers into
//     place, store config and manifest, write the index.
//
// Order matters for kill -9: blobs and layer directories enter by rename
// once verified, and index.json, which makes them an image, is written
// last. A failed stage (bad digest, full disk, Ctrl-C) leaves the store as
// it was. op names the operation for the lock and the work directory.
func (s *Store) add(ctx context.Context, op string, in incoming) (*Image, error) {
	if in.progress == nil {
		in.progress = s.opts.Progress
	}
	rawManifest, err := in.img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m, err := checkManifest(rawManifest)
	if err != nil {
		return nil, err
	}
	rawConfig, err := in.img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", m.Config.Digest, err)
	}
	cfg, err := checkConfig(rawConfig, m)
	if err != nil {
		return nil, err
	}
	work, done, err := s.workDir(op)
	if err != nil {
		return nil, err
	}
	defer done()

	layers := make([]stagedLayer, len(m.Layers))
	chains := chainIDs(cfg.RootFS.DiffIDs)
	for i, desc := range m.Layers {
		layers[i] = stagedLayer{desc: desc, diffID: cfg.RootFS.DiffIDs[i], chain: chains[i]}
		in.progress.Update(Event{ID: stringid.Short(desc.Digest.Hex), Status: StatusWaiting, Total: desc.Size})
	}
	want := make([]int, len(layers))
	for i := range want {
		want[i] = i
	}
	for attempt := 1; ; attempt++ {
		if err := s.stage(ctx, in, work, layers, want); err != nil {
			return nil, err
		}
		img, gone, err := s.commit(ctx, op, in, layers, rawManifest, rawConfig, m)
		if len(gone) == 0 || attempt == 3 {
			return img, err
		}
		// A layer that was in the store when we staged was removed (rmi,
		// prune) before we took the lock: fetch it after all.
		want = gone
	}
}

// A stagedLayer is one layer of an incoming image: in the store already,
// or verified and waiting in a work directory to enter it.
type stagedLayer struct {
	desc   v1.Descriptor
	diffID v1.Hash
	chain  v1.Hash
	tmp    string // work/layer-*: blob, rootfs/, layer.json; "" when it exists
}

// stage brings the layers (those of want) the store lacks into work,
// several at a time.
func (s *Store) stage(ctx context.Context, in incoming, work string, layers []stagedLayer, want []int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelLayers)
	for _, i := range want {
		st := &layers[i]
		g.Go(func() error { return s.fetchLayer(gctx, in, work, st) })
	}
	return g.Wait()
}

// commit makes the staged image part of the store, under the lock. The
// layers that existed when staging began but are gone now are returned
// (their indexes) in gone, and then nothing is changed.
func (s *Store) commit(ctx context.Context, op string, in incoming, layers []stagedLayer, rawManifest, rawConfig []byte, m *v1.Manifest) (*Image, []int, error) {
	manifestDigest := sha256Hash(rawManifest).String()
	var gone []int
	var final *index
	err := s.update(ctx, op, func(ix *index) error {
		gone = nil
		for i, st := range layers {
			if st.tmp == "" && !(s.hasLayer(st.chain) && s.hasBlob(st.desc.Digest)) {
				gone = append(gone, i)
			}
		}
		if len(gone) > 0 {
			return errUnchanged
		}
		for _, st := range layers {
			if err := s.storeLayer(st); err != nil {
				return err
			}
		}
		if err := s.putBlob(m.Config.Digest, rawConfig); err != nil {
			return err
		}
		if err := s.putBlob(sha256Hash(rawManifest), rawManifest); err != nil {
			return err
		}
		rec := &record{
			ID:     m.Config.Digest.String(),
			Config: m.Config.Digest.String(),
			Source: in.source,
			Added:  time.Now().UTC(),
		}
		for _, st := range layers {
			rec.Layers = append(rec.Layers, st.desc.Digest.String())
			rec.DiffIDs = append(rec.DiffIDs, st.diffID.String())
			rec.ChainIDs = append(rec.ChainIDs, st.chain.String())
			rec.Size += s.layerSize(st.chain)
		}
		if old, ok := ix.Images[manifestDigest]; ok {
			rec.RepoDigests = old.RepoDigests
			rec.Added = old.Added
		}
		if in.repoDigest != "" && !slices.Contains(rec.RepoDigests, in.repoDigest) {
			rec.RepoDigests = append(rec.RepoDigests, in.repoDigest)
		}
		ix.Images[manifestDigest] = rec
		for _, t := range in.tags {
			ix.Tags[t.String()] = manifestDigest
		}
		final = ix
		return nil
	})
	if err != nil || len(gone) > 0 {
		if len(gone) > 0 && err == nil {
			err = fmt.Errorf("layer %s was removed while the image was added", layers[gone[0]].desc.Digest)
		}
		return nil, gone, err
	}
	img, err := s.image(final, manifestDigest)
	return img, nil, err
}

// fetchLayer brings one layer into work in a single pass:
//
//	blob stream -> sha256 + copy to blob file -> decompress -> sha256 -> layer.Unpack
//
// so that nothing is read twice. Both digests and the size are checked
// before storeLayer renames anything into the store. A layer the store has
// (unpacked, and its blob) is not fetched: st.tmp stays "".
func (s *Store) fetchLayer(ctx context.Context, in incoming, work string, st *stagedLayer) error {
	desc := st.desc
	id := stringid.Short(desc.Digest.Hex)
	if s.hasLayer(st.chain) && s.hasBlob(desc.Digest) {
		in.progress.Update(Event{ID: id, Status: StatusExists, Current: desc.Size, Total: desc.Size})
		return nil
	}
	tmp, err := os.MkdirTemp(work, "layer-"+id+"-")
	if err != nil {
		return err
	}
	st.tmp = tmp
	l, err := in.img.LayerByDigest(desc.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", desc.Digest, err)
	}
	defer rc.Close()

	stats, err := s.unpackStream(ctx, rc, desc, st.diffID, tmp, in.progress)
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	meta, _ := json.Marshal(layerMeta{Digest: desc.Digest.String(), DiffID: st.diffID.String(), ChainID: st.chain.String(), Files: stats.Files, Size: stats.Bytes})
	if err := os.WriteFile(filepath.Join(tmp, "layer.json"), meta, 0o600); err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	in.progress.Update(Event{ID: id, Status: StatusComplete, Current: desc.Size, Total: desc.Size})
	return nil
}

// storeLayer moves a staged layer into the store: the blob first, then the
// directory. A directory is trusted only when layer.json is in it, and it
// was written last, before the rename(2) that makes the whole directory
// appear at once. The caller holds the lock.
func (s *Store) storeLayer(st stagedLayer) error {
	if st.tmp == "" {
		return nil
	}
	if err := os.Rename(filepath.Join(st.tmp, "blob"), s.blobPath(st.desc.Digest)); err != nil {
		return fmt.Errorf("storing layer %s: %w", st.desc.Digest, err)
	}
	if s.hasLayer(st.chain) {
		return nil // another pull of the same layer was first
	}
	// What an interrupted removal left (no layer.json) is in the way.
	if err := os.RemoveAll(s.layerPath(st.chain)); err != nil {
		return fmt.Errorf("storing layer %s: %w", st.desc.Digest, err)
	}
	if err := os.Rename(st.tmp, s.layerPath(st.chain)); err != nil {
		return fmt.Errorf("storing layer %s: %w", st.desc.Digest, err)
	}
	s.opts.Tracer.Step("unpack", fmt.Sprintf("rename %s -> layers/%s (chain ID of layer %s)", filepath.Base(st.tmp), stringid.Short(st.chain.Hex), stringid.Short(st.desc.Digest.Hex)), "mv "+st.tmp+" "+s.layerPath(st.chain))
	return nil
}

// layerMeta is layers/<chain>/layer.json, the marker of a complete layer.
type layerMeta struct {
	Digest  string `json:"digest"`
	DiffID  string `json:"diff_id"`
	ChainID string `json:"chain_id"`
	Files   int    `json:"files"`
	Size    int64  `json:"size"`
}

// unpackStream copies the compressed stream to tmp/blob while unpacking it
// into tmp/rootfs, and checks size, digest and diff_id.
func (s *Store) unpackStream(ctx context.Context, rc io.Reader, desc v1.Descriptor, diffID v1.Hash, tmp string, p Progress) (layer.Stats, error) {
	blob, err := os.Create(filepath.Join(tmp, "blob"))
	if err != nil {
		return layer.Stats{}, err
	}
	defer blob.Close()
	compressed := sha256.New()
	// One byte more than declared, so that a longer blob is noticed.
	limited := io.LimitReader(&ctxReader{ctx: ctx, r: rc}, desc.Size+1)
	counted := &progressReader{r: limited, p: p, ev: Event{ID: stringid.Short(desc.Digest.Hex), Status: StatusDownload, Total: desc.Size}}
	raw := io.TeeReader(counted, io.MultiWriter(blob, compressed))

	tarStream, closeDecomp, err := decompress(raw)
	if err != nil {
		return layer.Stats{}, fmt.Errorf("decompressing: %w", err)
	}
	defer closeDecomp()
	uncompressed := sha256.New()
	tarTee := io.TeeReader(tarStream, uncompressed)

	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return layer.Stats{}, err
	}
	s.opts.Tracer.Step("unpack", fmt.Sprintf("extract layer %s into %s", stringid.Short(desc.Digest.Hex), rootfs),
		fmt.Sprintf("curl ... | tee blob | gunzip | tar -x -C %s", rootfs))
	stats, err := layer.Unpack(tarTee, rootfs, layer.Options{Tracer: s.opts.Tracer, MaxSize: s.unpackCap(desc.Size)})
	if err != nil {
		return stats, err
	}
	// The tar reader stops at the end-of-archive marker; the digests cover
	// the whole stream, padding included.
	if _, err := io.Copy(io.Discard, tarTee); err != nil {
		return stats, fmt.Errorf("reading layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return stats, err
	}
	if err := blob.Sync(); err != nil {
		return stats, err
	}
	if n := counted.n.Load(); n != desc.Size {
		return stats, fmt.Errorf("%w: blob is %s bytes, manifest says %d", ErrInvalid, sizeWord(n, desc.Size), desc.Size)
	}
	if got := hashOf(compressed); got != desc.Digest {
		return stats, fmt.Errorf("%w: digest mismatch: manifest says %s, content is %s", ErrInvalid, desc.Digest, got)
	}
	if got := hashOf(uncompressed); got != diffID {
		return stats, fmt.Errorf("%w: diff_id mismatch: config says %s, uncompressed content is %s", ErrInvalid, diffID, got)
	}
	return stats, nil
}

func sizeWord(n, want int64) string {
	if n > want {
		return fmt.Sprintf("more than %d", want)
	}
	return fmt.Sprint(n)
}

// unpackCap is the most a layer may unpack to: generous for real layers,
// small enough that a gzip bomb is stopped long before it fills the disk.
func (s *Store) unpackCap(compressed int64) int64 {
	return max(s.minUnpackCap, compressed*unpackRatio)
}

// decompress recognizes gzip and zstd by their magic numbers; anything else
// is taken as an uncompressed tar (docker save archives hold those).
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	}
	return br, func() {}, nil
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// ctxReader stops a copy when the context is cancelled (Ctrl-C, another
// layer failed).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// putBlob stores a small verified blob (manifest, config) by digest. The
// caller holds the lock: collect removes any file of blobs/ the index does
// not name, atomicfile's temporary ones included.
func (s *Store) putBlob(d v1.Hash, data []byte) error {
	if sha256Hash(data) != d {
		return fmt.Errorf("%w: blob %s does not match its digest", ErrInvalid, d)
	}
	if s.hasBlob(d) {
		return nil
	}
	if err := atomicfile.Write(s.blobPath(d), data, 0o644); err != nil {
		return fmt.Errorf("storing blob %s: %w", d, err)
	}
	return nil
}

func (s *Store) hasBlob(d v1.Hash) bool {
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

// hasLayer is true only for a complete layer: layer.json is written last.
func (s *Store) hasLayer(chain v1.Hash) bool {
	_, err := os.Stat(filepath.Join(s.layerPath(chain), "layer.json"))
	return err == nil
}

func (s *Store) layerSize(chain v1.Hash) int64 {
	m, _ := s.readLayerMeta(chain)
	return m.Size
}

// readLayerMeta reads a complete layer's layer.json.
func (s *Store) readLayerMeta(chain v1.Hash) (layerMeta, error) {
	var m layerMeta
	data, err := os.ReadFile(filepath.Join(s.layerPath(chain), "layer.json"))
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	return m, err
}
