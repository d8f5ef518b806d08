package namespaces

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// A Kind is one of the seven namespace types a container uses.
type Kind int

// The namespace kinds, in the order minictr creates and lists them.
const (
	UTS    Kind = iota // hostname and NIS domain name
	PID                // process IDs: the container's first process is PID 1
	Mount              // the mount table
	IPC                // System V IPC objects and POSIX message queues
	Net                // network devices, addresses, routes, firewall rules
	Cgroup             // the view of the cgroup hierarchy
	User               // user and group IDs, and the capabilities that go with them
)

// kinds holds, per Kind, the name of its link in /proc/PID/ns, its clone
// flag and the unshare(1) option that asks for it.
var kinds = []struct {
	name    string
	flag    uintptr
	unshare string
}{
	UTS:    {"uts", unix.CLONE_NEWUTS, "--uts"},
	PID:    {"pid", unix.CLONE_NEWPID, "--pid"},
	Mount:  {"mnt", unix.CLONE_NEWNS, "--mount"},
	IPC:    {"ipc", unix.CLONE_NEWIPC, "--ipc"},
	Net:    {"net", unix.CLONE_NEWNET, "--net"},
	Cgroup: {"cgroup", unix.CLONE_NEWCGROUP, "--cgroup"},
	User:   {"user", unix.CLONE_NEWUSER, "--user"},
}

// All lists every Kind.
var All = []Kind{UTS, PID, Mount, IPC, Net, Cgroup, User}

func (k Kind) valid() bool { return k >= 0 && int(k) < len(kinds) }

// String returns the name of the namespace's link in /proc/PID/ns: "uts",
// "pid", "mnt", "ipc", "net", "cgroup" or "user".
func (k Kind) String() string {
	if !k.valid() {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kinds[k].name
}

// CloneFlag returns the clone(2) / unshare(2) / setns(2) flag that creates
// or joins a namespace of this kind, such as CLONE_NEWUTS.
func (k Kind) CloneFlag() uintptr {
	if !k.valid() {
		return 0
	}
	return kinds[k].flag
}

// ParseKind turns a /proc/PID/ns name ("mnt") or an unshare(1) option name
// ("mount") into a Kind.
func ParseKind(s string) (Kind, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for k, info := range kinds {
		if s == info.name || s == strings.TrimPrefix(info.unshare, "--") {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("unknown namespace %q (want one of uts, pid, mnt, ipc, net, cgroup, user)", s)
}

// ParseKinds parses a comma-separated list such as "uts,pid,mnt".
func ParseKinds(list string) ([]Kind, error) {
	var out []Kind
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		k, err := ParseKind(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return sorted(out), nil
}

// FormatKinds is the inverse of ParseKinds: "uts,pid,mnt".
func FormatKinds(ks []Kind) string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.String()
	}
	return strings.Join(names, ",")
}

// cloned is what clone(2) gets of kinds: all but the cgroup namespace,
// which the child unshares itself once the parent has moved it into its
// cgroup, so that this cgroup becomes the child's root.
func cloned(kinds []Kind) []Kind {
	var out []Kind
	for _, k := range kinds {
		if k != Cgroup {
			out = append(out, k)
		}
	}
	return out
}

// sorted returns the kinds without duplicates, in the order of All, so that
// flags and commands always read the same way.
func sorted(ks []Kind) []Kind {
	seen := map[Kind]bool{}
	var out []Kind
	for _, k := range ks {
		if k.valid() && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func has(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// CloneFlags ORs the clone flags of kinds together.
func CloneFlags(ks []Kind) uintptr {
	var flags uintptr
	for _, k := range ks {
		flags |= k.CloneFlag()
	}
	return flags
}

// FlagNames spells the flags of kinds the way clone(2) does:
// "CLONE_NEWUTS|CLONE_NEWPID|CLONE_NEWNS".
func FlagNames(ks []Kind) string {
	names := map[Kind]string{UTS: "CLONE_NEWUTS", PID: "CLONE_NEWPID", Mount: "CLONE_NEWNS",
		IPC: "CLONE_NEWIPC", Net: "CLONE_NEWNET", Cgroup: "CLONE_NEWCGROUP", User: "CLONE_NEWUSER"}
	var parts []string
	for _, k := range sorted(ks) {
		parts = append(parts, names[k])
	}
	return strings.Join(parts, "|")
}

// UnshareCommand returns the unshare(1) command line that creates the same
// namespaces for a new process: "unshare --uts --pid --mount --ipc --net --fork".
// --fork is there because a new PID namespace only applies to children:
// unshare must fork for the command to become its PID 1.
func UnshareCommand(ks []Kind) string {
	args := []string{"unshare"}
	for _, k := range sorted(ks) {
		args = append(args, kinds[k].unshare)
	}
	if has(ks, PID) {
		args = append(args, "--fork")
	}
	return strings.Join(args, " ")
}
