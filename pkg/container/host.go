package container

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/atomicfile"
	"github.com/minictr/minictr/internal/flock"
	"github.com/minictr/minictr/pkg/snapshot"
	"github.com/minictr/minictr/pkg/trace"
)

// snapshotFacts is what the engine knows about overlayfs on this host: the
// verdict of snapshot.Probe for the directory snapshots live in.
type snapshotFacts struct {
	Dir    string        `json:"dir"`    // <root>/containers
	Dev    uint64        `json:"dev"`    // its filesystem (st_dev): a new one asks again
	Kind   snapshot.Kind `json:"kind"`   // overlay or copy
	Reason string        `json:"reason"` // why
	// With a user namespace (asked the first time one is used): whether
	// overlay layers can be idmapped mounts here, and why not.
	IDMapProbed bool   `json:"idmapProbed,omitempty"`
	IDMap       bool   `json:"idmap,omitempty"`
	IDMapReason string `json:"idmapReason,omitempty"`
}

// probePrefix names the directory a probe works in, in <root>/containers:
// .probe-<random>, flock(2)ed by the engine probing, so that a probe cut
// short by a kill is garbage that Reap can tell apart.
const probePrefix = ".probe-"

// factsFile keeps the verdict in the run root, which a reboot empties, so
// that a new kernel (or a module loaded since) is asked again.
const factsFile = "snapshotter.json"

// hostSnapshotter decides once per host, root and boot whether snapshots
// are overlays or copies, and keeps the answer in the run root: only a
// definite answer, never a probe that failed to set itself up. Probing
// costs a mount and an unmount (several milliseconds); reading the answer
// costs one small file per start. The overlay itself is mounted later, by
// the container's init: if it fails there, the start fails with the mount's
// own error, as a real failure (too many layers for this kernel) should.
func hostSnapshotter(root, runRoot string, t trace.Tracer) (snapshotFacts, error) {
	dir := filepath.Join(root, "containers")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return snapshotFacts{}, err
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return snapshotFacts{}, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	cache := filepath.Join(runRoot, factsFile)
	var f snapshotFacts
	if data, err := os.ReadFile(cache); err == nil && json.Unmarshal(data, &f) == nil && f.Dir == dir && f.Dev == st.Dev {
		return f, nil
	}
	var kind snapshot.Kind
	var reason string
	err := inProbeDir(dir, func(probeDir string) (err error) {
		kind, reason, err = snapshot.Probe(probeDir)
		return err
	})
	if err != nil {
		// No verdict (a full disk, say): nothing is kept, and the next
		// start asks again.
		return snapshotFacts{}, fmt.Errorf("probing overlayfs: %w", err)
	}
	f = snapshotFacts{Dir: dir, Dev: st.Dev, Kind: kind, Reason: reason}
	t.Step("engine", fmt.Sprintf("probe overlayfs in %s: %s (%s); the answer is kept in %s", dir, kind, reason, cache), "cat "+cache)
	return f, keepFacts(runRoot, f)
}

// inProbeDir runs probe in a new directory of dir, flock(2)ed for as long
// as it runs, so that a probe cut short by a kill is garbage that Reap
// can tell apart, and removed afterwards.
func inProbeDir(dir string, probe func(probeDir string) error) error {
	var b [6]byte
	rand.Read(b[:])
	probeDir := filepath.Join(dir, probePrefix+hex.EncodeToString(b[:]))
	l, err := flock.Mkdir(probeDir, 0o700)
	if err != nil {
		return err
	}
	defer l.Unlock() // after the removal
	err = probe(probeDir)
	if rerr := os.RemoveAll(probeDir); err == nil {
		err = rerr
	}
	return err
}

func keepFacts(runRoot string, f snapshotFacts) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(runRoot, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(runRoot, factsFile), data, 0o600)
}

// hostIDMap completes the facts with whether overlay layers can be
// idmapped here, probed once (with the IDs u, which any range would do) and
// kept with the rest. Only an overlay host asks: a copy is chown'd anyway.
func hostIDMap(runRoot string, f snapshotFacts, u *usernsRecord, t trace.Tracer) (snapshotFacts, error) {
	if f.IDMapProbed || f.Kind != snapshot.Overlay {
		return f, nil
	}
	var ok bool
	var reason string
	err := inProbeDir(f.Dir, func(probeDir string) (err error) {
		ok, reason, err = probeIDMap(probeDir, u, t)
		return err
	})
	if err != nil {
		return f, err
	}
	f.IDMapProbed, f.IDMap, f.IDMapReason = true, ok, reason
	return f, keepFacts(runRoot, f)
}
