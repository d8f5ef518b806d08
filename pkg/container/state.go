package container

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/minictr/minictr/internal/atomicfile"
	"github.com/minictr/minictr/internal/procfs"
)

// state is what a running container leaves in its state directory, so that
// an instructor (and later `minictr ps`) can see it: cat state.json.
type state struct {
	ID  string `json:"id"`
	Pid int    `json:"pid"`
	// PidStart is the process's start time (field 22 of /proc/PID/stat):
	// with Pid, it names the process even after its PID is reused.
	PidStart uint64    `json:"pidStart"`
	Image    string    `json:"image,omitempty"`
	Rootfs   string    `json:"rootfs"`
	Cgroups  []string  `json:"cgroups"`
	Created  time.Time `json:"created"`
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

// UsesImage reports whether a live container runs the image with this ID.
// A state file left by an engine that was killed does not count: its
// process is gone.
func UsesImage(runRoot, imageID string) bool {
	dirs, _ := filepath.Glob(filepath.Join(runRoot, "containers", "*"))
	for _, dir := range dirs {
		if s, err := readState(dir); err == nil && s.Image == imageID && s.alive() {
			return true
		}
	}
	return false
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

// alive reports whether the container's process still runs: the PID
// exists, is no zombie, and started when the state file says (so a PID the
// kernel has since given to another process does not count).
func (s state) alive() bool {
	return s.Pid > 0 && s.PidStart != 0 && startTime(s.Pid) == s.PidStart
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
