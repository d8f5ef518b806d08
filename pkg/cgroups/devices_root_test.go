package cgroups

// Root tests of the device wall against the real kernel, for both drivers:
// the host's (v1 here, v2 in the lab VM) and, on a hybrid host, the v2
// driver in the unified hierarchy, where the kernel runs device programs
// too. The victims are device nodes the test makes in a temporary
// directory, for harmless devices (null, full): a wall that fails harms
// nothing.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/minictr/minictr/internal/testenv"
	"github.com/minictr/minictr/pkg/trace"
	"golang.org/x/sys/unix"
)

// TestDeviceProgramsPassTheVerifier loads each program into the kernel:
// BPF_PROG_LOAD runs the verifier, which refuses a program that could
// read out of bounds, loop or end without a verdict.
func TestDeviceProgramsPassTheVerifier(t *testing.T) {
	testenv.SkipIfNotRoot(t)
	for name, rules := range map[string][]DeviceRule{
		"defaults":  DefaultDevices,
		"none":      {},
		"allow all": {AllowAllDevices},
		"with a deny": append(slices.Clone(DefaultDevices), rule('c', 1, 3, "w", false),
			rule('b', 7, Wildcard, "rw", false)),
		"forty --device rules": slices.Concat(DefaultDevices, manyRules(40)),
	} {
		p, err := DeviceFilter(rules)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := p.load()
		if err != nil {
			t.Errorf("%s: %v\n%s", name, err, p)
			continue
		}
		unix.Close(fd)
		// The verifier's own count: blocks that start in one state are
		// checked about once each (see DeviceFilter), not once per path.
		n := verifiedInsns(t, p)
		t.Logf("%s: %d instructions, %d verified", name, p.Len(), n)
		if n > 3*p.Len() {
			t.Errorf("%s: the verifier processed %d instructions for a program of %d", name, n, p.Len())
		}
	}
}

// manyRules are n allow rules for devices 240:0... (a local/experimental
// major), as n --device flags would add.
func manyRules(n int) []DeviceRule {
	var out []DeviceRule
	for i := range n {
		out = append(out, rule('c', 240, int64(i), "rw", true))
	}
	return out
}

// verifiedInsns loads p asking for the verifier's statistics (log level
// 4, BPF_LOG_STATS) and returns how many instructions it processed.
func verifiedInsns(t *testing.T, p *DeviceProgram) int {
	t.Helper()
	code, license, log := p.bytes(), []byte("GPL\x00"), make([]byte, 4096)
	attr := bpfProgLoadAttr{progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE, insnCnt: uint32(p.Len()),
		insns: unsafe.Pointer(&code[0]), license: unsafe.Pointer(&license[0]),
		logLevel: 4, logSize: uint32(len(log)), logBuf: unsafe.Pointer(&log[0])}
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		t.Fatalf("BPF_PROG_LOAD with statistics: %v", err)
	}
	unix.Close(fd)
	text, _, _ := strings.Cut(string(log), "\x00")
	var n int
	if i := strings.Index(text, "processed "); i < 0 {
		t.Fatalf("no statistics in the verifier's log: %q", text)
	} else if _, err := fmt.Sscanf(text[i:], "processed %d insns", &n); err != nil {
		t.Fatalf("verifier log %q: %v", text, err)
	}
	return n
}

// deviceGroup is a cgroup with rules, from one of the drivers.
type deviceGroup func(t *testing.T, rules []DeviceRule) Cgroup

// hostDriver makes the group with New, as the engine does.
func hostDriver(t *testing.T, rules []DeviceRule) Cgroup {
	cg, _ := newTestCgroup(t, Resources{Devices: rules})
	return cg
}

// unifiedDriver makes a v2 group in a hybrid host's unified hierarchy,
// which has no controllers but runs device programs.
func unifiedDriver(t *testing.T, rules []DeviceRule) Cgroup {
	t.Helper()
	testenv.SkipIfNotRoot(t)
	l := hostLayout(t)
	if mode, _ := l.Mode(); mode != ModeHybrid {
		t.Skip("not a hybrid host: the host driver is the v2 one")
	}
	g := newV2(l.Unified, "minictr-test-"+testenv.UniqueID(), &trace.Recorder{})
	if err := g.fs.mkdir(g.dir); err != nil { // no controllers to enable here
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Destroy(); err != nil {
			t.Error(err)
		}
	})
	if err := g.Set(Resources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	return g
}

var drivers = map[string]deviceGroup{"host driver": hostDriver, "v2 in the unified hierarchy": unifiedDriver}

// deviceNodes makes null (1:3) and full (1:7) nodes in a temporary
// directory, as the test process, outside any group under test.
func deviceNodes(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, dev := range map[string]uint64{"null": unix.Mkdev(1, 3), "full": unix.Mkdev(1, 7)} {
		if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR|0o666, int(dev)); err != nil {
			t.Skipf("cannot make device nodes in %s: %v", dir, err)
		}
	}
	return dir
}

// tryDevices runs, inside cg, a script that makes a node and opens the
// test's nodes, and returns what each step printed: "mknod: ok" or the
// shell's error, which names the errno.
func tryDevices(t *testing.T, cg Cgroup, dir string) string {
	t.Helper()
	script := strings.ReplaceAll(`exec 1>&2
mknod D/made c 1 7 && echo "mknod: ok"
true < D/null && echo "read null: ok"
true > D/null && echo "write null: ok"
true < D/full && echo "read full: ok"
true`, "D", dir)
	p := start(t, cg, script)
	if err := p.wait(); err != nil {
		t.Fatalf("script: %v: %s", err, p.stderrText(t))
	}
	return p.stderrText(t)
}

const eperm = "Operation not permitted"

func TestDeviceRulesEnforced(t *testing.T) {
	withoutFull := slices.DeleteFunc(slices.Clone(DefaultDevices), func(r DeviceRule) bool { return r.Major == 1 && r.Minor == 7 })
	for name, group := range drivers {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name  string
				rules []DeviceRule
				ok    []string // steps that must succeed
				eperm []string // steps the kernel must refuse with EPERM
			}{
				// The wall off: no rules, every step works.
				{"no rules", nil, []string{"mknod: ok", "read null: ok", "write null: ok", "read full: ok"}, nil},
				{"defaults", DefaultDevices, []string{"mknod: ok", "read null: ok", "write null: ok", "read full: ok"}, nil},
				{"defaults without full", withoutFull,
					[]string{"mknod: ok", "read null: ok", "write null: ok"}, []string{"full"}},
				{"no mknod", []DeviceRule{charRule(1, 3, "rw")},
					[]string{"read null: ok", "write null: ok"}, []string{"mknod", "full"}},
				{"a deny after the defaults", append(slices.Clone(DefaultDevices), rule('c', 1, 3, "w", false)),
					[]string{"mknod: ok", "read null: ok", "read full: ok"}, []string{"/null"}},
				{"privileged", []DeviceRule{AllowAllDevices}, []string{"mknod: ok", "read null: ok", "write null: ok", "read full: ok"}, nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					dir := deviceNodes(t)
					out := tryDevices(t, group(t, tc.rules), dir)
					for _, want := range tc.ok {
						if !strings.Contains(out, want+"\n") {
							t.Errorf("no %q in:\n%s", want, out)
						}
					}
					for _, what := range tc.eperm {
						if !hasLine(out, what, eperm) {
							t.Errorf("no EPERM for %s in:\n%s", what, out)
						}
					}
					if n := strings.Count(out, "\n"); n != len(tc.ok)+len(tc.eperm) {
						t.Errorf("%d lines, want %d ok and %d refused:\n%s", n, len(tc.ok), len(tc.eperm), out)
					}
				})
			}
		})
	}
}

// hasLine reports whether some line of out holds both what and why.
func hasLine(out, what, why string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, what) && strings.Contains(l, why) {
			return true
		}
	}
	return false
}

// TestDeviceRulesReplaced: Set with new rules replaces the old ones, on
// v2 by attaching the new program before detaching the old one, so that
// exactly one program is left.
func TestDeviceRulesReplaced(t *testing.T) {
	for name, group := range drivers {
		t.Run(name, func(t *testing.T) {
			withoutFull := slices.DeleteFunc(slices.Clone(DefaultDevices), func(r DeviceRule) bool { return r.Major == 1 && r.Minor == 7 })
			cg := group(t, withoutFull)
			dir := deviceNodes(t)
			if out := tryDevices(t, cg, dir); !hasLine(out, "full", eperm) {
				t.Fatalf("full was not refused first:\n%s", out)
			}
			if err := cg.Set(Resources{Devices: DefaultDevices}); err != nil {
				t.Fatal(err)
			}
			if out := tryDevices(t, cg, dir); !strings.Contains(out, "read full: ok\n") {
				t.Errorf("full still refused after Set:\n%s", out)
			}
			if g, ok := cg.(*v2); ok {
				fd, err := unix.Open(g.dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(fd)
				ids, err := deviceProgs(fd, g.dir)
				if err != nil || len(ids) != 1 {
					t.Errorf("programs attached: %v, %v; want one", ids, err)
				}
			}
		})
	}
}

// TestDevicesNeedTheController: rules on a v1 host without a devices
// hierarchy are an error, never silently ignored.
func TestDevicesNeedTheController(t *testing.T) {
	base := t.TempDir()
	mounts := map[string]string{}
	for _, c := range []string{"memory", "cpu", "pids"} {
		mounts[c] = filepath.Join(base, c)
		if err := os.Mkdir(mounts[c], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	g, err := newV1(mounts, nil, "minictr-fake", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.setDevices(DefaultDevices); err == nil || !strings.Contains(err.Error(), "devices hierarchy is not mounted") {
		t.Errorf("setDevices without a devices hierarchy: %v", err)
	}
	if err := g.setDevices(nil); err != nil {
		t.Errorf("no rules need no controller: %v", err)
	}
}
