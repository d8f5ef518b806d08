package privileges

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/trace"
)

func TestMain(m *testing.M) {
	testenv.Main(m, map[string]func() int{"privileges-apply": applyAndExec})
}

// applyConfig is what the test sends to its re-executed self.
type applyConfig struct {
	Rootfs, User string
	Add, Drop    []string
	NoNewPrivs   bool
	MarkCloexec  bool
}

// applyAndExec is the child: it opens a descriptor without O_CLOEXEC (like
// a careless engine would), applies the privileges, then execs busybox to
// print what the new program has: its /proc/self/status and open fds.
func applyAndExec() int {
	var cfg applyConfig
	if err := json.Unmarshal([]byte(os.Getenv("PRIVILEGES_TEST_CONFIG")), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	u, err := LookupUser(cfg.Rootfs, cfg.User)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	caps, err := Capabilities(cfg.Add, cfg.Drop, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err = Apply(Config{User: u, Capabilities: caps, NoNewPrivileges: cfg.NoNewPrivs, Tracer: trace.New(os.Stderr)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "apply:", err)
		return 1
	}
	if cfg.MarkCloexec {
		if err := MarkCloexecFrom(3); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	// ls is the last command, so it sees only what the shell inherited,
	// plus its own listing of /proc/self/fd (the highest number).
	script := "cat /proc/self/status && echo fds: $(ls /proc/self/fd)"
	err = syscall.Exec(testenv.Busybox, []string{"sh", "-c", script}, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	return 1
}

// runApply runs the child with two extra descriptors (fd 3 and 4) and
// returns the fields of the exec'd program's /proc/self/status, plus "fds".
func runApply(t *testing.T, cfg applyConfig) map[string]string {
	t.Helper()
	if err := testenv.StaticBusybox(); err != nil {
		t.Skip(err)
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	extra := make([]*os.File, 2)
	for i := range extra {
		if extra[i], err = os.Open("/etc/hostname"); err != nil {
			t.Fatal(err)
		}
		defer extra[i].Close()
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"privileges-apply"}
	cmd.Env = append(os.Environ(), "PRIVILEGES_TEST_CONFIG="+string(data))
	cmd.Dir = "/"
	cmd.ExtraFiles = extra
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	t.Logf("trace:\n%s", stderr.String())
	status := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			status[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return status
}

// mask is the hex form of /proc/self/status's Cap* lines.
func mask(t *testing.T, names []string) string {
	t.Helper()
	m, err := capabilityMask(names)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%016x", m)
}

func busyboxRootfs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := testenv.BusyboxRootfs(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestApplyRoot(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	st := runApply(t, applyConfig{Rootfs: busyboxRootfs(t), NoNewPrivs: true, MarkCloexec: true})
	want := mask(t, DefaultCapabilities)
	for field, value := range map[string]string{
		"Uid": "0 0 0 0", "Gid": "0 0 0 0", "Groups": "0",
		"CapBnd": want, "CapEff": want, "CapPrm": want, "CapInh": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1",
		"fds":        "0 1 2 3", // 3 is ls's own listing
	} {
		if st[field] != value {
			t.Errorf("%s: %q, want %q", field, st[field], value)
		}
	}
}

func TestApplyStudent(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	st := runApply(t, applyConfig{Rootfs: busyboxRootfs(t), User: "student", NoNewPrivs: true, MarkCloexec: true})
	for field, value := range map[string]string{
		"Uid": "1000 1000 1000 1000", "Gid": "1000 1000 1000 1000", "Groups": "29 44 1000",
		"CapBnd": mask(t, DefaultCapabilities), "CapEff": "0000000000000000", "CapPrm": "0000000000000000",
		"NoNewPrivs": "1",
	} {
		if st[field] != value {
			t.Errorf("%s: %q, want %q", field, st[field], value)
		}
	}
}

func TestApplyDropAllAddOne(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	st := runApply(t, applyConfig{Rootfs: busyboxRootfs(t), User: "0:44", Drop: []string{"ALL"}, Add: []string{"net_bind_service"}})
	want := fmt.Sprintf("%016x", 1<<10)
	for field, value := range map[string]string{
		"Gid": "44 44 44 44", "Groups": "44", "CapBnd": want, "CapEff": want, "NoNewPrivs": "0",
	} {
		if st[field] != value {
			t.Errorf("%s: %q, want %q", field, st[field], value)
		}
	}
}

// TestMarkCloexecFrom shows the leak MarkCloexecFrom prevents: without it,
// the extra descriptors reach the exec'd program.
func TestMarkCloexecFrom(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	leaky := runApply(t, applyConfig{Rootfs: busyboxRootfs(t)})
	fds := strings.Fields(leaky["fds"])
	if len(fds) < 6 { // 0 1 2, fd 3 and 4 from the parent, the child's own open, ls's listing
		t.Errorf("without MarkCloexecFrom the program has fds %v, want the leaked 3, 4 and 5 too", fds)
	}
	closed := runApply(t, applyConfig{Rootfs: busyboxRootfs(t), MarkCloexec: true})
	if closed["fds"] != "0 1 2 3" {
		t.Errorf("with MarkCloexecFrom(3) the program has fds %q, want 0 1 2 and ls's own 3", closed["fds"])
	}
	if n, _ := strconv.Atoi(fds[len(fds)-1]); n < 6 {
		t.Errorf("highest fd without marking: %d", n)
	}
}
