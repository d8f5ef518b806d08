// Lesson 04: put a command in a control group of its own, limit its memory,
// CPU time and number of processes, and read back what the kernel counted.
//
//	go build -o lesson04 . && sudo ./lesson04 -name lesson-$$ -memory 33554432 -- sh -c 'a=x; while :; do a=$a$a; done'
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// layout names the file for each job in the two cgroup versions: the same
// ideas, different files. v1 entries are "controller/file".
var layout = map[bool]map[string]string{
	false: { // v1: one hierarchy, so one directory, per controller
		"memory": "memory/memory.limit_in_bytes", "swap": "memory/memory.memsw.limit_in_bytes",
		"cpu": "cpu/cpu.cfs_quota_us", "pids": "pids/pids.max",
		"peak": "memory/memory.max_usage_in_bytes", "oom": "memory/memory.oom_control",
		"cpu.stat": "cpu/cpu.stat", "pids.current": "pids/pids.current", "pids.events": "pids/pids.events",
	},
	true: { // v2: one directory, the controller is in the file name
		"memory": "memory.max", "swap": "memory.swap.max", "cpu": "cpu.max", "pids": "pids.max",
		"peak": "memory.peak", "oom": "memory.events",
		"cpu.stat": "cpu.stat", "pids.current": "pids.current", "pids.events": "pids.events",
	},
}

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "__child" {
		return child(os.Args[2:])
	}
	root := flag.String("root", "/sys/fs/cgroup", "where the cgroup file systems are mounted")
	name := flag.String("name", "", "name of the cgroup to create (must not exist)")
	memory := flag.Int64("memory", 0, "memory limit in bytes, no swap (0: none)")
	quota := flag.Int64("cpu-quota", 0, "CPU microseconds allowed per 100ms period (0: none)")
	pids := flag.Int64("pids", 0, "most processes and threads at once (0: none)")
	flag.Parse()
	if *name == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: lesson04 -name NAME [-memory BYTES] [-cpu-quota USEC] [-pids N] -- COMMAND [ARG...]")
		return 2
	}
	if err := lesson(*root, *name, *memory, *quota, *pids, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "lesson04:", err)
		return 1
	}
	return 0
}

func lesson(root, name string, memory, quota, pids int64, args []string) (err error) {
	g, err := makeGroup(root, name)
	defer func() { err = errors.Join(err, g.remove()) }() // also after a failed makeGroup
	if err != nil {
		return err
	}
	var limits []limit
	if memory > 0 {
		limits = append(limits, limit{"memory", fmt.Sprint(memory)})
		// No swap: v1 counts memory+swap, v2 counts swap alone. The file
		// is absent when the kernel does not account swap.
		swap := fmt.Sprint(memory)
		if g.v2 {
			swap = "0"
		}
		if _, err := os.Stat(g.path("swap")); err == nil {
			limits = append(limits, limit{"swap", swap})
		}
	}
	if quota > 0 {
		cpu := fmt.Sprint(quota) // v1 keeps the period (100000) in cpu.cfs_period_us
		if g.v2 {
			cpu += " 100000" // v2 keeps quota and period in one file
		}
		limits = append(limits, limit{"cpu", cpu})
	}
	if pids > 0 {
		limits = append(limits, limit{"pids", fmt.Sprint(pids)})
	}
	for _, l := range limits {
		if err := write(g.path(l.job), l.value); err != nil {
			return err
		}
	}
	status, err := runInside(g, args)
	if err != nil {
		return err
	}
	fmt.Println("command:", status)
	g.printStats()
	return nil
}

// A limit is a value for the file that does a job ("memory", "cpu", "pids").
type limit struct{ job, value string }

// group is one cgroup: a directory per controller on v1, one on v2.
type group struct {
	v2   bool
	root string
	dirs []string // the directories made, to remove
	name string
}

func makeGroup(root, name string) (*group, error) {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	g := &group{v2: err == nil, root: root, name: name}
	if !g.v2 {
		fmt.Println("cgroup v1: one directory per controller")
	} else {
		fmt.Println("cgroup v2: one directory for all controllers")
		// A group only gets the files of the controllers its parent enables.
		if err := write(filepath.Join(root, "cgroup.subtree_control"), "+memory +cpu +pids"); err != nil {
			return g, err
		}
	}
	for _, job := range []string{"memory", "cpu", "pids"} {
		dir := filepath.Dir(g.path(job))
		if len(g.dirs) > 0 && g.dirs[len(g.dirs)-1] == dir {
			continue // v2: one directory for all
		}
		fmt.Println("$ mkdir", dir)
		if err := os.Mkdir(dir, 0o755); err != nil { // an existing group is not ours to use
			return g, err
		}
		g.dirs = append(g.dirs, dir)
	}
	return g, nil
}

// path is the file for a job: "memory" -> ROOT/memory/NAME/memory.limit_in_bytes on v1.
func (g *group) path(job string) string {
	controller, file, ok := strings.Cut(layout[g.v2][job], "/")
	if !ok {
		return filepath.Join(g.root, g.name, controller)
	}
	return filepath.Join(g.root, controller, g.name, file)
}

func write(path, value string) error {
	shown := value
	if strings.Contains(value, " ") {
		shown = `"` + value + `"`
	}
	fmt.Printf("$ echo %s > %s\n", shown, path)
	return os.WriteFile(path, []byte(value), 0) // the file exists: the kernel made it
}

// runInside starts the command blocked, puts it in the group, then lets it
// go: on v1 there is no way to start a process inside a cgroup directly.
func runInside(g *group, args []string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer w.Close()
	cmd := exec.Command("/proc/self/exe", append([]string{"__child"}, args...)...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = os.Stdin, os.Stdout, os.Stderr, []*os.File{r}
	err = cmd.Start()
	r.Close()
	if err != nil {
		return "", err
	}
	for _, dir := range g.dirs {
		if err == nil {
			err = write(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(cmd.Process.Pid))
		}
	}
	if err == nil {
		_, err = w.Write([]byte{1}) // go
	}
	if err != nil {
		_ = cmd.Process.Kill()
	}
	if werr := cmd.Wait(); werr != nil && cmd.ProcessState == nil {
		return "", werr
	}
	return cmd.ProcessState.String(), err
}

// child waits for the parent's go-ahead on fd 3, then becomes the command.
func child(args []string) int {
	if n, _ := os.NewFile(3, "gate").Read(make([]byte, 1)); n != 1 {
		return 125 // the parent died before the process was in the cgroup
	}
	path, err := exec.LookPath(args[0])
	if err == nil {
		err = syscall.Exec(path, args, os.Environ())
	}
	fmt.Fprintln(os.Stderr, "lesson04:", err)
	return 127
}

// printStats shows what the kernel counted, straight from its files.
func (g *group) printStats() {
	for _, job := range []string{"peak", "oom", "cpu.stat", "pids.current", "pids.events"} {
		data, err := os.ReadFile(g.path(job))
		if err != nil {
			continue // memory.peak is new in Linux 5.19
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			fmt.Printf("%s: %s\n", filepath.Base(g.path(job)), line)
		}
	}
}

// remove kills what is left in the group and removes its directories. The
// kernel refuses rmdir (EBUSY) until the last process has exited.
func (g *group) remove() error {
	for _, dir := range g.dirs {
		for try := 0; ; try++ {
			data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, pid := range strings.Fields(string(data)) {
				fmt.Println("$ kill -KILL", pid)
				n, _ := strconv.Atoi(pid)
				_ = syscall.Kill(n, syscall.SIGKILL) // gone already is fine
			}
			err := syscall.Rmdir(dir)
			if err == nil {
				fmt.Println("$ rmdir", dir)
				break
			}
			if err != syscall.EBUSY || try == 100 {
				return &os.PathError{Op: "rmdir", Path: dir, Err: err}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}
