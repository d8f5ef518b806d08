package main

import (
	"fmt"
	"net"
	"os"
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
// $LESSON is this folder (registry.yml is there), $PORT a free port.
func TestLesson(t *testing.T) {
	lesson, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.Params("testdata")
	p.Setup = func(env *testscript.Env) error {
		if err := testenv.Setup(env); err != nil {
			return err
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		env.Setenv("LESSON", lesson)
		env.Setenv("PORT", fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
		return nil
	}
	p.Cmds = imagetest.Commands()
	p.Condition = imagetest.Condition(p.Condition)
	testscript.Run(t, p)
}
