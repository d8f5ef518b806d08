// Package procfs reads the kernel's tables under /proc: the mount table
// (/proc/PID/mountinfo), a process's status line (/proc/PID/stat) and its
// cgroups (/proc/PID/cgroup). It is the one reader of them in minictr.
//
// # The kernel feature
//
// proc(5) shows kernel state as text, one record a line, in formats made
// for machines but with traps for the careless reader:
//
//   - mountinfo escapes the space, tab, newline and backslash in paths as
//     octal ("\040"), has a variable number of optional fields ("shared:1")
//     ended by a lone "-", and may print an empty source as nothing at all
//     between two spaces;
//   - stat puts the command name in parentheses, and the name is whatever
//     the process chose: "a) b (c" is a valid one, so the fields after it
//     can only be found from the last ')';
//   - cgroup lists "ID:controllers:path" a line, with ID 0 and no
//     controllers for the unified (v2) hierarchy.
//
// # Who may use it
//
// Stage packages (pkg/cgroups, pkg/chroot, ...) never import each other,
// but they may all import this leaf: it reads, it decides nothing and it
// changes nothing on the host. Deciding what the tables mean (which cgroup
// layout a host has, for instance) belongs to the stage that owns the
// concern.
package procfs
