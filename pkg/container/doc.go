// Package container is the engine: the one place that composes the stages
// (snapshot, namespaces, chroot, cgroups, privileges) into a container's
// life.
//
// # Running a container
//
// Run takes a Spec and goes through a checklist of named steps, each
// reported to a trace.Tracer and each pushing its own undo:
//
//  1. validate the spec, once, before anything exists;
//  2. write the container's state record, flock(2)ed by this engine, its
//     owner: from now on every minictr sees a container that is alive
//     exactly as long as the lock is held, in whatever PID namespace or
//     run root it looks from;
//  3. lease the image (RunOptions.Lease), so that rmi and prune leave its
//     layers alone; a start that loses the race to an rmi fails cleanly;
//  4. prepare the snapshot (pkg/snapshot) in a directory whose record,
//     locked too, names this boot: directories only, and its mounts as
//     data; overlayfs support is probed once per host, root and boot and
//     kept in the run root;
//  5. create a cgroup and write the limits (cgroups(7));
//  6. re-execute this binary as "minictr init" with new namespaces
//     (clone(2)); the child waits on a socket before doing anything;
//  7. move the child into the cgroup, record it, and release it with its
//     init spec (the Process, the root and its mounts);
//  8. the child, now PID 1 of its PID namespace, runs the init checklist:
//     the snapshot's overlay and the other mounts inside its own mount
//     namespace, pivot_root(2), host name, user, working directory,
//     capabilities, then execve(2) of the user's command; a failure on the
//     way comes back over the socket as an error with an exit code;
//  9. forward signals, wait, and turn the way the process ended into an
//     exit status (128+N for signal N, 137 with a note for an OOM kill);
//  10. undo, last step first: cgroup, snapshot, lease, state record.
//
// Host side effects: a cgroup named minictr-<id> in each hierarchy, a
// directory <run-root>/containers/<id>, for an image a snapshot directory
// <root>/containers/<id> and a lease in the image store, all removed by Run
// before it returns. Nothing is mounted on the host: the container's mounts
// live in its mount namespace and vanish with it. If the engine itself is
// killed, the next command that changes state reclaims the rest (Reap), at
// once: the kernel let go of its locks. After a reboot, which empties the
// run root, the snapshot's own record says it was a run of another boot.
// With --rootfs, the directory is the container's root itself, as with
// runc: mount points it lacks (/proc, /sys, /dev) and a missing working
// directory are created in it and stay, like anything the container writes
// there.
package container
