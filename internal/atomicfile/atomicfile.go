// Package atomicfile writes files so that a reader, or a process killed
// halfway (kill -9, a power cut), sees the old content or the new, never a
// mix: the data goes to a temporary file in the same directory, is synced,
// and is renamed over the target (rename(2) is atomic within a filesystem).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write writes data to name with permissions perm, atomically.
func Write(name string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return os.Rename(tmp.Name(), name)
}
