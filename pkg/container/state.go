package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minictr/minictr/internal/atomicfile"
	"github.com/minictr/minictr/internal/procfs"
)

// state is a container's record in its state directory, so that the next
// minictr (and an instructor: cat state.json) can tell who looks after it.
// It exists from the first moment of a start, before anything the
// container uses is made, so that no command ever sees a container without
// one.
type state struct {
	ID string `json:"id"`
	// Owner is the process that removes what the container uses when it
	// ends: the engine that runs it in the foreground (the container's init
	// dies with it, by its parent-death signal). While the owner lives the
	// container is alive; once it is gone, what is left is garbage (Reap).
	Owner process `json:"owner"`
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

// A process names a process across PID reuse: its PID and start time.
type process struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// self is the calling process.
func self() process {
	return process{Pid: os.Getpid(), Start: startTime(os.Getpid())}
}

// alive reports whether the process still runs: the PID exists, is no
// zombie, and started when recorded (so a PID the kernel has since given to
// another process does not count).
func (p process) alive() bool {
	return p.Pid > 0 && p.Start != 0 && startTime(p.Pid) == p.Start
}

// Names in <run-root>/containers besides the containers' own directories.
const (
	creatingPrefix = ".creating-" // .creating-<owner pid>-<owner start>-<id>: a record being written
	removingPrefix = ".removing-" // .removing-<id>: a container claimed for removal
)

// createState makes the container's state directory with its first record
// in one step: the record is written in a directory whose name says who
// writes it, then the directory is renamed into place. A reader sees no
// directory or one with a record, never one without.
func createState(runRoot string, s state) (dir string, err error) {
	parent := filepath.Join(runRoot, "containers")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	tmp := filepath.Join(parent, fmt.Sprintf("%s%d-%d-%s", creatingPrefix, s.Owner.Pid, s.Owner.Start, s.ID))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", err
	}
	dir = filepath.Join(parent, s.ID)
	// A plain write: the directory's rename is what makes the record
	// appear whole (and live state needs no fsync: a reboot forgets it).
	data, err := json.MarshalIndent(s, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, "state.json"), data, 0o600)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return dir, nil
}

// removeState removes a state directory: first renamed out of the way, so
// that a removal cut short leaves a name Reap knows is garbage, never a
// directory without a record.
func removeState(runRoot, id string) error {
	dir := filepath.Join(runRoot, "containers", id)
	gone := filepath.Join(runRoot, "containers", removingPrefix+id)
	if err := os.Rename(dir, gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(gone)
}

// writeState writes state.json atomically: a reader sees the old file or
// the new one, never half of it.
func writeState(dir string, s state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "state.json"), data, 0o600)
}

// readState reads a container's state.json.
func readState(dir string) (state, error) {
	var s state
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	return s, err
}

// Alive reports whether the container with this ID is alive: its state
// record exists and names an owner that still runs. A container that is
// still starting is alive (its record comes first); one whose engine was
// killed is not, at once, without a grace period. The image store asks it
// about the containers that hold leases on images.
func Alive(runRoot, id string) bool {
	if id == "" || strings.ContainsAny(id, "/.") {
		return false
	}
	s, err := readState(filepath.Join(runRoot, "containers", id))
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	// A record we cannot read is alive, as Reap leaves it: an image kept
	// too long is the safe mistake, its layers deleted under a container
	// is not.
	return err != nil || s.Owner.alive()
}

// startTime reads a live process's start time, in clock ticks since boot,
// from /proc/PID/stat (proc(5)); 0 when it is gone or a zombie.
func startTime(pid int) uint64 {
	st, err := procfs.ReadStat(pid)
	if err != nil || st.State == 'Z' {
		return 0
	}
	return st.StartTime
}

// parseOwned reads the owner from the name of a directory that a process
// names for itself: prefix, then <pid>-<start>, then anything.
func parseOwned(name, prefix string) (process, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return process{}, false
	}
	parts := strings.SplitN(rest, "-", 3)
	if len(parts) < 2 {
		return process{}, false
	}
	pid, err1 := strconv.Atoi(parts[0])
	start, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return process{}, false
	}
	return process{Pid: pid, Start: start}, true
}
