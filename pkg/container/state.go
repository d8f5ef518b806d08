package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// state is what a running container leaves in its state directory, so that
// an instructor (and later `minictr ps`) can see it: cat state.json.
type state struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Image   string    `json:"image,omitempty"`
	Rootfs  string    `json:"rootfs"`
	Cgroups []string  `json:"cgroups"`
	Created time.Time `json:"created"`
}

// writeState writes state.json atomically: a reader sees the old file or
// the new one, never half of it.
func writeState(dir string, s state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "state.json"), data, 0o600)
}

func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return os.Rename(tmp.Name(), name)
}

// UsesImage reports whether a live container runs the image with this ID.
// A state file left by an engine that was killed does not count: its
// process is gone.
func UsesImage(runRoot, imageID string) bool {
	files, _ := filepath.Glob(filepath.Join(runRoot, "containers", "*", "state.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var s state
		if json.Unmarshal(data, &s) == nil && s.Image == imageID && alive(s.Pid) {
			return true
		}
	}
	return false
}

// alive reports whether a process exists, with the null signal of kill(2).
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}
