package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/minictr/minictr/cmd/minictr/cli"
	"github.com/minictr/minictr/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"lesson00": run, "minictr": cli.Main})
}

func TestLesson(t *testing.T) {
	testscript.Run(t, testenv.Params("testdata"))
}
