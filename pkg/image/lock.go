package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A LockHolder is the process that holds the store lock, as it wrote
// itself into the lock file: enough for a waiting command to say what it
// waits for.
type LockHolder struct {
	PID int    // 0 when the lock file does not say
	Op  string // "pull", "load", "rmi" ...
}

// lock takes the store lock, an exclusive flock(2) on root/lock, for op.
// When another process holds it, lock tells Options.Waiting who that is
// and waits until the lock frees or ctx ends (Ctrl-C must not have to wait
// for someone else's load). The returned func releases the lock.
//
// flock(2) blocks in the kernel where no context can reach it, so the wait
// polls with LOCK_NB instead: a few milliseconds at first, at most 50.
func (s *Store) lock(ctx context.Context, op string) (func(), error) {
	path := filepath.Join(s.root, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking image store: %w", err)
	}
	told := false
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking image store: %w", &os.PathError{Op: "flock", Path: path, Err: err})
		}
		if !told && s.opts.Waiting != nil {
			s.opts.Waiting(readHolder(f))
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the image store lock: %w", ctx.Err())
		case <-time.After(delay):
		}
	}
	s.opts.Tracer.Step("store", "flock(LOCK_EX) "+path, "flock "+path)
	// Say who we are, for the next one who waits.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), op)), 0)
	}
	return func() {
		f.Truncate(0)
		f.Close() // closing the file releases the flock
	}, nil
}

// readHolder reads "PID OP" from the lock file.
func readHolder(f *os.File) LockHolder {
	buf := make([]byte, 128)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return LockHolder{}
	}
	pid, op, _ := strings.Cut(strings.TrimSpace(string(buf[:n])), " ")
	h := LockHolder{Op: op}
	h.PID, _ = strconv.Atoi(pid)
	return h
}
