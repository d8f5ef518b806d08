package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/minictr/minictr/internal/stringid"
)

// collect deletes the blobs and layers that no image in ix refers to. The
// caller holds the lock and wrote ix first, so a crash in here leaves only
// garbage, which the next collect removes.
func (s *Store) collect(ix *index) error {
	keepBlobs := map[string]bool{}
	keepLayers := map[string]bool{}
	for m, rec := range ix.Images {
		keepBlobs[strings.TrimPrefix(m, "sha256:")] = true
		keepBlobs[strings.TrimPrefix(rec.Config, "sha256:")] = true
		for _, l := range rec.Layers {
			keepBlobs[strings.TrimPrefix(l, "sha256:")] = true
		}
		for _, c := range rec.ChainIDs {
			keepLayers[strings.TrimPrefix(c, "sha256:")] = true
		}
	}
	blobs, _ := os.ReadDir(filepath.Join(s.root, "blobs", "sha256"))
	for _, b := range blobs {
		if !keepBlobs[b.Name()] {
			if err := os.Remove(filepath.Join(s.root, "blobs", "sha256", b.Name())); err != nil {
				return fmt.Errorf("removing blob: %w", err)
			}
		}
	}
	layers, _ := os.ReadDir(filepath.Join(s.root, "layers"))
	for _, l := range layers {
		if !keepLayers[l.Name()] {
			if err := s.removeLayer(filepath.Join(s.root, "layers", l.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeLayer removes an unpacked layer where it is (a rename elsewhere
// could need a directory block that a full disk lacks): layer.json first,
// so that from the first unlink on, the directory is no longer a layer
// (hasLayer) but garbage, whichever moment a crash stops us.
func (s *Store) removeLayer(dir string) error {
	if err := os.Remove(filepath.Join(dir, "layer.json")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing layer: %w", err)
	}
	s.opts.Tracer.Step("store", "remove layer "+stringid.Short(filepath.Base(dir)), "rm -rf "+dir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing layer: %w", err)
	}
	return nil
}

// diskUsage is the size of the store's blobs and layers (not of tmp/,
// where other processes' work in progress comes and goes).
func (s *Store) diskUsage() int64 {
	var n int64
	for _, dir := range []string{"blobs", "layers"} {
		filepath.WalkDir(filepath.Join(s.root, dir), func(_ string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
	}
	return n
}

// layerBlobs is the set of compressed layer blobs the images of ix use.
func layerBlobs(ix *index) map[string]bool {
	out := map[string]bool{}
	for _, rec := range ix.Images {
		for _, l := range rec.Layers {
			out[l] = true
		}
	}
	return out
}

// makeRoom frees room for an index.json on a full disk: it removes the
// compressed layer blobs that the old index uses (before) and the new one
// does not (after), largest first, and reports whether it removed any.
//
// This breaks the rule that the index is written before anything it names
// goes, so it happens only when the disk is full, and only to layer blobs:
// should we die before the new index is written, the old one names an
// image whose unpacked layers, config and manifest are all there. It
// still runs and lists; push and save say that a blob is missing, and
// the next pull of it fetches the blob again (it checks for blobs, not
// only layers).
func (s *Store) makeRoom(before, after map[string]bool) bool {
	type blob struct {
		path string
		size int64
	}
	var gone []blob
	for d := range before {
		if after[d] {
			continue
		}
		h := strings.TrimPrefix(d, "sha256:")
		path := filepath.Join(s.root, "blobs", "sha256", h)
		if info, err := os.Stat(path); err == nil {
			gone = append(gone, blob{path, info.Size()})
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].size > gone[j].size })
	freed := false
	for _, b := range gone {
		if os.Remove(b.path) == nil {
			freed = true
			s.opts.Tracer.Step("store", "disk full: remove blob "+stringid.Short(filepath.Base(b.path))+" before writing index.json", "rm "+b.path)
		}
	}
	return freed
}

// isNoSpace: the disk (or the user's quota) is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
