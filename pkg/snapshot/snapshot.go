package snapshot

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/minictr/minictr/pkg/trace"
)

// Kind names how a snapshot gives a container its writable root.
type Kind string

// The two kinds.
const (
	Overlay Kind = "overlay" // layers stay shared and read-only; writes go to DIR/upper
	Copy    Kind = "copy"    // layers copied into DIR/rootfs: slower, works anywhere
)

// stage is the name this package reports its steps under.
const stage = "snapshot"

// A Mount is one mount that makes a snapshot's root, as data
// (containerd-style): mount(2)'s filesystem type, source and options. Its
// target is the snapshot's Rootfs. Whoever mounts it (the container's init,
// in its own mount namespace) decides when; nothing here mounts on the host.
type Mount struct {
	Type, Source string
	Options      []string
}

// Options are the facts about the host that the engine decided once and
// hands to Prepare.
type Options struct {
	Kind   Kind   // Overlay, or Copy where overlayfs cannot work (see Probe)
	Reason string // with Copy: why overlayfs cannot be used
	// Apply writes one layer, given as a tar stream whose whiteouts are
	// ".wh." entries, onto dir (deleting what the whiteouts name). Only
	// Copy needs it; the engine passes the image store's safe extractor
	// (pkg/image/layer.Apply), so copied layers cannot escape dir either.
	Apply func(tar io.Reader, dir string) error
	// UIDMap and GIDMap, for a container with a user namespace of its own,
	// are its maps: the snapshot is made for its root, an unprivileged ID
	// on the host. An overlay then asks for idmapped lower layers (see
	// Mounts and Detach) and gives its upper directory to the mapped root;
	// a copy is chown'd into the range.
	UIDMap, GIDMap []IDMap
	Tracer         trace.Tracer
}

// A Snapshot is the private, writable root filesystem of one container:
// DIR/rootfs, and for an overlay DIR/upper and DIR/work. It is prepared
// once and can be mounted any number of times (each start of the container)
// until Remove.
type Snapshot struct {
	Dir    string   `json:"-"`
	Kind   Kind     `json:"kind"`
	Reason string   `json:"reason,omitempty"` // with Copy: why overlayfs could not be used
	Lowers []string `json:"lowers,omitempty"` // with Overlay: the layer directories, top first
	// UIDMap and GIDMap are the user namespace maps the snapshot was made
	// for (Options); none for a container in the host's user namespace.
	UIDMap []IDMap `json:"uidMap,omitempty"`
	GIDMap []IDMap `json:"gidMap,omitempty"`
}

// record is the file in DIR that says what Prepare made, written last.
const record = "snapshot.json"

// Prepare makes the snapshot in dir from the unpacked layer directories
// lowers (top first), as o.Kind says: for an overlay the (empty) upper, work
// and rootfs directories, for a copy the layers applied bottom to top into
// rootfs. It mounts nothing: Mounts says what to mount, and where.
func Prepare(dir string, lowers []string, o Options) (*Snapshot, error) {
	t := trace.Or(o.Tracer)
	s := &Snapshot{Dir: dir, Kind: o.Kind, Reason: o.Reason, UIDMap: o.UIDMap, GIDMap: o.GIDMap}
	if (len(o.UIDMap) == 0) != (len(o.GIDMap) == 0) {
		return nil, fmt.Errorf("preparing snapshot: a uid map needs a gid map, and the other way round")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("preparing snapshot: %w", err)
	}
	var err error
	switch o.Kind {
	case Overlay:
		err = s.prepareOverlay(lowers, t)
	case Copy:
		t.Step(stage, o.Reason+": using copies", "")
		err = s.prepareCopy(lowers, o.Apply, t)
	default:
		err = fmt.Errorf("unknown snapshot kind %q", o.Kind)
	}
	if err == nil && len(s.UIDMap) > 0 {
		err = s.chownRoot(t)
	}
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, record), data, 0o600); err != nil {
		return nil, fmt.Errorf("preparing snapshot: %w", err)
	}
	return s, nil
}

// Load returns the snapshot that Prepare made in dir, possibly in another
// process: a stopped container's next start mounts it again.
func Load(dir string) (*Snapshot, error) {
	data, err := os.ReadFile(filepath.Join(dir, record))
	if err != nil {
		return nil, fmt.Errorf("loading snapshot: %w", err)
	}
	s := &Snapshot{Dir: dir}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("loading snapshot %s: %w", dir, err)
	}
	return s, nil
}

// Rootfs is the directory the container's root is mounted on (an overlay)
// or is (a copy).
func (s *Snapshot) Rootfs() string { return filepath.Join(s.Dir, "rootfs") }

// Mounts says what to mount on Rootfs: the overlay, or nothing for a copy.
// A snapshot made with id maps adds "uidmap=" and "gidmap=" options, which
// are not the kernel's (containerd's spelling): its lower layers must be
// idmapped mounts, which Detach makes.
func (s *Snapshot) Mounts() []Mount {
	if s.Kind != Overlay {
		return nil
	}
	opts := []string{
		"lowerdir=" + strings.Join(s.lowerDirs(), ":"),
		"upperdir=" + filepath.Join(s.Dir, "upper"),
		"workdir=" + filepath.Join(s.Dir, "work"),
	}
	if len(s.UIDMap) > 0 {
		opts = append(opts, uidmapOption+formatMaps(s.UIDMap), gidmapOption+formatMaps(s.GIDMap))
	}
	return []Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}

// Remove deletes the snapshot's directory. Nothing of it is mounted on the
// host (the container's mount namespace held the overlay and is gone with
// the container), so this is only files. It is idempotent.
func Remove(dir string, t trace.Tracer) error {
	trace.Or(t).Step(stage, "remove snapshot "+dir, "rm -rf "+dir)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing snapshot: %w", err)
	}
	return nil
}

// lowerDirs are the overlay's lower directories; a snapshot of no layers
// (FROM scratch) gets an empty one, since overlayfs needs one.
func (s *Snapshot) lowerDirs() []string {
	if len(s.Lowers) == 0 {
		return []string{filepath.Join(s.Dir, "empty")}
	}
	return s.Lowers
}

// prepareOverlay makes the directories the overlay needs: DIR/upper
// receives every write (a file from below is copied up on its first write),
// DIR/work is overlayfs's own for atomic renames, DIR/rootfs the mount point.
func (s *Snapshot) prepareOverlay(lowers []string, t trace.Tracer) error {
	s.Lowers = lowers
	upper, work := filepath.Join(s.Dir, "upper"), filepath.Join(s.Dir, "work")
	dirs := []string{upper, work, s.Rootfs()}
	if len(lowers) == 0 {
		dirs = append(dirs, s.lowerDirs()...)
	}
	for _, p := range append([]string{upper, work}, lowers...) {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("overlay path %q holds ',', ':' or '\\', which the mount options cannot carry", p)
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("preparing snapshot: %w", err)
		}
	}
	t.Step(stage, fmt.Sprintf("overlay snapshot in %s: %d read-only layers below, upper/ for writes", s.Dir, len(lowers)),
		"mkdir -p "+upper+" "+work+" "+s.Rootfs())
	return nil
}
