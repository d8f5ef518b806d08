// Package cgroups puts a container's processes in a control group and
// limits how much memory, CPU time and how many processes they may use,
// and which devices they may open.
//
// # The kernel feature
//
// A control group (cgroups(7)) is a directory in a special file system. The
// processes listed in its cgroup.procs file are charged together: the
// memory controller counts their pages and OOM-kills one of them when the
// group goes over its limit, the cpu controller lets the group run for at
// most QUOTA microseconds in every PERIOD (CFS bandwidth control) and counts
// the periods in which it had to stop them, the pids controller refuses
// fork(2) and clone(2) once the group holds pids.max tasks. Everything is
// done by writing numbers to files: there is no cgroup system call.
//
// # The two layouts
//
// Version 1 mounts one hierarchy per controller, so a container has one
// directory per controller, and the file names carry the controller:
//
//	/sys/fs/cgroup/memory/minictr-x/memory.limit_in_bytes   67108864
//	/sys/fs/cgroup/memory/minictr-x/memory.memsw.limit_in_bytes
//	/sys/fs/cgroup/cpu/minictr-x/cpu.cfs_quota_us            50000
//	/sys/fs/cgroup/cpu/minictr-x/cpu.cfs_period_us           100000
//	/sys/fs/cgroup/cpu/minictr-x/cpu.shares                  1024
//	/sys/fs/cgroup/cpuacct/minictr-x/cpuacct.usage           (ns used)
//	/sys/fs/cgroup/pids/minictr-x/pids.max                   100
//
// (cpu and cpuacct are often mounted together as "cpu,cpuacct"; this
// package reads /proc/self/mountinfo, through internal/procfs, to find
// where each one is.)
//
// Version 2 has a single unified hierarchy: one directory per container, and
// a parent must list a controller in its cgroup.subtree_control before its
// children get that controller's files:
//
//	/sys/fs/cgroup/cgroup.subtree_control        +memory +cpu +pids
//	/sys/fs/cgroup/minictr-x/memory.max          67108864
//	/sys/fs/cgroup/minictr-x/memory.swap.max     67108864  (swap only, not memory+swap)
//	/sys/fs/cgroup/minictr-x/cpu.max             "50000 100000"
//	/sys/fs/cgroup/minictr-x/cpu.weight          100       (from --cpu-shares)
//	/sys/fs/cgroup/minictr-x/pids.max            100
//
// A controller is bound to one hierarchy at a time, so the driver follows
// where memory, cpu and pids are: a "hybrid" host mounts them in v1 next to
// an (almost empty) v2 hierarchy and gets the v1 driver; a pure v2 host
// gets the v2 driver even when some program mounts a stray v1 hierarchy
// (VPN clients such as Mullvad mount net_cls for split tunnelling). cpuacct
// is joined where it is mounted, for CPU usage. [DetectLayout] reads where
// the hierarchies are and [Layout.Mode] tells which driver a host gets; the
// engine reads the layout once and hands it to [New], [Load] and, as plain
// data, to the container's init (pkg/chroot) that mounts /sys/fs/cgroup.
//
// # Devices
//
// A container root has CAP_MKNOD, so it can make a node for any device
// (`mknod /dev/l b 7 0` is the host's first loop device). The device rules
// decide which nodes it may then open: [DefaultDevices] is docker's list
// (null, zero, full, random, urandom, tty, console, ptmx, the pts, tun),
// and every other open fails with EPERM, whatever the node's permissions.
// v1 has a devices controller, written to in the v1 rule syntax:
//
//	/sys/fs/cgroup/devices/minictr-x/devices.deny    a
//	/sys/fs/cgroup/devices/minictr-x/devices.allow   c 1:3 rwm
//
// v2 has none: the kernel instead runs every BPF_PROG_TYPE_CGROUP_DEVICE
// program attached to the process's cgroup, with the device's type, major,
// minor and the access asked for. [DeviceFilter] compiles the rules into
// such a program (its String method prints it, in bpftool's syntax), and
// the v2 driver loads it with bpf(2) and attaches it to the group's
// directory; removing the group removes the program. (On a hybrid host
// both apply: the v1 controller and any program on the unified hierarchy.)
//
// # Every hierarchy
//
// On v1 the container's group exists in every mounted hierarchy, not only
// in those of its limits: freezer, devices, cpuset (with its parent's CPUs
// and memory nodes copied in, or no task could join it), blkio, net_cls,
// systemd's named one and a hybrid host's unified one. The container's
// cgroup namespace is made after its init has joined them, so each root
// of its view is its own group, and the host's tree stays out of sight
// when it mounts a hierarchy.
//
// # Docker's numbers
//
// [Resources] takes docker's flags: MemorySwap is memory plus swap (0 means
// twice Memory, -1 unlimited), CPUQuota and CPUPeriod are --cpu-quota and
// --cpu-period (--cpus 1.5 is 150000 of 100000), CPUShares is --cpu-shares,
// turned into a v2 cpu.weight with runc's formula. [ParseDevice] reads a
// --device value.
//
// # Side effects on the host
//
// [New] creates one directory named after the container directly under each
// hierarchy's root (on v1 one in every hierarchy mounted at /sys/fs/cgroup;
// one on v2), on v2 attaches a device program to it, and, on v2, may add
// "+memory +cpu +pids" to the root's cgroup.subtree_control (left enabled:
// other cgroups share it). [Cgroup.Destroy] kills whatever is still running
// in the group and removes the directories, which frees the device program;
// nothing else removes them, so callers must destroy what they create.
// Every mkdir, write, kill and rmdir is reported to the trace.Tracer with
// the shell command that does the same by hand.
package cgroups
