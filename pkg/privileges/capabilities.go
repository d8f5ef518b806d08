package privileges

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// capabilityNames lists every capability by its number, from
// linux/capability.h, up to CAP_CHECKPOINT_RESTORE (Linux 5.9).
var capabilityNames = []string{
	"CAP_CHOWN",              // 0
	"CAP_DAC_OVERRIDE",       // 1
	"CAP_DAC_READ_SEARCH",    // 2
	"CAP_FOWNER",             // 3
	"CAP_FSETID",             // 4
	"CAP_KILL",               // 5
	"CAP_SETGID",             // 6
	"CAP_SETUID",             // 7
	"CAP_SETPCAP",            // 8
	"CAP_LINUX_IMMUTABLE",    // 9
	"CAP_NET_BIND_SERVICE",   // 10
	"CAP_NET_BROADCAST",      // 11
	"CAP_NET_ADMIN",          // 12
	"CAP_NET_RAW",            // 13
	"CAP_IPC_LOCK",           // 14
	"CAP_IPC_OWNER",          // 15
	"CAP_SYS_MODULE",         // 16
	"CAP_SYS_RAWIO",          // 17
	"CAP_SYS_CHROOT",         // 18
	"CAP_SYS_PTRACE",         // 19
	"CAP_SYS_PACCT",          // 20
	"CAP_SYS_ADMIN",          // 21
	"CAP_SYS_BOOT",           // 22
	"CAP_SYS_NICE",           // 23
	"CAP_SYS_RESOURCE",       // 24
	"CAP_SYS_TIME",           // 25
	"CAP_SYS_TTY_CONFIG",     // 26
	"CAP_MKNOD",              // 27
	"CAP_LEASE",              // 28
	"CAP_AUDIT_WRITE",        // 29
	"CAP_AUDIT_CONTROL",      // 30
	"CAP_SETFCAP",            // 31
	"CAP_MAC_OVERRIDE",       // 32
	"CAP_MAC_ADMIN",          // 33
	"CAP_SYSLOG",             // 34
	"CAP_WAKE_ALARM",         // 35
	"CAP_BLOCK_SUSPEND",      // 36
	"CAP_AUDIT_READ",         // 37
	"CAP_PERFMON",            // 38
	"CAP_BPF",                // 39
	"CAP_CHECKPOINT_RESTORE", // 40
}

// DefaultCapabilities are docker's defaults: enough for a package manager
// or a web server running as root, nothing that reaches the kernel or other
// containers (no CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE, ...).
var DefaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// capabilityNumber returns the number of a capability name as the table spells it.
func capabilityNumber(name string) (int, bool) {
	n := slices.Index(capabilityNames, name)
	return n, n >= 0
}

// lastCap is the highest capability the running kernel knows. An older
// kernel than our table rejects the newer numbers. The kernel's answer
// never changes while we run, so it is read once.
var lastCap = sync.OnceValue(readLastCap)

func readLastCap() int {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return len(capabilityNames) - 1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n >= len(capabilityNames) {
		return len(capabilityNames) - 1
	}
	return n
}

// allCapabilities lists every capability the running kernel knows.
func allCapabilities() []string {
	var all []string
	for c, name := range capabilityNames[:lastCap()+1] {
		if held(c) {
			all = append(all, name)
		}
	}
	return all
}

// held reports whether capability c is in this process's bounding set: a
// process can hand on only what it has. (Some hosts withhold capabilities
// even from root; this one lacks CAP_SYS_RESOURCE, for one.)
func held(c int) bool {
	v, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
	return err == nil && v == 1
}

// checkHeld refuses to add a capability the engine itself lacks, with a
// clearer word than capset's EPERM.
func checkHeld(names []string) error {
	for _, n := range names {
		if c, ok := capabilityNumber(n); ok && c <= lastCap() && !held(c) {
			return fmt.Errorf("cannot add capability %s: minictr itself does not hold it", n)
		}
	}
	return nil
}

// normalize turns "net_admin", "CAP_NET_ADMIN" or "all" into "CAP_NET_ADMIN"
// or "ALL", and rejects names that are no capability.
func normalize(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, name := range names {
		n := strings.ToUpper(strings.TrimSpace(name))
		if n == "ALL" {
			out = append(out, n)
			continue
		}
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		if _, ok := capabilityNumber(n); !ok {
			return nil, fmt.Errorf("unknown capability %q", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// Capabilities returns the capabilities a container gets, following
// docker's --cap-add / --cap-drop rules:
//
//   - privileged: every capability the kernel knows, add and drop ignored;
//   - add ALL: every capability except those dropped;
//   - drop ALL: only those added;
//   - otherwise DefaultCapabilities minus drop, plus add.
//
// Names are case-insensitive and the CAP_ prefix is optional. The result is
// in capability-number order, without duplicates.
func Capabilities(add, drop []string, privileged bool) ([]string, error) {
	add, err := normalize(add)
	if err != nil {
		return nil, err
	}
	drop, err = normalize(drop)
	if err != nil {
		return nil, err
	}
	var caps []string
	switch {
	case privileged:
		caps = allCapabilities()
	case slices.Contains(add, "ALL"):
		for _, c := range allCapabilities() {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		caps = add
		if err := checkHeld(add); err != nil {
			return nil, err
		}
	default:
		if err := checkHeld(add); err != nil {
			return nil, err
		}
		for _, c := range DefaultCapabilities {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
		caps = append(caps, add...)
	}
	return sortCapabilities(caps), nil
}

// sortCapabilities orders names by capability number and removes duplicates.
func sortCapabilities(names []string) []string {
	out := slices.Clone(names)
	slices.SortFunc(out, func(a, b string) int {
		x, _ := capabilityNumber(a)
		y, _ := capabilityNumber(b)
		return x - y
	})
	return slices.Compact(out)
}
