package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/minictr/minictr/cmd/minictr/cli"
	"github.com/minictr/minictr/internal/imagetest"
	"github.com/minictr/minictr/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"lesson07": run, "minictr": cli.Main})
}

// TestLesson runs the lesson against two local registries the scripts
// start: Debian's docker-registry (with htpasswd) and go-containerregistry's
// in-process one (plain, or behind token auth); see internal/imagetest.
func TestLesson(t *testing.T) {
	p := testenv.Params("testdata")
	p.Cmds = imagetest.Commands()
	p.Condition = imagetest.Condition(p.Condition)
	testscript.Run(t, p)
}
