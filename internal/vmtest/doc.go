// Package vmtest proves that the lab VM (scripts/vm.sh) is a real cgroup v2
// host: it uses the kernel's cgroup2 files directly, with no minictr code in
// between, so that a failure here points at the VM and not at a driver.
//
// The kernel feature is the unified cgroup hierarchy, cgroups(7) and the
// kernel's Documentation/admin-guide/cgroup-v2.rst: one tree at
// /sys/fs/cgroup whose cgroup.subtree_control hands controllers (memory,
// cpu, pids, io) to child cgroups; memory.max with memory.events counting
// OOM kills, cpu.max with cpu.stat counting throttled periods, pids.max with
// pids.events counting refused forks. Processes join a cgroup at birth with
// clone3(2) CLONE_INTO_CGROUP (Go's SysProcAttr.UseCgroupFD), which on v2
// avoids the window in which a child runs outside its limits.
//
// The tests run only as root on a pure v2 host (the VM) and skip elsewhere.
// Each creates /sys/fs/cgroup/minictr-vmtest-<id> and removes it in
// t.Cleanup, killing what is left in it with cgroup.kill first.
package vmtest
