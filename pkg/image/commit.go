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
}

// commit verifies an incoming image and adds it to the store. The caller
// holds the store lock. Order matters for kill -9: blobs and layer
// directories enter by rename once verified, and index.json, which makes
// them an image, is written last.
func (s *Store) commit(ctx context.Context, in incoming) (*Image, error) {
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
	chains := chainIDs(cfg.RootFS.DiffIDs)

	// Download, verify and unpack every layer into tmp/ first; only when
	// all of them are good does anything enter the store, so that a failed
	// pull (bad digest, full disk, Ctrl-C) leaves the store as it was.
	staged := make([]*stagedLayer, len(m.Layers))
	defer func() {
		for _, st := range staged {
			if st != nil {
				os.RemoveAll(st.tmp)
			}
		}
	}()
	for _, desc := range m.Layers {
		s.opts.Progress.Update(Event{ID: stringid.Short(desc.Digest.Hex), Status: StatusWaiting, Total: desc.Size})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelLayers)
	for i, desc := range m.Layers {
		g.Go(func() error {
			st, err := s.fetchLayer(gctx, in.img, desc, cfg.RootFS.DiffIDs[i], chains[i])
			staged[i] = st
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, st := range staged {
		if err := s.storeLayer(st); err != nil {
			return nil, err
		}
	}

	manifestDigest := sha256Hash(rawManifest)
	if err := s.putBlob(m.Config.Digest, rawConfig); err != nil {
		return nil, err
	}
	if err := s.putBlob(manifestDigest, rawManifest); err != nil {
		return nil, err
	}
	rec := &record{
		ID:     m.Config.Digest.String(),
		Config: m.Config.Digest.String(),
		Source: in.source,
		Added:  time.Now().UTC(),
	}
	for i, l := range m.Layers {
		rec.Layers = append(rec.Layers, l.Digest.String())
		rec.DiffIDs = append(rec.DiffIDs, cfg.RootFS.DiffIDs[i].String())
		rec.ChainIDs = append(rec.ChainIDs, chains[i].String())
		rec.Size += s.layerSize(chains[i])
	}
	ix, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	if old, ok := ix.Images[manifestDigest.String()]; ok {
		rec.RepoDigests = old.RepoDigests
		rec.Added = old.Added
	}
	if in.repoDigest != "" && !slices.Contains(rec.RepoDigests, in.repoDigest) {
		rec.RepoDigests = append(rec.RepoDigests, in.repoDigest)
	}
	ix.Images[manifestDigest.String()] = rec
	for _, t := range in.tags {
		ix.Tags[t.String()] = manifestDigest.String()
	}
	if err := s.writeIndex(ix); err != nil {
		return nil, err
	}
	return s.image(ix, manifestDigest.String())
}

// A stagedLayer is a verified layer waiting in tmp/ to enter the store.
type stagedLayer struct {
	tmp    string // tmp/layer-*: blob, rootfs/, layer.json
	desc   v1.Descriptor
	chain  v1.Hash
	exists bool // already in the store: nothing to move
}

// fetchLayer brings one layer into tmp/ in a single pass:
//
//	blob stream -> sha256 + copy to blob file -> decompress -> sha256 -> layer.Unpack
//
// so that nothing is read twice. Both digests and the size are checked
// before storeLayer renames anything into the store.
func (s *Store) fetchLayer(ctx context.Context, img v1.Image, desc v1.Descriptor, diffID, chain v1.Hash) (*stagedLayer, error) {
	id := stringid.Short(desc.Digest.Hex)
	if s.hasLayer(chain) && s.hasBlob(desc.Digest) {
		s.opts.Progress.Update(Event{ID: id, Status: StatusExists, Current: desc.Size, Total: desc.Size})
		return &stagedLayer{desc: desc, chain: chain, exists: true}, nil
	}
	tmp, err := s.tempDir("layer-" + id + "-")
	if err != nil {
		return nil, err
	}
	st := &stagedLayer{tmp: tmp, desc: desc, chain: chain}
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return st, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return st, fmt.Errorf("fetching layer %s: %w", desc.Digest, err)
	}
	defer rc.Close()

	stats, err := s.unpackStream(ctx, rc, desc, diffID, tmp)
	if err != nil {
		return st, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	meta, _ := json.Marshal(layerMeta{Digest: desc.Digest.String(), DiffID: diffID.String(), ChainID: chain.String(), Files: stats.Files, Size: stats.Bytes})
	if err := os.WriteFile(filepath.Join(tmp, "layer.json"), meta, 0o600); err != nil {
		return st, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	s.opts.Progress.Update(Event{ID: id, Status: StatusComplete, Current: desc.Size, Total: desc.Size})
	return st, nil
}

// storeLayer moves a staged layer into the store: the blob first, then the
// directory. A directory is trusted only when layer.json is in it, and it
// was written last, before the rename(2) that makes the whole directory
// appear at once.
func (s *Store) storeLayer(st *stagedLayer) error {
	if st.exists {
		return nil
	}
	if err := os.Rename(filepath.Join(st.tmp, "blob"), s.blobPath(st.desc.Digest)); err != nil {
		return fmt.Errorf("storing layer %s: %w", st.desc.Digest, err)
	}
	if s.hasLayer(st.chain) {
		return nil
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
func (s *Store) unpackStream(ctx context.Context, rc io.Reader, desc v1.Descriptor, diffID v1.Hash, tmp string) (layer.Stats, error) {
	blob, err := os.Create(filepath.Join(tmp, "blob"))
	if err != nil {
		return layer.Stats{}, err
	}
	defer blob.Close()
	compressed := sha256.New()
	// One byte more than declared, so that a longer blob is noticed.
	limited := io.LimitReader(&ctxReader{ctx: ctx, r: rc}, desc.Size+1)
	counted := &progressReader{r: limited, p: s.opts.Progress, ev: Event{ID: stringid.Short(desc.Digest.Hex), Status: StatusDownload, Total: desc.Size}}
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

// putBlob stores a small verified blob (manifest, config) by digest.
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
