package testenv

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/procfs"
)

// Main is TestMain for a package with testscripts: it registers the
// commands (run by argv[0] when a script execs them, or when minictr
// re-executes itself) and wraps the whole test run in a leak check.
func Main(m testscript.TestingM, commands map[string]func() int) {
	cmds := make(map[string]func(), len(commands))
	for name, fn := range commands {
		cmds[name] = func() { os.Exit(fn()) }
	}
	testscript.Main(leakChecked{m}, cmds)
}

type leakChecked struct{ m testscript.TestingM }

// leakGrace is how long a leak candidate may take to go away. go test runs
// several test binaries at once, and what another binary creates while we
// run looks like ours until it is torn down a moment later.
const leakGrace = 15 * time.Second

// Run runs the tests, then fails the binary if it left anything behind.
func (l leakChecked) Run() int {
	// Orphans (a container whose engine a test killed) are reparented to
	// the nearest subreaper: make that us, so that they show up among our
	// children instead of vanishing under the host's PID 1.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	before := TakeSnapshot()
	code := l.m.Run()
	leaks := before.Leaks(TakeSnapshot())
	for deadline := time.Now().Add(leakGrace); len(leaks) > 0 && time.Now().Before(deadline); {
		time.Sleep(250 * time.Millisecond)
		leaks = before.Leaks(TakeSnapshot())
	}
	if len(leaks) > 0 {
		fmt.Fprintln(os.Stderr, "LEAK: the tests left this behind on the host:")
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "  "+l)
		}
		return 1
	}
	return code
}

// A Snapshot is the host state that tests must leave as they found it:
// cgroups named after minictr, mount points, network links and this
// process's children.
type Snapshot struct {
	Cgroups  map[string]bool
	Mounts   map[string]bool
	Links    map[string]bool
	Children map[string]bool
}

// TakeSnapshot reads the current host state.
func TakeSnapshot() Snapshot {
	return Snapshot{
		Cgroups:  minictrCgroups(),
		Mounts:   mountPoints(),
		Links:    links(),
		Children: children(),
	}
}

// Leaks lists what after has that s had not.
func (s Snapshot) Leaks(after Snapshot) []string {
	var out []string
	diff := func(kind string, a, b map[string]bool) {
		for k := range b {
			if !a[k] {
				out = append(out, kind+" "+k)
			}
		}
	}
	diff("cgroup", s.Cgroups, after.Cgroups)
	diff("mount", s.Mounts, after.Mounts)
	diff("link", s.Links, after.Links)
	diff("process", s.Children, after.Children)
	sort.Strings(out)
	return out
}

func minictrCgroups() map[string]bool {
	out := map[string]bool{}
	root := "/sys/fs/cgroup"
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(strings.TrimPrefix(path, root), "/") > 4 {
			return fs.SkipDir
		}
		if strings.Contains(strings.ToLower(d.Name()), "minictr") {
			out[path] = true
		}
		return nil
	})
	return out
}

func mountPoints() map[string]bool {
	out := map[string]bool{}
	ms, _ := procfs.Mounts() // unreadable: nothing to compare, as before
	for _, m := range ms {
		out[m.Point] = true
	}
	return out
}

func links() map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir("/sys/class/net")
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// children lists live processes whose parent is this test binary, as
// "PID command".
func children() map[string]bool {
	out := map[string]bool{}
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procfs.ReadStat(pid)
		if err != nil || st.State == 'Z' {
			continue
		}
		if st.PPID == self {
			out[fmt.Sprintf("%d %s", pid, st.Comm)] = true
		}
	}
	return out
}
