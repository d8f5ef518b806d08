package cgroups

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/minictr/minictr/internal/procfs"
	"github.com/minictr/minictr/internal/testenv"
)

// This host's table: every v1 controller in its own hierarchy, cpu and
// cpuacct apart, next to an almost empty v2 mount (hybrid).
const mountinfoSeparate = `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// This host's whole table, with the hierarchies a container does not
// need for its limits: cpuset, devices, freezer, blkio.
const mountinfoThisHost = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// systemd's usual v1 table: cpu and cpuacct share one hierarchy, with
// optional fields (shared:N) before the separator.
const mountinfoCombined = `25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
`

// A pure v2 host (Debian 11+, Fedora, Ubuntu 21.10+).
const mountinfoV2 = `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
28 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

// A pure v2 host with a VPN client installed: Mullvad mounts a v1 net_cls
// hierarchy for split tunnelling, on top of a directory of the v2 tree.
const mountinfoV2StrayNetCls = mountinfoV2 +
	`45 28 0:41 / /sys/fs/cgroup/net_cls rw,relatime shared:22 - cgroup net_cls rw,seclabel,net_cls
`

// A pure v1 host (CentOS 7, Debian 9): no v2 mount at all.
const mountinfoV1 = `25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:26 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,net_cls,net_prio
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
`

// layoutOf parses a sample table as DetectLayout parses the host's.
func layoutOf(t *testing.T, text string) *Layout {
	t.Helper()
	ms, err := procfs.ParseMountinfo(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return LayoutOf(ms)
}

func TestLayoutOf(t *testing.T) {
	for _, tc := range []struct {
		name        string
		text        string
		mode        Mode
		controllers map[string]string
		unified     string
	}{
		{"separate cpu and cpuacct", mountinfoSeparate, ModeHybrid, map[string]string{
			"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct",
			"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids",
		}, "/sys/fs/cgroup/unified"},
		{"combined cpu,cpuacct", mountinfoCombined, ModeHybrid, map[string]string{
			"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
			"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids",
		}, "/sys/fs/cgroup/unified"},
		{"pure v1", mountinfoV1, ModeV1, map[string]string{
			"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
			"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids",
			"net_cls": "/sys/fs/cgroup/net_cls,net_prio", "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
		}, ""},
		{"pure v2", mountinfoV2, ModeV2, map[string]string{}, "/sys/fs/cgroup"},
		{"pure v2 with a stray v1 net_cls", mountinfoV2StrayNetCls, ModeV2, map[string]string{
			"net_cls": "/sys/fs/cgroup/net_cls",
		}, "/sys/fs/cgroup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := layoutOf(t, tc.text)
			if !maps.Equal(l.Controllers, tc.controllers) {
				t.Errorf("controllers = %v, want %v", l.Controllers, tc.controllers)
			}
			if l.Unified != tc.unified {
				t.Errorf("unified = %q, want %q", l.Unified, tc.unified)
			}
			if m, err := l.Mode(); m != tc.mode || err != nil {
				t.Errorf("Mode() = %q, %v; want %q", m, err, tc.mode)
			}
		})
	}
}

// TestVisible: the hierarchies handed to the container's init, which
// mounts them at /sys/fs/cgroup (pkg/chroot). On a v2 host the unified one
// alone, even with a stray v1 net_cls beside it; elsewhere every one, with
// the controllers mount(8) needs to name each hierarchy again.
func TestVisible(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []Hierarchy
	}{
		{"pure v2", mountinfoV2, []Hierarchy{{"/sys/fs/cgroup", "cgroup2", "/", ""}}},
		{"pure v2 with a stray v1 net_cls", mountinfoV2StrayNetCls, []Hierarchy{{"/sys/fs/cgroup", "cgroup2", "/", ""}}},
		{"hybrid", mountinfoCombined, []Hierarchy{
			{"/sys/fs/cgroup/unified", "cgroup2", "/", ""},
			{"/sys/fs/cgroup/systemd", "cgroup", "/", "name=systemd"},
			{"/sys/fs/cgroup/cpu,cpuacct", "cgroup", "/", "cpu,cpuacct"},
			{"/sys/fs/cgroup/memory", "cgroup", "/", "memory"},
			{"/sys/fs/cgroup/pids", "cgroup", "/", "pids"},
		}},
		{"pure v1", mountinfoV1, []Hierarchy{
			{"/sys/fs/cgroup/systemd", "cgroup", "/", "name=systemd"},
			{"/sys/fs/cgroup/net_cls,net_prio", "cgroup", "/", "net_cls,net_prio"},
			{"/sys/fs/cgroup/cpu,cpuacct", "cgroup", "/", "cpu,cpuacct"},
			{"/sys/fs/cgroup/memory", "cgroup", "/", "memory"},
			{"/sys/fs/cgroup/pids", "cgroup", "/", "pids"},
		}},
		{"a subtree, an LSM option, a bind mount elsewhere and a second mount of memory", `25 30 0:23 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755
31 25 0:29 /docker/abc /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,seclabel,memory
32 25 0:30 / /sys/fs/cgroup/pids rw shared:16 - cgroup cgroup rw,pids
33 25 0:28 / /sys/fs/cgroup/cpu rw shared:14 - cgroup cgroup rw,cpu
34 22 0:29 / /mnt/memory rw - cgroup cgroup rw,memory
35 25 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
`, []Hierarchy{
			{"/sys/fs/cgroup/memory", "cgroup", "/docker/abc", "memory"},
			{"/sys/fs/cgroup/pids", "cgroup", "/", "pids"},
			{"/sys/fs/cgroup/cpu", "cgroup", "/", "cpu"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := layoutOf(t, tc.text).Visible(); !slices.Equal(got, tc.want) {
				t.Errorf("Visible() =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// TestModeChoice: the driver follows memory, cpu and pids, not the mere
// presence of a v1 hierarchy; Mode and the driver New and Load use agree.
func TestModeChoice(t *testing.T) {
	const none = `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
`
	for _, tc := range []struct {
		name  string
		text  string
		mode  Mode
		err   error
		paths []string // the directories New would make for "minictr-x"
	}{
		{"pure v2 with a stray v1 net_cls", mountinfoV2StrayNetCls, ModeV2, nil,
			[]string{"/sys/fs/cgroup/minictr-x"}},
		{"pure v2", mountinfoV2, ModeV2, nil, []string{"/sys/fs/cgroup/minictr-x"}},
		// v1: the limits' hierarchies, the other controllers' by name,
		// then the controller-less ones (named, unified) in mount order.
		{"hybrid, cpu and cpuacct apart", mountinfoSeparate, ModeHybrid, nil, []string{
			"/sys/fs/cgroup/memory/minictr-x", "/sys/fs/cgroup/cpu/minictr-x",
			"/sys/fs/cgroup/cpuacct/minictr-x", "/sys/fs/cgroup/pids/minictr-x",
			"/sys/fs/cgroup/systemd/minictr-x", "/sys/fs/cgroup/unified/minictr-x"}},
		{"hybrid, cpu,cpuacct together", mountinfoCombined, ModeHybrid, nil, []string{
			"/sys/fs/cgroup/memory/minictr-x", "/sys/fs/cgroup/cpu,cpuacct/minictr-x",
			"/sys/fs/cgroup/pids/minictr-x",
			"/sys/fs/cgroup/unified/minictr-x", "/sys/fs/cgroup/systemd/minictr-x"}},
		{"pure v1", mountinfoV1, ModeV1, nil, []string{
			"/sys/fs/cgroup/memory/minictr-x", "/sys/fs/cgroup/cpu,cpuacct/minictr-x",
			"/sys/fs/cgroup/pids/minictr-x", "/sys/fs/cgroup/net_cls,net_prio/minictr-x",
			"/sys/fs/cgroup/systemd/minictr-x"}},
		{"v1 without cpuacct", dropLines(mountinfoSeparate, "cpuacct"), ModeHybrid, nil, []string{
			"/sys/fs/cgroup/memory/minictr-x", "/sys/fs/cgroup/cpu/minictr-x",
			"/sys/fs/cgroup/pids/minictr-x",
			"/sys/fs/cgroup/systemd/minictr-x", "/sys/fs/cgroup/unified/minictr-x"}},
		{"every hierarchy of this host", mountinfoThisHost, ModeHybrid, nil, []string{
			"/sys/fs/cgroup/memory/minictr-x", "/sys/fs/cgroup/cpu/minictr-x",
			"/sys/fs/cgroup/cpuacct/minictr-x", "/sys/fs/cgroup/pids/minictr-x",
			"/sys/fs/cgroup/blkio/minictr-x", "/sys/fs/cgroup/cpuset/minictr-x",
			"/sys/fs/cgroup/devices/minictr-x", "/sys/fs/cgroup/freezer/minictr-x",
			"/sys/fs/cgroup/systemd/minictr-x", "/sys/fs/cgroup/unified/minictr-x"}},
		{"v1 without pids", dropLines(mountinfoV1, "pids"), "", ErrControllerMissing, nil},
		{"hybrid without v1 pids", dropLines(mountinfoSeparate, "pids"), "", ErrControllerMissing, nil},
		{"only a stray v1 net_cls", dropLines(mountinfoV2StrayNetCls, "cgroup2"), "", ErrNoCgroups, nil},
		{"nothing", none, "", ErrNoCgroups, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := layoutOf(t, tc.text)
			m, err := l.Mode()
			if m != tc.mode || !errors.Is(err, tc.err) {
				t.Errorf("Mode() = %q, %v; want %q, %v", m, err, tc.mode, tc.err)
			}
			g, derr := open(l, "minictr-x", nil)
			if tc.err != nil {
				if !errors.Is(derr, tc.err) {
					t.Errorf("open() error = %v, want %v as from Mode()", derr, tc.err)
				}
				return
			}
			if derr != nil {
				t.Fatalf("open(): %v", derr)
			}
			wantDriver := map[Mode]string{ModeV1: "v1", ModeHybrid: "v1", ModeV2: "v2"}[tc.mode]
			if version(g) != wantDriver || !slices.Equal(g.Paths(), tc.paths) {
				t.Errorf("driver: %s, paths %q; want %s, %q", version(g), g.Paths(), wantDriver, tc.paths)
			}
		})
	}
}

// TestNoLayout: the layout is the engine's to read and hand over; New and
// Load never guess it.
func TestNoLayout(t *testing.T) {
	if _, err := New(Config{Name: "minictr-x"}); !errors.Is(err, ErrNoLayout) {
		t.Errorf("New without a layout: %v, want ErrNoLayout", err)
	}
	if _, err := Load("minictr-x", nil, nil); !errors.Is(err, ErrNoLayout) {
		t.Errorf("Load without a layout: %v, want ErrNoLayout", err)
	}
}

// dropLines removes the lines of a mountinfo table that contain s.
func dropLines(text, s string) string {
	var kept []string
	for _, line := range strings.SplitAfter(text, "\n") {
		if !strings.Contains(line, s) {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "")
}

func TestLayoutEscapesAndNone(t *testing.T) {
	l := layoutOf(t, `40 31 0:37 / /mnt/my\040cgroups rw - cgroup2 cgroup2 rw`+"\n")
	if l.Unified != "/mnt/my cgroups" {
		t.Errorf("unified = %q, want the space unescaped", l.Unified)
	}
	l = layoutOf(t, `22 1 254:1 / / rw - ext4 /dev/vda1 rw`+"\n")
	if _, err := l.Mode(); !errors.Is(err, ErrNoCgroups) {
		t.Errorf("no cgroup mounts: Mode() error = %v, want ErrNoCgroups", err)
	}
}

func TestSharesToWeight(t *testing.T) {
	for shares, want := range map[int64]int64{0: 0, 2: 1, 1024: 39, 512: 20, 262144: 10000} {
		if got := sharesToWeight(shares); got != want {
			t.Errorf("sharesToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
}

func TestSwap(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		memory, swap, total int64
		v2                  string
	}{
		{64 * mib, 0, 128 * mib, "67108864"}, // docker's default: as much swap as memory
		{64 * mib, 64 * mib, 64 * mib, "0"},  // --memory-swap = --memory: no swap at all
		{64 * mib, 100 * mib, 100 * mib, "37748736"},
		{64 * mib, -1, -1, "max"}, // unlimited swap
	} {
		total := memorySwap(tc.memory, tc.swap)
		if total != tc.total {
			t.Errorf("memorySwap(%d, %d) = %d, want %d", tc.memory, tc.swap, total, tc.total)
		}
		if got := swapOnly(tc.memory, total); got != tc.v2 {
			t.Errorf("swapOnly(%d, %d) = %q, want %q", tc.memory, total, got, tc.v2)
		}
	}
	if got := memorySwap(0, 0); got != 0 {
		t.Errorf("no memory limit: memorySwap = %d, want 0 (leave alone)", got)
	}
}

func TestValidate(t *testing.T) {
	good := []Resources{
		{},
		{Memory: 64 << 20, MemorySwap: -1},
		{Memory: 64 << 20, MemorySwap: 64 << 20, CPUQuota: 50000, CPUShares: 2, PidsLimit: -1},
	}
	for _, r := range good {
		if err := r.validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []Resources{
		{Memory: -1},
		{Memory: 64 << 20, MemorySwap: -2},
		{MemorySwap: 64 << 20},
		{Memory: 64 << 20, MemorySwap: 32 << 20},
		{CPUQuota: -1},
		{CPUPeriod: -1},
		{CPUShares: 1},
		{CPUShares: 262145},
		{PidsLimit: -2},
	}
	for _, r := range bad {
		if err := r.validate(); !errors.Is(err, ErrInvalidResources) {
			t.Errorf("%+v: error %v, want ErrInvalidResources", r, err)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "../x", "x\n"} {
		if err := checkName(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("checkName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	if err := checkName("minictr-3f2a"); err != nil {
		t.Error(err)
	}
}

// TestDetectThisHost reads the real mount table; any user may.
func TestDetectThisHost(t *testing.T) {
	want := map[string][]Mode{"v1": {ModeV1, ModeHybrid}, "v2": {ModeV2}}[testenv.CgroupMode()]
	if want == nil {
		t.Skip("no cgroups mounted at /sys/fs/cgroup")
	}
	l, err := DetectLayout()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Mode(); !slices.Contains(want, got) || err != nil {
		t.Errorf("Mode() = %q, %v; want one of %q (%s host)", got, err, want, testenv.CgroupMode())
	}
}
