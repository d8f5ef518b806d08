package layer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minictr/minictr/pkg/trace"
	"golang.org/x/sys/unix"
)

// The two snapshotters.
const (
	KindOverlay = "overlay" // layers stay shared and read-only; writes go to DIR/upper
	KindCopy    = "copy"    // layers copied into DIR/rootfs: slower, works anywhere
)

// A Mount is what a snapshot puts on its Rootfs, as data (containerd-style),
// so that the engine can show it or mount it elsewhere.
type Mount struct {
	Type, Source string
	Options      []string
}

// A Snapshot is the private, writable root filesystem of one container.
type Snapshot struct {
	Rootfs string  // DIR/rootfs: the container's root
	Kind   string  // KindOverlay or KindCopy
	Reason string  // with KindCopy from Prepare: why overlayfs could not be used
	Mounts []Mount // what is mounted on Rootfs; empty for a copy
	dir    string
	tracer trace.Tracer
}

// Prepare makes dir/rootfs from the unpacked layer directories lowers (top
// first): an overlay mount when overlayfs works in dir, copies otherwise.
func Prepare(lowers []string, dir string, t trace.Tracer) (*Snapshot, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Mount first, ask later: overlayfs works almost everywhere, and a
	// probe up front would cost a mount and an unmount at every container
	// start. Only when the real mount fails does Snapshotter say why.
	s, err := PrepareOverlay(lowers, dir, t)
	if err == nil {
		return s, nil
	}
	kind, reason := Snapshotter(dir)
	if kind != KindCopy {
		return nil, err // overlayfs should work here: the failure is real
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return nil, err
		}
	}
	trace.Or(t).Step("image", reason+": using copies", "")
	s, err = PrepareCopy(lowers, dir, t)
	if s != nil {
		s.Reason = reason
	}
	return s, err
}

// Load returns the snapshot that Prepare made in dir, possibly in another
// process, so that it can be removed.
func Load(dir string, t trace.Tracer) *Snapshot {
	s := &Snapshot{Rootfs: filepath.Join(dir, "rootfs"), Kind: KindCopy, dir: dir, tracer: trace.Or(t)}
	var fs unix.Statfs_t
	if unix.Statfs(s.Rootfs, &fs) == nil && fs.Type == unix.OVERLAYFS_SUPER_MAGIC {
		s.Kind = KindOverlay
	}
	return s
}

// Remove unmounts the rootfs and deletes dir. It is idempotent. A busy mount
// (a process still has its cwd there) is detached (MNT_DETACH): it vanishes
// from the mount table now and from the kernel when the last user leaves.
func (s *Snapshot) Remove() error {
	if err := s.unmount(); err != nil {
		return err
	}
	s.tracer.Step("image", "remove snapshot "+s.dir, "rm -rf "+s.dir)
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("removing snapshot: %w", err)
	}
	return nil
}

func (s *Snapshot) unmount() error {
	if s.Kind != KindOverlay {
		return nil
	}
	err := unix.Unmount(s.Rootfs, 0)
	if errors.Is(err, unix.EBUSY) {
		s.tracer.Step("image", "umount "+s.Rootfs+" busy: detaching it", "umount -l "+s.Rootfs)
		err = unix.Unmount(s.Rootfs, unix.MNT_DETACH)
	} else if err == nil {
		s.tracer.Step("image", "umount "+s.Rootfs, "umount "+s.Rootfs)
	}
	// EINVAL: not a mount point (already unmounted); ENOENT: already removed.
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "umount", Path: s.Rootfs, Err: err}
	}
	return nil
}

// PrepareOverlay mounts overlayfs on dir/rootfs: lowers (top first) below,
// dir/upper receiving every write (a file from below is copied up on its
// first write), dir/work for overlayfs's own atomic renames.
func PrepareOverlay(lowers []string, dir string, t trace.Tracer) (*Snapshot, error) {
	t = trace.Or(t)
	s := &Snapshot{Rootfs: filepath.Join(dir, "rootfs"), Kind: KindOverlay, dir: dir, tracer: t}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if len(lowers) == 0 { // FROM scratch: overlayfs still wants a lower layer
		lowers = []string{filepath.Join(dir, "empty")}
	}
	for _, d := range append([]string{upper, work, s.Rootfs}, lowers[:1]...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	for _, p := range append([]string{upper, work}, lowers...) {
		if strings.ContainsAny(p, ",:\\") {
			return nil, fmt.Errorf("overlay path %q holds ',', ':' or '\\', which the mount options cannot carry", p)
		}
	}
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + strings.Join(lowers, ":"), "upperdir=" + upper, "workdir=" + work}}
	if err := mountOverlay(m, lowers, upper, work, s.Rootfs, t); err != nil {
		return nil, err
	}
	s.Mounts = []Mount{m}
	return s, nil
}
