package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/minictr/minictr/cmd/minictr/cli"
	"github.com/minictr/minictr/internal/testenv"
)

// TestMain registers lesson13, minictr (the engine, for the steps where
// the wall lives in the engine) and two helpers for no_new_privs: runas
// switches to a uid and execs, euid prints the effective uid.
func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"lesson13": run, "minictr": cli.Main, "runas": runas, "euid": euid})
}

// TestLesson runs testdata/*.txtar.
func TestLesson(t *testing.T) { testscript.Run(t, testenv.Params("testdata")) }

// runas UID CMD [ARGS...]: become UID (and gid UID, no groups), then exec.
func runas() int {
	if len(os.Args) < 3 {
		return 2
	}
	id, err := strconv.Atoi(os.Args[1])
	if err == nil {
		err = syscall.Setgroups(nil)
	}
	if err == nil {
		err = syscall.Setresgid(id, id, id)
	}
	if err == nil {
		err = syscall.Setresuid(id, id, id)
	}
	if err == nil {
		err = syscall.Exec(os.Args[2], os.Args[2:], os.Environ())
	}
	fmt.Fprintln(os.Stderr, "runas:", err)
	return 1
}

// euid prints the effective uid: a setuid-root copy of the test binary
// prints 0 unless no_new_privs kept exec from granting it.
func euid() int {
	fmt.Println("euid", os.Geteuid())
	return 0
}
