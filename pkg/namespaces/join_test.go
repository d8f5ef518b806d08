package namespaces

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/testenv"
)

func TestJoin(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	kinds := []Kind{UTS, PID, Mount, IPC, Net, Cgroup}
	c := start(t, "sleep", Config{Namespaces: kinds})
	name := "joined-" + testenv.UniqueID()
	if err := release(t, c, []byte(name)); err != nil {
		t.Fatalf("Release: %v", err)
	}
	target := nsLinks(fmt.Sprintf("/proc/%d", c.Pid))

	// Join taints its thread for good: do it in a goroutine of its own,
	// whose thread the runtime ends when it returns.
	type result struct {
		thread   map[string]string
		hostname string
		out      string
		err      error
	}
	done := make(chan result)
	go func() {
		var r result
		if r.err = Join(c.Pid, kinds); r.err != nil {
			done <- r
			return
		}
		r.thread = nsLinks("/proc/thread-self")
		var u unix.Utsname
		unix.Uname(&u)
		r.hostname = unix.ByteSliceToString(u.Nodename[:])
		// A process started now is a child of this thread: it lands in
		// the container's PID namespace.
		out, err := exec.Command("/bin/sh", "-c", "echo $$; readlink /proc/self/ns/pid; cat /proc/sys/kernel/hostname").CombinedOutput()
		r.out, r.err = string(out), err
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("Join: %v (%s)", r.err, r.out)
	}
	for _, k := range []string{"uts", "ipc", "net", "mnt", "cgroup"} {
		if r.thread[k] != target[k] {
			t.Errorf("%s after Join = %q, want the target's %q", k, r.thread[k], target[k])
		}
	}
	// The joining thread itself stays in the host's PID namespace.
	if r.thread["pid"] == target["pid"] {
		t.Errorf("the joining thread moved to PID namespace %s: setns(CLONE_NEWPID) should only affect children", target["pid"])
	}
	if r.hostname != name {
		t.Errorf("hostname after Join = %q, want %q", r.hostname, name)
	}
	lines := strings.Fields(r.out)
	if len(lines) != 3 || lines[0] == "1" || len(lines[0]) > 2 || lines[1] != target["pid"] || lines[2] != name {
		t.Errorf("child after Join printed %q; want a small PID (not 1), pid ns %s, hostname %s", r.out, target["pid"], name)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.Pid)); err != nil {
		t.Errorf("target died: %v", err)
	}
}
