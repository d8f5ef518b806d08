package cgroups

// Start-up cost of a container's group, measured against the walls'
// budget (< 2 ms per start for all of them):
//
//	go test -run '^$' -bench . -benchtime 200x ./pkg/cgroups
//
// Each iteration creates a group (New), moves a waiting process into it
// (Add) and, off the clock, removes the previous one.

import (
	"os/exec"
	"testing"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/trace"
)

func BenchmarkNewAndAdd(b *testing.B) {
	for _, bc := range []struct {
		name    string
		devices []DeviceRule
	}{{"no device rules", nil}, {"docker's device rules", DefaultDevices}} {
		b.Run(bc.name, func(b *testing.B) {
			l := hostLayout(b)
			pid := sleeper(b)
			benchGroups(b, pid, func(name string) (Cgroup, error) {
				return New(Config{Name: name, Resources: Resources{Memory: 64 << 20, Devices: bc.devices}, Layout: l})
			})
		})
	}
}

// BenchmarkV2DevicesOnHybrid is the v2 driver's device program on this
// hybrid host's unified hierarchy: mkdir, load, attach, query (and Add).
func BenchmarkV2DevicesOnHybrid(b *testing.B) {
	l := hostLayout(b)
	if mode, _ := l.Mode(); mode != ModeHybrid {
		b.Skip("not a hybrid host: BenchmarkNewAndAdd measures the v2 driver")
	}
	for _, bc := range []struct {
		name    string
		devices []DeviceRule
	}{{"no device rules", nil}, {"docker's device rules", DefaultDevices}} {
		b.Run(bc.name, func(b *testing.B) {
			pid := sleeper(b)
			benchGroups(b, pid, func(name string) (Cgroup, error) {
				g := newV2(l.Unified, name, trace.Discard)
				if err := g.fs.mkdir(g.dir); err != nil {
					return nil, err
				}
				return g, g.setDevices(bc.devices)
			})
		})
	}
}

func BenchmarkDeviceFilter(b *testing.B) {
	for range b.N {
		if _, err := DeviceFilter(DefaultDevices); err != nil {
			b.Fatal(err)
		}
	}
}

// sleeper starts a process that waits to be moved between groups.
func sleeper(b *testing.B) int {
	b.Helper()
	testenv.SkipIfNotRoot(b)
	cmd := exec.Command(testenv.Busybox, "sleep", "600")
	if err := cmd.Start(); err != nil {
		b.Skipf("needs busybox: %v", err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

func benchGroups(b *testing.B, pid int, newGroup func(name string) (Cgroup, error)) {
	var prev Cgroup
	destroy := func() {
		if prev != nil {
			if err := prev.Destroy(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Cleanup(destroy) // kills the sleeper, which is in the last group

	b.ResetTimer()
	for range b.N {
		cg, err := newGroup("minictr-bench-" + testenv.UniqueID())
		if err != nil {
			b.Fatal(err)
		}
		if err := cg.Add(pid); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		destroy()
		prev = cg
		b.StartTimer()
	}
}
