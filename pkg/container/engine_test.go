package container

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/minictr/minictr/internal/flock"
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

// TestReap runs the reaper over a run root and a root holding every kind of
// entry, with the cgroup removal faked: only what no one holds goes, each
// container released once. An owner that died is one whose lock was let go
// (the kernel does that at exit; internal/flock's tests kill a holder).
func TestReap(t *testing.T) {
	root, runRoot := t.TempDir(), t.TempDir()
	boot, err := bootID()
	must(t, err)
	// held: the owner lives; released: it died.
	mkState := func(id string, held bool) {
		l, err := createState(runRoot, state{ID: id})
		must(t, err)
		if !held {
			l.Unlock()
		}
	}
	mkRoot := func(id, boot string, autoRemove, held bool) {
		l, err := createRootRecord(root, rootRecord{ID: id, BootID: boot, AutoRemove: autoRemove})
		must(t, err)
		must(t, os.MkdirAll(filepath.Join(root, "containers", id, "upper/etc"), 0o755))
		if !held {
			l.Unlock()
		}
	}
	mkState("deadengine", false)
	mkRoot("deadengine", boot, true, false)
	mkState("alive", true)
	mkRoot("alive", boot, true, true)
	// A removal cut short: the record went first.
	mkState("halfgone", false)
	must(t, os.Remove(filepath.Join(runRoot, "containers", "halfgone", stateFile)))
	// A record no one can read is left to a person, snapshot and all.
	mkState("garbled", false)
	must(t, os.WriteFile(filepath.Join(runRoot, "containers", "garbled", stateFile), []byte("{not json"), 0o600))
	mkRoot("garbled", boot, true, false)
	// Snapshots whose state is not in this run root: a run that a reboot
	// ended, a live and a dead container of another run root, a stopped
	// container (kept until rm).
	mkRoot("rebooted", "another-boot", true, false)
	mkRoot("otherrunroot", boot, true, true)
	mkRoot("otherdead", boot, true, false)
	mkRoot("stopped", "another-boot", false, false)
	// Records and probes being made by a dead and a live engine.
	deadCreating, err := flock.Mkdir(filepath.Join(runRoot, "containers", creatingPrefix+"c1"), 0o700)
	must(t, err)
	deadCreating.Unlock()
	_, err = flock.Mkdir(filepath.Join(runRoot, "containers", creatingPrefix+"c2"), 0o700)
	must(t, err)
	deadProbe, err := flock.Mkdir(filepath.Join(root, "containers", probePrefix+"p1"), 0o700)
	must(t, err)
	deadProbe.Unlock()
	_, err = flock.Mkdir(filepath.Join(root, "containers", probePrefix+"p2"), 0o700)
	must(t, err)

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
	if want := []string{"deadengine", "halfgone", "otherdead", "rebooted"}; !slices.Equal(released, want) {
		t.Errorf("released %v, want %v", released, want)
	}
	// After a reboot there is no cgroup to remove.
	if want := []string{"minictr-deadengine", "minictr-halfgone", "minictr-otherdead"}; !slices.Equal(destroyed, want) {
		t.Errorf("destroyed cgroups %v, want %v", destroyed, want)
	}
	if got, want := ls(t, filepath.Join(runRoot, "containers")), []string{creatingPrefix + "c2", "alive", "garbled"}; !slices.Equal(got, want) {
		t.Errorf("run root keeps %v, want %v: the live container, the live engine's record in progress, the unreadable one", got, want)
	}
	if got, want := ls(t, filepath.Join(root, "containers")), []string{probePrefix + "p2", "alive", "garbled", "otherrunroot", "stopped"}; !slices.Equal(got, want) {
		t.Errorf("root keeps %v, want %v", got, want)
	}
	for _, want := range []string{"container deadengine was left by an engine that died", "container rebooted was left by a run that a reboot ended"} {
		if !slices.ContainsFunc(rec.Steps, func(s trace.Recorded) bool { return strings.Contains(s.Action, want) }) {
			t.Errorf("trace %+v does not say %q", rec.Steps, want)
		}
	}

	// Nothing left to do: a second reap releases nothing.
	released = nil
	must(t, r.reap())
	if len(released) != 0 {
		t.Errorf("second reap released %v", released)
	}

	// A failing release keeps the state, so that the next reap tries again.
	mkState("stuck", false)
	r.Release = func(string) error { return errors.New("store unavailable") }
	if err := r.reap(); err == nil || !strings.Contains(err.Error(), "reclaiming container stuck: store unavailable") {
		t.Errorf("reap with a failing release = %v", err)
	}
	if _, err := os.Stat(filepath.Join(runRoot, "containers", "stuck")); err != nil {
		t.Errorf("the state is gone after a failed reclaim: %v", err)
	}
	r.Release = func(string) error { return nil }
	must(t, r.reap())
	if _, err := os.Stat(filepath.Join(runRoot, "containers", "stuck")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the next reap did not finish the reclaim: %v", err)
	}
}

// TestReapStopsAtCgroup: when the cgroup cannot be removed, processes may
// still run in it and use the snapshot: reclaim stops there, keeping the
// snapshot, the lease and the state, and the next reap tries again.
func TestReapStopsAtCgroup(t *testing.T) {
	root, runRoot := t.TempDir(), t.TempDir()
	boot, err := bootID()
	must(t, err)
	for _, inRunRoot := range []bool{true, false} {
		id := "inrunroot"
		if !inRunRoot {
			id = "inroot"
			l, err := createState(runRoot, state{ID: id})
			must(t, err)
			l.Unlock()
			must(t, removeState(runRoot, id)) // the run root forgot it; the snapshot is all that is left
		} else {
			l, err := createState(runRoot, state{ID: id})
			must(t, err)
			l.Unlock()
		}
		l, err := createRootRecord(root, rootRecord{ID: id, BootID: boot, AutoRemove: true})
		must(t, err)
		must(t, os.MkdirAll(filepath.Join(root, "containers", id, "rootfs/bin"), 0o755))
		l.Unlock()
	}
	var released []string
	r := reaper{
		ReapOptions: ReapOptions{Root: root, RunRoot: runRoot,
			Release: func(id string) error { released = append(released, id); return nil }},
		destroyCgroup: func(string, trace.Tracer) error { return errors.New("device or resource busy") },
	}
	if err := r.reap(); err == nil || !strings.Contains(err.Error(), "snapshot is kept") {
		t.Errorf("reap with a cgroup that cannot be removed = %v", err)
	}
	if len(released) != 0 {
		t.Errorf("released %v while processes may still use the image", released)
	}
	for _, id := range []string{"inrunroot", "inroot"} {
		if _, err := os.Stat(filepath.Join(root, "containers", id, "rootfs/bin")); err != nil {
			t.Errorf("%s: the snapshot was removed with its cgroup still there: %v", id, err)
		}
	}
	if _, err := os.Stat(filepath.Join(runRoot, "containers", "inrunroot", stateFile)); err != nil {
		t.Errorf("the state was removed with the cgroup still there: %v", err)
	}
	r.destroyCgroup = func(string, trace.Tracer) error { return nil }
	must(t, r.reap())
	if got := ls(t, filepath.Join(root, "containers")); len(got) != 0 {
		t.Errorf("root keeps %v once the cgroups went", got)
	}
	if got := ls(t, filepath.Join(runRoot, "containers")); len(got) != 0 {
		t.Errorf("run root keeps %v once the cgroups went", got)
	}
}

// TestStateRecordFirst: a state directory appears with its record in one
// step, locked by its maker, and its removal never leaves a directory
// that anyone mistakes for a live container.
func TestStateRecordFirst(t *testing.T) {
	runRoot := t.TempDir()
	l, err := createState(runRoot, state{ID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(runRoot, "containers", "c")
	if s, err := readState(dir); err != nil || s.ID != "c" {
		t.Fatalf("record %+v, %v", s, err)
	}
	if _, err := flock.Try(dir); !errors.Is(err, flock.ErrLocked) {
		t.Errorf("the state directory is not held by its maker: %v", err)
	}
	if got := ls(t, filepath.Join(runRoot, "containers")); !slices.Equal(got, []string{"c"}) {
		t.Errorf("containers holds %v, want [c]", got)
	}
	if _, err := createState(runRoot, state{ID: "c"}); err == nil {
		t.Errorf("a second record for the same ID was accepted")
	}
	if _, err := createState(runRoot, state{ID: "../c"}); err == nil {
		t.Errorf("an ID with a path in it was accepted")
	}
	must(t, removeState(runRoot, "c"))
	must(t, removeState(runRoot, "c")) // idempotent
	l.Unlock()
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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
