package cgroups

// A container's cgroup namespace is made after its init has joined its
// groups (pkg/namespaces unshares CLONE_NEWCGROUP once the engine has
// called Add), so each of the init's cgroups becomes a root of its view.
// This test does the same with a raw unshare(2) in a child and proves
// that every hierarchy's root is the container's own group: mounted from
// inside, each shows the child alone, never the host's groups.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/procfs"
)

// probeReport is what cgroupnsProbe prints, as JSON.
type probeReport struct {
	Self  []procfs.CgroupEntry // /proc/thread-self/cgroup inside the namespace
	Roots []probeRoot          // each hierarchy, mounted inside
}

type probeRoot struct {
	Hierarchy string   // "cgroup:freezer", "cgroup2:"
	Children  []string // the groups under the root the mount shows
	Procs     []int    // the root's cgroup.procs
}

// cgroupnsProbe runs as `cgroupns-probe DIR TYPE:OPTIONS...`: it waits for
// a line on stdin (its parent puts it in the group meanwhile), unshares
// its cgroup and mount namespaces, and mounts each hierarchy under DIR.
func cgroupnsProbe() int {
	if err := probe(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "cgroupns-probe:", err)
		return 1
	}
	return 0
}

func probe(dir string, hierarchies []string) error {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	// Namespaces made by unshare belong to this thread: keep to it.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWCGROUP | unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("unshare", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return &os.PathError{Op: "mount --make-rprivate", Path: "/", Err: err}
	}
	var rep probeReport
	var err error
	if rep.Self, err = procfs.ThreadCgroups(); err != nil {
		return err
	}
	for i, h := range hierarchies {
		fstype, options, _ := strings.Cut(h, ":")
		point := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(point, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(fstype, point, fstype, 0, options); err != nil {
			return &os.PathError{Op: "mount -t " + fstype + " -o " + options, Path: point, Err: err}
		}
		root := probeRoot{Hierarchy: h}
		entries, err := os.ReadDir(point)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				root.Children = append(root.Children, e.Name())
			}
		}
		if root.Procs, err = readPids(filepath.Join(point, "cgroup.procs")); err != nil {
			return err
		}
		rep.Roots = append(rep.Roots, root)
		if err := unix.Unmount(point, 0); err != nil {
			return &os.PathError{Op: "umount", Path: point, Err: err}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func TestCgroupNamespaceRoots(t *testing.T) {
	cg, _ := newTestCgroup(t, Resources{})
	name := nameOf(cg)
	args := []string{"cgroupns-probe", t.TempDir()}
	for _, h := range hostLayout(t).Visible() {
		args = append(args, h.Type+":"+h.Controllers)
	}
	var stdout, stderr bytes.Buffer
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: args, Stdout: &stdout, Stderr: &stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	if err := cg.Add(pid); err != nil {
		t.Fatal(err)
	}

	// From the host: the child is in the group in every hierarchy.
	hostView, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := procfs.ParseCgroups(bytes.NewReader(hostView))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Path != "/"+name {
			t.Errorf("host view of hierarchy %d (%s): %s, want /%s", e.ID, e.Controllers, e.Path, name)
		}
	}

	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("probe: %v: %s", err, stderr.String())
	}
	var rep probeReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("probe's report %q: %v", stdout.String(), err)
	}

	// From inside: each hierarchy's root is the group, holding the child alone.
	if len(rep.Self) != len(entries) {
		t.Errorf("inside: %d hierarchies, host view %d", len(rep.Self), len(entries))
	}
	for _, e := range rep.Self {
		if e.Path != "/" {
			t.Errorf("inside, hierarchy %d (%s) shows %s, want /", e.ID, e.Controllers, e.Path)
		}
	}
	if len(rep.Roots) != len(args)-2 {
		t.Errorf("probe mounted %d hierarchies, want %d", len(rep.Roots), len(args)-2)
	}
	for _, r := range rep.Roots {
		if len(r.Children) != 0 || !slices.Equal(r.Procs, []int{pid}) {
			t.Errorf("%s mounted inside shows groups %q and %d processes; want none and the probe alone, %d (the host's tree is in sight)",
				r.Hierarchy, r.Children, len(r.Procs), pid)
		}
	}
	t.Logf("host view:\n%s", hostView)
}
