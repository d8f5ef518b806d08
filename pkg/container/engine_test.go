package container

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/minictr/minictr/pkg/trace"
)

type fakeOOM bool

func (f fakeOOM) OOMKilled() (bool, error) { return bool(f), nil }

func TestExitError(t *testing.T) {
	exited := func(code int) syscall.WaitStatus { return syscall.WaitStatus(code << 8) }
	killed := func(sig syscall.Signal) syscall.WaitStatus { return syscall.WaitStatus(sig) }
	stopped := syscall.WaitStatus(0x7f | int(syscall.SIGSTOP)<<8)
	for _, tc := range []struct {
		name     string
		ws       syscall.WaitStatus
		oom      fakeOOM
		limit    int64
		want     *ExitError
		wantText string
	}{
		{"success", exited(0), false, 0, nil, ""},
		{"success despite an OOM elsewhere", exited(0), true, 64 << 20, nil, ""},
		{"status 3", exited(3), false, 0, &ExitError{Code: 3}, "container exited with status 3"},
		{"SIGKILL", killed(syscall.SIGKILL), false, 0, &ExitError{Code: 137, Signal: syscall.SIGKILL}, "container killed by signal 9 (killed)"},
		{"SIGTERM", killed(syscall.SIGTERM), false, 0, &ExitError{Code: 143, Signal: syscall.SIGTERM}, "container killed by signal 15 (terminated)"},
		{"OOM kill", killed(syscall.SIGKILL), true, 16 << 20, &ExitError{Code: 137, Signal: syscall.SIGKILL, OOMKilled: true, MemoryLimit: 16 << 20},
			"container killed: out of memory (limit 16MiB)"},
		{"a child OOM-killed, PID 1 passes it on", exited(1), true, 1 << 30, &ExitError{Code: 1, OOMKilled: true, MemoryLimit: 1 << 30},
			"container killed: out of memory (limit 1GiB)"},
		{"no limit: the OOM flag is not asked", killed(syscall.SIGKILL), true, 0, &ExitError{Code: 137, Signal: syscall.SIGKILL}, "container killed by signal 9 (killed)"},
		{"neither exited nor killed", stopped, false, 0, &ExitError{Code: 125}, "container exited with status 125"},
	} {
		got := exitError(tc.ws, tc.oom, tc.limit)
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: exitError = %+v, want %+v", tc.name, got, tc.want)
			continue
		}
		if got != nil && got.Error() != tc.wantText {
			t.Errorf("%s: %q, want %q", tc.name, got.Error(), tc.wantText)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file("a/tool", 0o755)
	file("a/notexec", 0o644)
	file("b/notexec", 0o755) // an executable later in PATH wins over a non-executable earlier
	file("a/only-denied", 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "a/subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := dir + "/missing:" + dir + "/a:" + dir + "/b"
	for _, tc := range []struct {
		name, want string
		code       int // 0: found
	}{
		{"tool", dir + "/a/tool", 0},
		{"notexec", dir + "/b/notexec", 0},
		{"only-denied", "", 126},
		{"subdir", "", 126}, // a directory is no program
		{"nothing", "", 127},
		{dir + "/a/tool", dir + "/a/tool", 0}, // a slash: used as it is
		{dir + "/a/only-denied", "", 126},     // ... even when PATH has better
		{dir + "/a/nothing", "", 127},         // ... and missing
		{"a/tool", "", 127},                   // relative to the working directory, not PATH
	} {
		got, err := lookPath(tc.name, path)
		switch {
		case tc.code == 0 && (err != nil || got != tc.want):
			t.Errorf("lookPath(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		case tc.code != 0 && err == nil:
			t.Errorf("lookPath(%q) = %q, want an error with code %d", tc.name, got, tc.code)
		case tc.code != 0 && execCode(err) != tc.code:
			t.Errorf("lookPath(%q): %v gives %d, want %d", tc.name, err, execCode(err), tc.code)
		}
	}
	if _, err := lookPath("nothing", path); err == nil || err.Error() != `exec: "nothing": executable file not found in $PATH` {
		t.Errorf("not found: %v, want docker's words", err)
	}
}

// deadProcess returns a process (PID and start time) that has ended.
func deadProcess(t *testing.T) process {
	t.Helper()
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := process{Pid: cmd.Process.Pid, Start: startTime(cmd.Process.Pid)}
	if p.Start == 0 {
		t.Fatal("no start time for a running process")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return p
}

// TestReap runs the reaper over a run root holding every kind of entry, with
// the cgroup removal faked: only dead containers go, each released once.
func TestReap(t *testing.T) {
	root, runRoot := t.TempDir(), t.TempDir()
	dead, reused := deadProcess(t), process{Pid: os.Getpid(), Start: 1} // a PID now used by another process
	me := self()
	mk := func(id string, owner process) {
		if _, err := createState(runRoot, state{ID: id, Owner: owner}); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "containers", id, "upper/etc"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("deadengine", dead)
	mk("reusedpid", reused)
	mk("alive", me)
	// A removal cut short, and records being written by a dead and a live engine.
	must(t, os.MkdirAll(filepath.Join(runRoot, "containers", removingPrefix+"halfgone"), 0o700))
	deadCreating := filepath.Join(runRoot, "containers", creatingPrefix+itoa(dead.Pid)+"-"+utoa(dead.Start)+"-c1")
	liveCreating := filepath.Join(runRoot, "containers", creatingPrefix+itoa(me.Pid)+"-"+utoa(me.Start)+"-c2")
	must(t, os.MkdirAll(deadCreating, 0o700))
	must(t, os.MkdirAll(liveCreating, 0o700))

	if !Alive(runRoot, "alive") || Alive(runRoot, "deadengine") || Alive(runRoot, "reusedpid") || Alive(runRoot, "nosuch") || Alive(runRoot, "../alive") {
		t.Errorf("Alive: alive %v, deadengine %v, reusedpid %v, nosuch %v, ../alive %v; want only alive",
			Alive(runRoot, "alive"), Alive(runRoot, "deadengine"), Alive(runRoot, "reusedpid"), Alive(runRoot, "nosuch"), Alive(runRoot, "../alive"))
	}

	var released, destroyed []string
	rec := &trace.Recorder{}
	r := reaper{
		ReapOptions: ReapOptions{Root: root, RunRoot: runRoot, Tracer: rec,
			Release: func(id string) error { released = append(released, id); return nil }},
		destroyCgroup: func(name string, _ trace.Tracer) error { destroyed = append(destroyed, name); return nil },
	}
	must(t, r.reap())
	slices.Sort(released)
	slices.Sort(destroyed)
	if want := []string{"deadengine", "halfgone", "reusedpid"}; !slices.Equal(released, want) {
		t.Errorf("released %v, want %v", released, want)
	}
	if want := []string{"minictr-deadengine", "minictr-halfgone", "minictr-reusedpid"}; !slices.Equal(destroyed, want) {
		t.Errorf("destroyed cgroups %v, want %v", destroyed, want)
	}
	if got := ls(t, filepath.Join(runRoot, "containers")); !slices.Equal(got, []string{creatingPrefix + itoa(me.Pid) + "-" + utoa(me.Start) + "-c2", "alive"}) {
		t.Errorf("run root keeps %v, want only the live container and the live engine's record in progress", got)
	}
	if got := ls(t, filepath.Join(root, "containers")); !slices.Equal(got, []string{"alive"}) {
		t.Errorf("root keeps snapshots %v, want only the live container's", got)
	}
	if !slices.ContainsFunc(rec.Steps, func(s trace.Recorded) bool {
		return strings.Contains(s.Action, "container deadengine was left by an engine that died")
	}) {
		t.Errorf("trace %+v does not name the reclaimed container", rec.Steps)
	}

	// Nothing left to do: a second reap releases nothing.
	released = nil
	must(t, r.reap())
	if len(released) != 0 {
		t.Errorf("second reap released %v", released)
	}

	// A failing release keeps the state, so that the next reap tries again.
	mk("stuck", dead)
	r.Release = func(string) error { return errors.New("store unavailable") }
	if err := r.reap(); err == nil || !strings.Contains(err.Error(), "reclaiming container stuck: store unavailable") {
		t.Errorf("reap with a failing release = %v", err)
	}
	if _, err := os.Stat(filepath.Join(runRoot, "containers", removingPrefix+"stuck")); err != nil {
		t.Errorf("the claimed state is gone after a failed reclaim: %v", err)
	}
	r.Release = func(string) error { return nil }
	must(t, r.reap())
	if _, err := os.Stat(filepath.Join(runRoot, "containers", removingPrefix+"stuck")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the next reap did not finish the reclaim: %v", err)
	}
}

// TestStateRecordFirst: a state directory appears with its record in one
// step, and its removal never leaves a directory without one.
func TestStateRecordFirst(t *testing.T) {
	runRoot := t.TempDir()
	dir, err := createState(runRoot, state{ID: "c", Owner: self()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := readState(dir)
	if err != nil || s.Owner != self() {
		t.Fatalf("record %+v, %v; want this process as owner", s, err)
	}
	if got := ls(t, filepath.Join(runRoot, "containers")); !slices.Equal(got, []string{"c"}) {
		t.Errorf("containers holds %v, want [c]", got)
	}
	if _, err := createState(runRoot, state{ID: "c", Owner: self()}); err == nil {
		t.Errorf("a second record for the same ID was accepted")
	}
	must(t, removeState(runRoot, "c"))
	must(t, removeState(runRoot, "c")) // idempotent
	if got := ls(t, filepath.Join(runRoot, "containers")); len(got) != 0 {
		t.Errorf("containers holds %v after removal", got)
	}
}

func ls(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func itoa(n int) string    { return strconv.Itoa(n) }
func utoa(n uint64) string { return strconv.FormatUint(n, 10) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
