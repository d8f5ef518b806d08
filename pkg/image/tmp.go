package image

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/minictr/minictr/internal/flock"
)

// Work in progress lives in tmp/, one directory per operation, named
//
//	tmp/<op>.<random>/
//
// and flock(2)ed by the process that works in it for as long as it does
// (internal/flock). A directory whose lock can be taken is garbage: its
// owner is gone, however it ended. It is never reclaimed while the owner
// lives, however long that takes — a save that streams for an hour keeps
// its files — and a pull killed a second ago has its leftovers removed by
// the next command that opens the store. The lock answers across PID
// namespaces (a minictr in a container sharing the store) where a PID in
// the name would not.

// workDir makes a directory in tmp/ for the work of op, held until done,
// which removes it.
func (s *Store) workDir(op string) (dir string, done func(), err error) {
	var b [6]byte
	rand.Read(b[:])
	dir = filepath.Join(s.root, "tmp", op+"."+hex.EncodeToString(b[:]))
	l, err := flock.Mkdir(dir, 0o700)
	if err != nil {
		return "", nil, fmt.Errorf("making a work directory: %w", err)
	}
	return dir, func() {
		os.RemoveAll(dir)
		l.Unlock() // after the removal: no one else removes it meanwhile
	}, nil
}

// reclaim removes the work directories of dead operations, and anything
// else in tmp/ that no one holds (the leftovers of older versions). Of two
// processes reclaiming at once, the one that takes a directory's lock
// removes it.
func (s *Store) reclaim() {
	tmp := filepath.Join(s.root, "tmp")
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		p := filepath.Join(tmp, e.Name())
		l, err := flock.Try(p)
		switch {
		case errors.Is(err, flock.ErrLocked), errors.Is(err, fs.ErrNotExist):
			continue // alive, or removed by another
		case err != nil:
			// Not lockable (a symlink, a socket): no one's work either.
			os.RemoveAll(p)
			continue
		}
		os.RemoveAll(p)
		l.Unlock()
	}
}
