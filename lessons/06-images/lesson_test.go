package main

import (
	"path/filepath"
	"testing"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"lesson06": run})
}

func TestLesson(t *testing.T) {
	p := testenv.Params("testdata")
	p.Setup = func(env *testscript.Env) error {
		if err := testenv.Setup(env); err != nil {
			return err
		}
		// lesson06 mount unmounts before it exits; this is the safety net
		// for a script that dies half-way (EINVAL when nothing is mounted).
		merged := filepath.Join(env.WorkDir, "work", "merged")
		env.Defer(func() { unix.Unmount(merged, unix.MNT_DETACH) })
		return nil
	}
	testscript.Run(t, p)
}
