// Package flock proves that something has an owner with flock(2): the
// owner holds an exclusive lock on a directory or file for as long as it
// owns what that names, and anyone may ask, without waiting, whether the
// lock can be taken. Taken means dead: the kernel drops a process's locks
// when it exits, however it ends (kill -9 included), so the answer needs
// no PID — which a process in another PID namespace could not look up, and
// which the kernel hands out again — and no clock.
//
// A lock lives on an open file description, not on a process: every
// descriptor here is O_CLOEXEC, so a program that the owner execs never
// inherits it; an owner that hands its work to another process (a
// container's monitor) passes File on explicitly, and the lock goes with
// it. The one host side effect is the directory or file itself, which the
// caller removes.
package flock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked: another holds the lock, so what it names is alive.
var ErrLocked = errors.New("locked by its owner")

// A Lock is a held flock(2) on one directory or file.
type Lock struct{ f *os.File }

// File is the locked descriptor: keep it open, in this process or in one
// it is handed to (exec.Cmd.ExtraFiles), to keep the lock.
func (l *Lock) File() *os.File { return l.f }

// Unlock drops the lock (closing the descriptor). What it named stays.
func (l *Lock) Unlock() error { return l.f.Close() }

// Mkdir creates the directory path and returns it locked. The directory
// is never seen unlocked for long, but it is seen: a reclaimer that takes
// the lock in between removes it, so Mkdir waits for that removal and
// makes the directory again.
func Mkdir(path string, perm os.FileMode) (*Lock, error) {
	for attempt := 0; ; attempt++ {
		if err := os.Mkdir(path, perm); err != nil {
			return nil, err
		}
		// Blocking: a reclaimer holds it only while removing it.
		l, err := open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0, unix.LOCK_EX)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 2 {
			return l, err
		}
	}
}

// Create creates the file path (it must not exist) and returns it locked,
// open for writing.
func Create(path string, perm os.FileMode) (*Lock, error) {
	return open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, perm, unix.LOCK_EX|unix.LOCK_NB)
}

// Try takes the lock on the directory or file path if no one holds it: its
// owner is gone, and the caller now holds what it names (to remove it,
// say: two callers never both get it). It fails with ErrLocked while the
// owner lives, and with fs.ErrNotExist once path is gone, also when it went
// while Try waited (another caller removed it).
func Try(path string) (*Lock, error) {
	return open(path, unix.O_RDONLY, 0, unix.LOCK_EX|unix.LOCK_NB)
}

// open opens path, flocks it with how, and checks that path still names
// what is locked: a lock taken on a directory or file that was removed
// meanwhile guards nothing.
func open(path string, flags int, perm os.FileMode, how int) (*Lock, error) {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if err := flock(fd, how); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	var held, now unix.Stat_t
	err = unix.Fstat(fd, &held)
	if err == nil {
		err = unix.Lstat(path, &now)
	}
	if err == nil && (held.Dev != now.Dev || held.Ino != now.Ino) {
		err = unix.ENOENT // another directory or file has its name now
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return &Lock{f: f}, nil
}

// flock is flock(2), again after a signal interrupts a blocking wait.
func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}
