package privileges

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerDefaults are docker's 14 default capabilities, written out in
// capability-number order (linux/capability.h), as Capabilities returns
// them.
var dockerDefaults = []string{
	"CAP_CHOWN",            // 0
	"CAP_DAC_OVERRIDE",     // 1
	"CAP_FOWNER",           // 3
	"CAP_FSETID",           // 4
	"CAP_KILL",             // 5
	"CAP_SETGID",           // 6
	"CAP_SETUID",           // 7
	"CAP_SETPCAP",          // 8
	"CAP_NET_BIND_SERVICE", // 10
	"CAP_NET_RAW",          // 13
	"CAP_SYS_CHROOT",       // 18
	"CAP_MKNOD",            // 27
	"CAP_AUDIT_WRITE",      // 29
	"CAP_SETFCAP",          // 31
}

// kernelCapabilities lists, in number order, the capabilities this process
// can hand on, read from the kernel's own files rather than from the code
// under test: the numbers 0 to /proc/sys/kernel/cap_last_cap that the
// bounding set (CapBnd in /proc/self/status) holds, named from the table
// below.
func kernelCapabilities(t *testing.T) []string {
	t.Helper()
	names := []string{ // linux/capability.h, 0 to 40
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
		"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
		"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
		"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
		"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
		"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
		"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
		"CAP_CHECKPOINT_RESTORE",
	}
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	last = min(last, len(names)-1)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapBnd:\s*([0-9a-f]+)$`).FindSubmatch(status)
	if m == nil {
		t.Fatal("no CapBnd line in /proc/self/status")
	}
	bnd, err := strconv.ParseUint(string(m[1]), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for c := 0; c <= last; c++ {
		if bnd&(1<<c) != 0 {
			out = append(out, names[c])
		}
	}
	return out
}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
}

func TestCapabilities(t *testing.T) {
	all := kernelCapabilities(t)
	for _, tc := range []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
	}{
		{name: "defaults", want: dockerDefaults},
		{name: "drop ALL, add one", add: []string{"net_bind_service"}, drop: []string{"ALL"},
			want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop ALL alone", drop: []string{"all"}, want: nil},
		{name: "add ALL minus one", add: []string{"ALL"}, drop: []string{"CAP_SYS_ADMIN"}, want: without(all, "CAP_SYS_ADMIN")},
		{name: "privileged ignores drop", drop: []string{"CHOWN"}, privileged: true, want: all},
		{name: "prefix and case", add: []string{"Sys_Admin", "cap_net_admin"}, drop: []string{"CAP_MKNOD", "kill"},
			want: []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETGID", "CAP_SETUID",
				"CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_CHROOT",
				"CAP_SYS_ADMIN", "CAP_AUDIT_WRITE", "CAP_SETFCAP"}},
		{name: "duplicates", add: []string{"CHOWN", "chown"}, want: dockerDefaults},
	} {
		got, err := Capabilities(tc.add, tc.drop, tc.privileged)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v\nwant %v", tc.name, got, tc.want)
		}
	}
	if !slices.Equal(sortCapabilities(DefaultCapabilities), dockerDefaults) {
		t.Errorf("DefaultCapabilities = %v, want docker's 14: %v", DefaultCapabilities, dockerDefaults)
	}
}

func TestCapabilitiesUnknown(t *testing.T) {
	for _, in := range []string{"foo", "CAP_FOO"} {
		_, err := Capabilities([]string{in}, nil, false)
		if err == nil || err.Error() != `unknown capability "CAP_FOO"` {
			t.Errorf("add %q: err = %v", in, err)
		}
		if _, err := Capabilities(nil, []string{in}, false); err == nil {
			t.Errorf("drop %q accepted", in)
		}
	}
}

func TestCapabilityTable(t *testing.T) {
	// Spot-check numbers against linux/capability.h.
	for name, want := range map[string]int{"CAP_CHOWN": 0, "CAP_SETPCAP": 8, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27, "CAP_CHECKPOINT_RESTORE": 40} {
		if n, ok := capabilityNumber(name); !ok || n != want {
			t.Errorf("%s = %d, want %d", name, n, want)
		}
	}
	// The whole table, against the kernel's header where it is installed.
	if defines, err := headerCapabilities(); err == nil {
		for name, want := range defines {
			if n, ok := capabilityNumber(name); want < len(capabilityNames) && (!ok || n != want) {
				t.Errorf("%s = %d (found %v), linux/capability.h says %d", name, n, ok, want)
			}
		}
	} else {
		t.Logf("no whole-table check: %v", err)
	}
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := strconv.Atoi(strings.TrimSpace(string(data))); lastCap() != min(want, len(capabilityNames)-1) {
		t.Errorf("lastCap() = %d, /proc/sys/kernel/cap_last_cap says %d", lastCap(), want)
	}
	if got := maskNames(1<<0 | 1<<21); got != "cap_chown,cap_sys_admin" {
		t.Errorf("maskNames = %q", got)
	}
	if _, err := capabilityMask([]string{"ALL"}); err == nil || !strings.Contains(err.Error(), "ALL") {
		t.Errorf("capabilityMask(ALL) err = %v", err)
	}
}

// headerCapabilities reads "#define CAP_NAME N" from linux/capability.h.
func headerCapabilities() (map[string]int, error) {
	f, err := os.Open("/usr/include/linux/capability.h")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int{}
	re := regexp.MustCompile(`^#define (CAP_[A-Z_]+)\s+([0-9]+)$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil && m[1] != "CAP_LAST_CAP" {
			n, _ := strconv.Atoi(m[2])
			out[m[1]] = n
		}
	}
	return out, sc.Err()
}
