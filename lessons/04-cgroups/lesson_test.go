package main

import (
	"testing"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run this lesson as the command lesson04, and
// fails the run if a script leaves a cgroup or a process behind.
func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"lesson04": run})
}

// TestLesson runs testdata/*.txtar: each proves a claim of README.md.
// v2's memory.peak came with Linux 5.19: its check is [kernel:5.19].
func TestLesson(t *testing.T) {
	testscript.Run(t, testenv.Params("testdata"))
}
