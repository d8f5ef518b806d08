package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run this lesson as the command lesson04, and
// fails the run if a script leaves a cgroup or a process behind.
func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"lesson04": run})
}

// TestLesson runs testdata/*.txtar: each proves a claim of README.md. On
// top of the shared conditions, [memory_peak] says whether the kernel has
// v2's memory.peak, which came with Linux 5.19.
func TestLesson(t *testing.T) {
	p := testenv.Params("testdata")
	shared := p.Condition
	p.Condition = func(cond string) (bool, error) {
		if cond != "memory_peak" {
			return shared(cond)
		}
		release, err := os.ReadFile("/proc/sys/kernel/osrelease")
		if err != nil {
			return false, err
		}
		return kernelAtLeast(string(release), 5, 19)
	}
	testscript.Run(t, p)
}

// kernelAtLeast compares a kernel release such as "6.1.0-56-amd64" with
// major.minor.
func kernelAtLeast(release string, major, minor int) (bool, error) {
	var maj, min int
	if _, err := fmt.Sscanf(strings.TrimSpace(release), "%d.%d", &maj, &min); err != nil {
		return false, fmt.Errorf("kernel release %q: %w", release, err)
	}
	return maj > major || maj == major && min >= minor, nil
}

func TestKernelAtLeast(t *testing.T) {
	for release, want := range map[string]bool{
		"6.1.0-56-amd64\n": true, "5.19.0": true, "5.19-rc1": true, "6.18.0": true,
		"5.18.19": false, "5.4.0-150-generic": false, "4.19.0-26-amd64": false,
	} {
		if got, err := kernelAtLeast(release, 5, 19); got != want || err != nil {
			t.Errorf("kernelAtLeast(%q, 5, 19) = %v, %v; want %v", release, got, err, want)
		}
	}
	if _, err := kernelAtLeast("linux", 5, 19); err == nil {
		t.Error("kernelAtLeast(\"linux\") gave no error")
	}
}
