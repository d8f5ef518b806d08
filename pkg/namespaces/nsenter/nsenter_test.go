package nsenter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/namespaces"
)

// TestMain makes this test binary play both re-executed roles, as minictr
// does: the joining process of Command, and a container init to join.
func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"minictr": testMain})
}

func testMain() int {
	if Joined() {
		code, err := Run()
		if err != nil {
			fmt.Fprintln(os.Stderr, "minictr:", err)
		}
		return code
	}
	// The container init: set the hostname it was given, then sleep.
	payload, r, err := namespaces.Handshake()
	if err != nil {
		r.Fail(125, err)
		return 125
	}
	if err := unix.Sethostname(payload); err != nil {
		r.Fail(125, os.NewSyscallError("sethostname", err))
		return 125
	}
	if err := r.Ready(); err != nil {
		return 125
	}
	err = unix.Exec("/bin/sleep", []string{"sleep", "60"}, os.Environ())
	r.Fail(126, err)
	return 126
}

// skipWithoutCgo skips tests of the joining itself in a CGO_ENABLED=0 build.
func skipWithoutCgo(t *testing.T) {
	if !available {
		t.Skip("built without cgo: no constructor to join namespaces (TestNoCgo covers this build)")
	}
}

func TestNoCgo(t *testing.T) {
	if available {
		t.Skip("built with cgo")
	}
	err := Command(os.Getpid(), []namespaces.Kind{namespaces.UTS}, "/bin/true").Start()
	if !errors.Is(err, ErrNoCgo) {
		t.Errorf("Start without cgo = %v, want ErrNoCgo", err)
	}
}

func TestRequest(t *testing.T) {
	got := Request(42, []namespaces.Kind{namespaces.User, namespaces.Mount})
	if got != "_MINICTR_NSENTER=42:user,mnt" {
		t.Errorf("Request = %q", got)
	}
	if err := Command(42, nil).Start(); err == nil {
		t.Error("Command without a command started")
	}
}

// startTarget starts a container init in every kind of namespace, with
// root mapped to host uid 100000, and sets its hostname.
func startTarget(t *testing.T, hostname string) *namespaces.Child {
	ids := []namespaces.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	c, err := namespaces.Start(namespaces.Config{
		Args:        []string{"minictr"},
		Namespaces:  namespaces.All,
		UIDMappings: ids,
		GIDMappings: ids,
		Stderr:      os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Signal(syscall.SIGKILL)
		c.Wait()
	})
	if err := c.Release([]byte(hostname), nil); err != nil {
		t.Fatalf("Release: %v", err)
	}
	return c
}

func TestCommandJoinsUserNamespace(t *testing.T) {
	skipWithoutCgo(t)
	testenv.SkipIfNotRoot(t)
	name := "nsenter-" + testenv.UniqueID()
	c := startTarget(t, name)

	script := `for ns in user mnt uts ipc net pid cgroup; do echo "$ns $(readlink /proc/self/ns/$ns)"; done
echo "hostname $(cat /proc/sys/kernel/hostname)"
echo "uid $(id -u)"
echo "shellpid $$"`
	var stdout, stderr bytes.Buffer
	cmd := Command(c.Pid, namespaces.All, "/bin/sh", "-c", script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		k, v, _ := strings.Cut(line, " ")
		got[k] = v
	}
	for _, k := range namespaces.All {
		want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", c.Pid, k))
		if err != nil {
			t.Fatal(err)
		}
		if got[k.String()] != want {
			t.Errorf("%s namespace of the joined command = %q, want the target's %q", k, got[k.String()], want)
		}
	}
	if got["hostname"] != name {
		t.Errorf("hostname inside = %q, want %q", got["hostname"], name)
	}
	if got["uid"] != "0" {
		t.Errorf("uid inside = %q, want 0 (root of the joined user namespace)", got["uid"])
	}
	if p := got["shellpid"]; p == "" || p == "1" || len(p) > 2 {
		t.Errorf("PID inside = %q, want a small PID in the container's namespace (not 1: that is the init)", p)
	}
}

func TestCommandExitStatus(t *testing.T) {
	skipWithoutCgo(t)
	testenv.SkipIfNotRoot(t)
	// Joining our own UTS namespace is allowed to root and changes nothing.
	self := os.Getpid()
	err := Command(self, []namespaces.Kind{namespaces.UTS}, "/bin/sh", "-c", "exit 3").Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("exit 3 inside: %v, want exit status 3", err)
	}
	err = Command(self, []namespaces.Kind{namespaces.UTS}, "/nonexistent").Run()
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 127 {
		t.Errorf("a missing command: %v, want exit status 127", err)
	}
}

func TestCommandReportsJoinFailure(t *testing.T) {
	skipWithoutCgo(t)
	var stderr bytes.Buffer
	cmd := Command(999999999, []namespaces.Kind{namespaces.User, namespaces.UTS}, "/bin/true")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 125 {
		t.Fatalf("joining a PID that does not exist: %v, want exit status 125", err)
	}
	want := "open /proc/999999999/ns/user: no such file or directory"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
	}
}
