package container

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStartTime: a live process has a start time, a zombie and a reaped
// process have none, so a state file naming either counts as dead.
func TestStartTime(t *testing.T) {
	if startTime(os.Getpid()) == 0 {
		t.Fatal("startTime(self) = 0, want this process's start time")
	}
	cmd := exec.Command("/bin/sh", "-c", "exit 0")
	if err := cmd.Start(); err != nil {
		t.Skipf("needs /bin/sh: %v", err)
	}
	pid := cmd.Process.Pid
	// Wait for the exit without reaping: the child stays a zombie.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if got := startTime(pid); got != 0 {
		t.Errorf("startTime(zombie %d) = %d, want 0", pid, got)
	}
	_ = cmd.Wait()
	if got := startTime(pid); got != 0 {
		t.Errorf("startTime(reaped %d) = %d, want 0", pid, got)
	}
	p := process{Pid: os.Getpid(), Start: startTime(os.Getpid())}
	if !p.alive() {
		t.Errorf("a record naming this process, with its start time, is not alive")
	}
	p.Start++
	if p.alive() {
		t.Errorf("state naming this PID with another start time is alive: the PID was reused")
	}
}

// TestAliveUnreadableRecord: a record that cannot be read keeps its
// container alive for the image store, as Reap leaves it alone: its lease
// must not be dropped, nor its image's layers deleted.
func TestAliveUnreadableRecord(t *testing.T) {
	runRoot := t.TempDir()
	dir := filepath.Join(runRoot, "containers", "garbled")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !Alive(runRoot, "garbled") {
		t.Error("a container with an unreadable record counts as dead")
	}
	if dead(dir) {
		t.Error("Reap would remove a container with an unreadable record")
	}
}
