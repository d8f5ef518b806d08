package container

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStartTime: a live process has a start time, a zombie and a reaped
// process have none, so the init's start time in a record names a live
// process.
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
}
