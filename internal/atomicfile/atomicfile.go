// Package atomicfile writes files so that a reader, or a process killed
// halfway (kill -9, a power cut), sees the old content or the new, never a
// mix: the data goes to a temporary file in the same directory, is synced,
// and is renamed over the target (rename(2) is atomic within a filesystem).
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write writes data to name with permissions perm, atomically.
func Write(name string, data []byte, perm os.FileMode) error {
	return WriteFunc(name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc is Write for content that is streamed: write produces it.
// When write fails, name is left as it was.
func WriteFunc(name string, perm os.FileMode, write func(io.Writer) error) error {
	return writeFunc(name, func(tmp *os.File) error { return tmp.Chmod(perm) }, write)
}

// writeFunc is WriteFunc with the temporary file's attributes set by
// attrs once it is written. On any error name is left as it was.
func writeFunc(name string, attrs func(tmp *os.File) error, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	err = write(tmp)
	if err == nil {
		// After the write, which would clear a set-user-ID bit.
		err = attrs(tmp)
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
