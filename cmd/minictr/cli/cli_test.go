package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

// TestMain registers "minictr" so that scripts can exec it, and so that
// the engine's re-execution of /proc/self/exe (with argv[0] "minictr")
// reaches Main.
func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"minictr": Main, "keyring-session": keyringSession})
}

// keyringSession is "keyring-session NAME COMMAND...": it joins a new
// session keyring of its own (never the host's keyrings), adds a user key
// NAME that only a possessor of the keyring may even see, and runs
// COMMAND, which inherits that session keyring: a victim for the keyring
// wall that harms nothing if the wall fails. Afterwards it says on stderr
// whether a key "planted-NAME" appeared in its session keyring, and exits
// with COMMAND's status.
func keyringSession() int {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: keyring-session NAME COMMAND...")
		return 2
	}
	// A session keyring belongs to a thread's credentials: join, add and
	// fork on one thread (Go forks from the calling thread).
	runtime.LockOSThread()
	name := os.Args[1]
	if _, err := unix.KeyctlJoinSessionKeyring(name + "-session"); err != nil {
		fmt.Fprintln(os.Stderr, "keyctl join:", err)
		return 1
	}
	id, err := unix.AddKey("user", name, []byte("secret"), unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		fmt.Fprintln(os.Stderr, "add_key:", err)
		return 1
	}
	const possessorAll = 0x3f000000 // KEY_POS_ALL: nobody else may view it
	if err := unix.KeyctlSetperm(id, possessorAll); err != nil {
		fmt.Fprintln(os.Stderr, "keyctl setperm:", err)
		return 1
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	_, serr := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", "planted-"+name, 0)
	fmt.Fprintf(os.Stderr, "keyring-session: planted key in the session keyring: %v\n", serr == nil)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testenv.Params("testdata"))
}

func TestParseBytes(t *testing.T) {
	good := map[string]int64{
		"64m": 64 << 20, "64M": 64 << 20, "64MiB": 64 << 20, "64mb": 64 << 20,
		"1g": 1 << 30, "1.5g": 3 << 29, "512k": 512 << 10, "100": 100, "100b": 100,
	}
	for in, want := range good {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-1", "m", "12x", "1..2g", "inf", "NaN", "1e30", "9999999999g"} {
		if got, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) = %d, want an error", in, got)
		}
	}
}

func TestResourcesRefusesBadLimits(t *testing.T) {
	bad := []runFlags{
		{memory: "abc"}, {memory: "-1"}, {memory: "1m"}, {memory: "inf"},
		{memory: "64m", memorySwap: "32m"}, {memorySwap: "64m"},
		{cpus: "0"}, {cpus: "-1"}, {cpus: "1000"}, {cpus: "x"},
		{cpuShares: 1}, {pidsLimit: -5},
	}
	for _, f := range bad {
		if _, err := f.resources(); err == nil {
			t.Errorf("resources(%+v) accepted", f)
		}
	}
	if r, err := (&runFlags{memory: "0", memorySwap: "0"}).resources(); err != nil || r.Memory != 0 || r.MemorySwap != 0 {
		t.Errorf("--memory 0 --memory-swap 0 = %+v, %v; want no limits, as in docker", r, err)
	}
	for _, h := range []string{"ok", "a-b.c1", strings.Repeat("x", 64)} {
		if err := checkHostname(h); err != nil {
			t.Errorf("checkHostname(%q) = %v", h, err)
		}
	}
	for _, h := range []string{"-a", "a_b", "a..b", strings.Repeat("x", 65)} {
		if checkHostname(h) == nil {
			t.Errorf("checkHostname(%q) accepted", h)
		}
	}
	r, err := (&runFlags{memory: "64m", cpus: "0.5", pidsLimit: 10}).resources()
	if err != nil {
		t.Fatal(err)
	}
	if r.Memory != 64<<20 || r.CPUQuota != 50000 || r.CPUPeriod != 100000 || r.PidsLimit != 10 {
		t.Fatalf("resources = %+v", r)
	}
}

func TestBuildEnv(t *testing.T) {
	t.Setenv("MINICTR_TEST_FROM_HOST", "host value")
	file := filepath.Join(t.TempDir(), "env")
	content := "# a comment\n\nA=1\nMINICTR_TEST_FROM_HOST\nMINICTR_TEST_UNSET\nB=x=y\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	env, err := buildEnv([]string{file}, []string{"C=3", "A=override"})
	if err != nil {
		t.Fatal(err)
	}
	want := "A=1|MINICTR_TEST_FROM_HOST=host value|B=x=y|C=3|A=override"
	if got := strings.Join(env, "|"); got != want {
		t.Fatalf("env = %s\nwant  %s", got, want)
	}
	if _, err := buildEnv(nil, []string{"=x"}); err == nil {
		t.Fatal("empty variable name accepted")
	}
	if _, err := buildEnv([]string{"/nonexistent/env"}, nil); err == nil {
		t.Fatal("missing env file accepted")
	}
}
