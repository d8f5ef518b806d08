package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/minictr/minictr/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"lesson02": run})
}

func TestLesson(t *testing.T) {
	testscript.Run(t, testenv.Params("testdata"))
}
