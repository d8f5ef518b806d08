package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/minictr/minictr/internal/procfs"
)

// Work in progress lives in tmp/, one directory per operation, named
//
//	tmp/<pid>.<start>.<op>.<random>/
//
// after the process that owns it: its PID and its start time (field 22 of
// /proc/PID/stat, in clock ticks after boot). A PID alone is not a name: the
// kernel hands it out again. A directory is reclaimed when its owner is
// provably dead (no such process, or one that started at another time),
// and never while the owner lives, however long that takes: a save that
// streams for an hour keeps its files, and a pull killed a second ago has
// its leftovers removed by the next command that opens the store.

// workDir makes a directory in tmp/ for the work of op.
func (s *Store) workDir(op string) (string, error) {
	start, err := selfStart()
	if err != nil {
		return "", fmt.Errorf("making a work directory: %w", err)
	}
	dir, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), fmt.Sprintf("%d.%d.%s.", os.Getpid(), start, op))
	if err != nil {
		return "", fmt.Errorf("making a work directory: %w", err)
	}
	return dir, nil
}

// reclaim removes the work directories of dead operations, and anything in
// tmp/ that names no owner (the leftovers of older versions). Two
// processes may reclaim the same directory at once: a dead owner's
// directory is garbage to both, and errors are ignored.
func (s *Store) reclaim() {
	tmp := filepath.Join(s.root, "tmp")
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if pid, start, ok := ownerOf(e.Name()); ok && alive(pid, start) {
			continue
		}
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
}

// ownerOf reads the PID and start time from a work directory's name.
func ownerOf(name string) (pid int, start uint64, ok bool) {
	f := strings.SplitN(name, ".", 3)
	if len(f) < 3 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	return pid, start, err1 == nil && err2 == nil && pid > 0
}

// alive reports whether the process pid that started at start still runs.
// When /proc cannot tell (hidepid, another PID namespace's PID), the owner
// is taken to be alive: leaving garbage is better than deleting live work.
func alive(pid int, start uint64) bool {
	got, err := processStart(pid)
	if os.IsNotExist(err) {
		return false
	}
	return err != nil || got == start
}

var self struct {
	once  sync.Once
	start uint64
	err   error
}

func selfStart() (uint64, error) {
	self.once.Do(func() { self.start, self.err = processStart(os.Getpid()) })
	return self.start, self.err
}

// processStart is the start time of a process (procfs.ReadStat).
func processStart(pid int) (uint64, error) {
	st, err := procfs.ReadStat(pid)
	return st.StartTime, err
}
