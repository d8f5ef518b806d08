package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestFixturesUpToDate regenerates the fixtures and compares them with the
// committed ones, so that testdata/hostile never drifts from this program.
func TestFixturesUpToDate(t *testing.T) {
	committed := filepath.Join("..", "..", "testdata", "hostile")
	fresh := t.TempDir()
	if err := generate(fresh); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadDir(fresh)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadDir(committed)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%s has %d files, the generator writes %d: run go run ./internal/hostilegen -o testdata/hostile", committed, len(got), len(want))
	}
	for _, e := range want {
		a, _ := os.ReadFile(filepath.Join(fresh, e.Name()))
		b, err := os.ReadFile(filepath.Join(committed, e.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the generator's output (%v): run go run ./internal/hostilegen -o testdata/hostile", e.Name(), err)
		}
	}
}
