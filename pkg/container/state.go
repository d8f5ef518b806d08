package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minictr/minictr/internal/atomicfile"
	"github.com/minictr/minictr/internal/flock"
	"github.com/minictr/minictr/internal/procfs"
)

// A container has two records, each in a directory of its own:
//
//	<run-root>/containers/<id>/state.json    live state (state): a reboot forgets it
//	<root>/containers/<id>/container.json    what outlives a reboot (rootRecord),
//	                                         beside the snapshot, for image containers
//
// Both directories appear with their record in one step (a directory
// .creating-<id> is written, then renamed), and both are flock(2)ed by the
// container's owner for as long as it owns the container (internal/flock):
// the engine for a foreground run; later, a detached container's monitor,
// handed the locks' files. Whoever can take a lock has found a container
// whose owner is gone, however it ended: no PID is looked up, so the answer
// holds across PID namespaces and run roots. The taker holds the lock
// while it reclaims, so two reapers never remove the same container.

// state is a container's live record, so that the next minictr (and an
// instructor: cat state.json) can tell what it uses. It exists from the
// first moment of a start, before anything the container uses is made, so
// that no command ever sees a container without one.
type state struct {
	ID string `json:"id"`
	// Pid is the container's init on the host, once it exists.
	Pid int `json:"pid,omitempty"`
	// PidStart is the init's start time (field 22 of /proc/PID/stat).
	PidStart uint64   `json:"pidStart,omitempty"`
	Image    string   `json:"image,omitempty"`
	Rootfs   string   `json:"rootfs,omitempty"`
	Cgroups  []string `json:"cgroups,omitempty"`
	// UserNS is the range of host IDs the container's user namespace maps,
	// with --userns=auto: this record is its allocation (allocateUserNS).
	UserNS  *usernsRecord `json:"userns,omitempty"`
	Created time.Time     `json:"created"`
}

// rootRecord is a container's record under the persistent root, written
// before its snapshot is made there, so that a snapshot whose live state
// vanished (a reboot empties the run root) is still known for what it is.
type rootRecord struct {
	ID string `json:"id"`
	// BootID is the boot it was made in (/proc/sys/kernel/random/boot_id):
	// after a reboot nothing of a run is alive, and no cgroup is left.
	BootID string `json:"bootID"`
	// AutoRemove: everything goes when the owner lets go or dies, as for
	// docker run --rm (every foreground run, so far). A container without
	// it is kept, stopped, until rm.
	AutoRemove bool      `json:"autoRemove"`
	Created    time.Time `json:"created"`
}

// Names of the records, and of directories besides the containers' own.
const (
	stateFile      = "state.json"
	rootRecordFile = "container.json"
	creatingPrefix = ".creating-" // .creating-<id>: a directory whose record is being written
)

// createState makes the container's state directory with its first
// record, locked: the returned lock is the container's life for every
// other minictr, until removeState and Unlock.
func createState(runRoot string, s state) (*flock.Lock, error) {
	return createLocked(filepath.Join(runRoot, "containers"), s.ID, stateFile, s)
}

// createRootRecord makes <root>/containers/<id> with its record, locked;
// the snapshot is made in it afterwards.
func createRootRecord(root string, r rootRecord) (*flock.Lock, error) {
	return createLocked(filepath.Join(root, "containers"), r.ID, rootRecordFile, r)
}

// createLocked makes parent/id holding the file name with v, in one step:
// the record is written in a locked directory .creating-<id>, which is
// then renamed into place; the lock moves with it. A reader sees no
// directory or one with a record, never one without, and never an
// unlocked one while its maker lives.
func createLocked(parent, id, name string, v any) (*flock.Lock, error) {
	if id == "" || strings.ContainsAny(id, "/.") {
		return nil, fmt.Errorf("invalid container ID %q", id)
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, err
	}
	tmp := filepath.Join(parent, creatingPrefix+id)
	l, err := flock.Mkdir(tmp, 0o700)
	if err != nil {
		return nil, err
	}
	// A plain write: the directory's rename is what makes the record
	// appear whole (and a record cut short is in a directory no one holds).
	data, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, name), data, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(parent, id))
	}
	if err != nil {
		os.RemoveAll(tmp)
		l.Unlock()
		return nil, err
	}
	return l, nil
}

// held reports whether the container whose directory is dir has an owner:
// someone holds its lock. One that cannot be judged counts as held, since
// it is what the caller leaves alone.
func held(dir string) bool {
	l, err := flock.Try(dir)
	if err == nil {
		l.Unlock()
		return false
	}
	return !errors.Is(err, fs.ErrNotExist)
}

// removeState removes a state directory. Its remover holds its lock, so a
// removal cut short leaves a directory that no one holds: Reap finishes it.
func removeState(runRoot, id string) error {
	return os.RemoveAll(filepath.Join(runRoot, "containers", id))
}

// writeState writes state.json atomically: a reader sees the old file or
// the new one, never half of it.
func writeState(dir string, s state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), data, 0o600)
}

// readState reads a container's state.json.
func readState(dir string) (state, error) {
	var s state
	return s, readJSON(filepath.Join(dir, stateFile), &s)
}

// readRootRecord reads a container's container.json.
func readRootRecord(dir string) (rootRecord, error) {
	var r rootRecord
	return r, readJSON(filepath.Join(dir, rootRecordFile), &r)
}

func readJSON(name string, v any) error {
	data, err := os.ReadFile(name)
	if err == nil {
		err = json.Unmarshal(data, v)
	}
	return err
}

// bootID names this boot of the kernel (random(4)): a record from another
// boot was left by a run that a reboot ended.
var bootID = sync.OnceValues(func() (string, error) {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(data)), err
})

// startTime reads a live process's start time, in clock ticks since boot,
// from /proc/PID/stat (proc(5)); 0 when it is gone or a zombie.
func startTime(pid int) uint64 {
	st, err := procfs.ReadStat(pid)
	if err != nil || st.State == 'Z' {
		return 0
	}
	return st.StartTime
}
