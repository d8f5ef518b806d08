//go:build exercise

// Exercise for lesson 04: the same program as main.go, with three holes.
// Fill each TODO, then grade your attempt with the lesson's own tests (as
// root, on a host; lessons/EXERCISES.md says more):
//
//	go test -tags exercise ./lessons/04-cgroups/
//
// Try it by hand with: go run -tags exercise . -name lesson-$$ -pids 20 -- sh
// Stuck? main.go (built without the tag) is the solution.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) > 2 && os.Args[1] == "__child" {
		return child(os.Args[2], os.Args[3:])
	}
	flags := flag.NewFlagSet("lesson04", flag.ContinueOnError)
	root := flags.String("root", "/sys/fs/cgroup", "where the cgroup file systems are mounted")
	name := flags.String("name", "", "name of the cgroup to create (must not exist)")
	memory := flags.Int64("memory", 0, "memory limit in bytes, no swap (0: none)")
	quota := flags.Int64("cpu-quota", 0, "CPU microseconds allowed per 100ms period (0: none)")
	pids := flags.Int64("pids", 0, "most processes and threads at once (0: none)")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: lesson04 -name NAME [-memory BYTES] [-cpu-quota USEC] [-pids N] -- COMMAND [ARG...]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *name == "" || flags.NArg() == 0 {
		flags.Usage()
		what := "no command to run"
		if *name == "" {
			what = "no cgroup name (-name)"
		}
		fmt.Fprintf(os.Stderr, "lesson04: %s: try lesson04 -name lesson-$$ -pids 20 -- sh\n", what)
		return 2
	}
	if _, err := os.Stat(*root); err != nil {
		fmt.Fprintf(os.Stderr, "lesson04: no cgroup file system at %s: see where the kernel mounted them with: grep cgroup /proc/self/mounts\n", *root)
		return 2
	}
	g := &group{root: *root, name: *name}
	err := g.lesson(*memory, *quota, *pids, flags.Args())
	if err = errors.Join(err, g.remove()); err != nil { // remove also runs after a failed mkdir
		fmt.Fprintln(os.Stderr, "lesson04:", err)
		return 1
	}
	return 0
}

// group is one cgroup: a directory per controller on v1, one on v2. Its
// steps do nothing once one of them has failed: err keeps the first
// failure, so that the checklist below reads without error checks.
type group struct {
	root, name string
	v2         bool
	made       []string // the directories made, to remove
	err        error
}

func (g *group) lesson(memory, quota, pids int64, args []string) error {
	_, err := os.Stat(filepath.Join(g.root, "cgroup.controllers")) // only v2 has it
	g.v2 = err == nil
	fmt.Println(g.pick("cgroup v1: one directory per controller", "cgroup v2: one directory for all controllers"))
	if g.v2 { // a group only gets the files of the controllers its parent enables
		g.write(filepath.Join(g.root, "cgroup.subtree_control"), "+memory +cpu +pids")
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		g.mkdir(g.dir(c))
	}
	if memory > 0 {
		// TODO(1): write the limit, in bytes, to the memory controller's
		// limit file: memory.limit_in_bytes on v1, memory.max on v2.
		// g.file(controller, v1name, v2name) picks the path for this host
		// and g.write(path, value) writes it (and prints the echo).
		// Tests: memory_oom_kill.txtar, layout_v1_v2.txtar.
		g.err = errors.New("TODO 1: write the memory limit")
		// No swap: v1 counts memory+swap, v2 swap alone; no file without swap accounting.
		swap := g.file("memory", "memory.memsw.limit_in_bytes", "memory.swap.max")
		if _, err := os.Stat(swap); err == nil {
			g.write(swap, g.pick(fmt.Sprint(memory), "0"))
		}
	}
	if quota > 0 { // v1 keeps the period (100ms) in cpu.cfs_period_us, v2 in the same file
		// TODO(2): allow quota microseconds of CPU per 100ms period. v1
		// writes the quota alone to cpu.cfs_quota_us; v2 writes
		// "QUOTA PERIOD" (e.g. "20000 100000") to cpu.max. g.pick(v1, v2)
		// returns the string for this host's layout.
		// Test: cpu_quota_throttle.txtar.
		g.err = errors.New("TODO 2: write the CPU quota")
	}
	if pids > 0 {
		g.write(g.file("pids", "pids.max", "pids.max"), fmt.Sprint(pids))
	}
	g.runInside(args)
	if g.err == nil {
		g.printStats()
	}
	return g.err
}

// pick is the lookup that lets one code path serve both layouts.
func (g *group) pick(v1, v2 string) string {
	if g.v2 {
		return v2
	}
	return v1
}

// dir is the group's directory for a controller: ROOT/CONTROLLER/NAME on
// v1, where each controller has a hierarchy of its own, ROOT/NAME on v2.
func (g *group) dir(controller string) string {
	return filepath.Join(g.root, g.pick(controller, ""), g.name)
}

// file is a controller's file, by its v1 or its v2 name.
func (g *group) file(controller, v1, v2 string) string {
	return filepath.Join(g.dir(controller), g.pick(v1, v2))
}

func (g *group) mkdir(dir string) {
	if g.err != nil || slices.Contains(g.made, dir) { // v2: one directory for all
		return
	}
	fmt.Println("$ mkdir", dir)
	if g.err = os.Mkdir(dir, 0o755); g.err == nil { // an existing group is not ours to use
		g.made = append(g.made, dir)
	}
}

// write sets a file the kernel made; cgroupfs refuses to create any other.
func (g *group) write(path, value string) {
	if g.err != nil {
		return
	}
	shown := value
	if strings.Contains(value, " ") {
		shown = `"` + value + `"`
	}
	fmt.Printf("$ echo %s > %s\n", shown, path)
	g.err = os.WriteFile(path, []byte(value), 0)
}

// runInside re-executes this program as a child that writes its own PID
// into each cgroup.procs and then execs the command, so that the command
// is inside from its first instruction: v1 cannot start a process inside
// a group, and a process moved in later may have forked already.
func (g *group) runInside(args []string) {
	if g.err != nil {
		return
	}
	argv := append([]string{os.Args[0], "__child", strings.Join(g.made, string(os.PathListSeparator))}, args...)
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: argv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if g.err = cmd.Run(); cmd.ProcessState != nil {
		fmt.Println("command:", cmd.ProcessState) // how it ended is its result, not our error
		g.err = nil
	}
}

// child joins the groups in dirs, then becomes the command.
func child(dirs string, args []string) int {
	g := &group{}
	// TODO(3): join each group before exec, so that the command starts
	// inside: write our own PID (os.Getpid) to cgroup.procs in every
	// directory of dirs (a list joined by filepath.ListSeparator:
	// filepath.SplitList splits it). Use g.write; g.err keeps a failure,
	// and then the command must not run.
	// Tests: pids_fork_bomb.txtar, memory_oom_kill.txtar, by_hand.txtar.
	g.err = errors.New("TODO 3: write our PID to each cgroup.procs")
	path, err := exec.LookPath(args[0])
	if err = errors.Join(g.err, err); err == nil { // never run the command outside
		err = syscall.Exec(path, args, os.Environ())
	}
	fmt.Fprintln(os.Stderr, "lesson04:", err)
	return 127
}

// printStats shows what the kernel counted, straight from its files.
func (g *group) printStats() {
	for _, path := range []string{
		g.file("memory", "memory.max_usage_in_bytes", "memory.peak"),
		g.file("memory", "memory.oom_control", "memory.events"),
		g.file("cpu", "cpu.stat", "cpu.stat"),
		g.file("pids", "pids.current", "pids.current"),
		g.file("pids", "pids.events", "pids.events"),
	} {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // memory.peak is new in Linux 5.19
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			fmt.Printf("%s: %s\n", filepath.Base(path), line)
		}
	}
}

// remove kills what is left in the group and removes its directories. The
// kernel refuses rmdir (EBUSY) until the last process has exited.
func (g *group) remove() error {
	killed := map[string]bool{} // a dying process stays listed a moment: kill it once
	for _, dir := range g.made {
		var err error
		for try := 0; try < 100; try++ {
			procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, pid := range strings.Fields(string(procs)) {
				if killed[pid] {
					continue
				}
				killed[pid] = true
				fmt.Println("$ kill -KILL", pid)
				n, _ := strconv.Atoi(pid)
				_ = syscall.Kill(n, syscall.SIGKILL) // gone already is fine
			}
			if err = syscall.Rmdir(dir); err != syscall.EBUSY {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return &os.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		fmt.Println("$ rmdir", dir)
	}
	return nil
}
