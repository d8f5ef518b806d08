package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minictr/minictr/pkg/trace"
)

// cgroupfs is the file access both drivers share: every change to the
// host goes through it, so that each one reaches the tracer with its shell
// equivalent.
type cgroupfs struct{ t trace.Tracer }

const stage = "cgroups"

// mkdir creates a cgroup: the kernel fills the new directory with the
// controllers' files. An existing directory is an error, so that two
// containers never share a group by accident.
func (c cgroupfs) mkdir(dir string) error {
	c.t.Step(stage, "mkdir "+dir, "mkdir "+dir)
	return os.Mkdir(dir, 0o755)
}

// write sets one cgroup file. The file must exist (no O_CREAT): a missing
// file means the controller is not there, and the error names it.
func (c cgroupfs) write(dir, file, value string) error {
	path := filepath.Join(dir, file)
	shown := value
	if strings.ContainsAny(value, " +") {
		shown = `"` + value + `"`
	}
	c.t.Step(stage, "write "+shown+" > "+path, "echo "+shown+" > "+path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", shown, err)
	}
	return nil
}

// note reports a decision that changes nothing on the host.
func (c cgroupfs) note(action string) { c.t.Step(stage, action, "") }

// remove empties dir of processes and removes it. kill is called until
// cgroup.procs is empty and again whenever rmdir finds the group busy
// (the kernel refuses to remove a group until its last task has exited);
// after about two seconds remove gives up. A missing directory is fine, so
// remove can run twice.
func (c cgroupfs) remove(dir string, kill func(dir string) (int, error)) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	deadline := time.Now().Add(2 * time.Second)
	wait := 5 * time.Millisecond
	for {
		n, err := kill(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if n == 0 {
			c.t.Step(stage, "rmdir "+dir, "rmdir "+dir)
			err = syscall.Rmdir(dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if !errors.Is(err, syscall.EBUSY) {
				return &os.PathError{Op: "rmdir", Path: dir, Err: err}
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = syscall.EBUSY
			}
			return &os.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// noKill is the kill function for a group just made: nothing can be in it.
func noKill(string) (int, error) { return 0, nil }

// killProcs sends SIGKILL to every process listed in dir/cgroup.procs and
// returns how many it found. A process that is already gone is not an error.
func (c cgroupfs) killProcs(dir string) (int, error) {
	pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return 0, err
	}
	for _, pid := range pids {
		c.t.Step(stage, fmt.Sprintf("kill(%d, SIGKILL): still in %s", pid, dir), fmt.Sprintf("kill -KILL %d", pid))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return 0, os.NewSyscallError("kill", err)
		}
	}
	return len(pids), nil
}

// readPids reads a cgroup.procs file: one PID a line, in v1 neither sorted
// nor free of duplicates.
func readPids(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, &os.PathError{Op: "parse", Path: path, Err: err}
		}
		if !seen[pid] {
			seen[pid] = true
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// readUint reads a file holding one number, or "max" (v2's "no limit"),
// which reads as 0.
func readUint(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, &os.PathError{Op: "parse", Path: path, Err: err}
	}
	return n, nil
}

// readKeyed reads a flat keyed file such as cpu.stat or memory.events:
// "key value" a line.
func readKeyed(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return nil, &os.PathError{Op: "parse", Path: path, Err: err}
		}
		out[fields[0]] = n
	}
	if err := sc.Err(); err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return out, nil
}

// exists reports whether path exists, and any error other than its absence.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
