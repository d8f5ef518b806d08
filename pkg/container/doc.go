// Package container is the engine: the one place that composes the stages
// (snapshot, namespaces, chroot, cgroups, privileges) into a container's
// life.
//
// # Running a container
//
// Run takes a Spec and goes through a checklist of named steps, each
// reported to a trace.Tracer and each pushing its own undo:
//
//  1. validate the spec, once, before anything exists, and start
//     compiling its seccomp profile (pkg/seccomp) in a goroutine;
//  2. write the container's state record, flock(2)ed by this engine, its
//     owner: from now on every minictr sees a container that is alive
//     exactly as long as the lock is held, in whatever PID namespace or
//     run root it looks from; with --userns=auto, take a free range of
//     host IDs into that record (userns.go);
//  3. lease the image (RunOptions.Lease), so that rmi and prune leave its
//     layers alone; a start that loses the race to an rmi fails cleanly;
//  4. prepare the snapshot (pkg/snapshot) in a directory whose record,
//     locked too, names this boot: directories only, and its mounts as
//     data; overlayfs support is probed once per host, root and boot and
//     kept in the run root;
//  5. create a cgroup and write the limits (cgroups(7)); take the
//     compiled seccomp filter, or refuse a profile under which the init
//     could not exec, before any process exists;
//  6. re-execute this binary as "minictr init" with new namespaces
//     (clone(2)), in a session of its own (setsid(2)), with pipes as its
//     stdio, from a read-only overlayfs of the binary that no container
//     process can write through /proc/PID/exe (namespaces.SealedExe);
//     the child waits on a socket before doing anything; with a user
//     namespace, make the overlay of idmapped layers now that the
//     namespace exists, as a detached mount that goes with the init spec;
//  7. move the child into the cgroup, record it, and release it with its
//     init spec (the Process, the root and its mounts);
//  8. the child, now PID 1 of its PID namespace, runs the init checklist:
//     the snapshot's overlay and the other mounts inside its own mount
//     namespace, pivot_root(2), host name, a session keyring of its own
//     (keyctl(2)), with -t a terminal in its own /dev/pts (its master
//     goes back to the engine), user, working directory, the seccomp
//     filter (before the capability drop without no_new_privs, as it then
//     needs CAP_SYS_ADMIN; last before exec with it), capabilities, then
//     execve(2) of the user's command; a failure on the way comes back
//     over the socket as an error with an exit code;
//  9. copy the container's output (and with -i its input), forward
//     signals, wait, and turn the way the process ended into an exit
//     status (128+N for signal N, 137 with a note for an OOM kill);
//  10. undo, last step first: cgroup, snapshot, lease, state record.
//
// Host side effects: a cgroup named minictr-<id> in each hierarchy, a
// directory <run-root>/containers/<id>, for an image a snapshot directory
// <root>/containers/<id> and a lease in the image store, all removed by Run
// before it returns; compiled seccomp filters in <run-root>/seccomp and
// an empty directory <run-root>/exe-lower (or minictr-exe-lower in the
// temporary directory), the sealed binary's second layer, stay for the next
// start. Nothing is mounted on the host: the container's mounts
// live in its mount namespace and vanish with it. If the engine itself is
// killed, the next command that changes state reclaims the rest (Reap), at
// once: the kernel let go of its locks. After a reboot, which empties the
// run root, the snapshot's own record says it was a run of another boot.
// With --rootfs, the directory is the container's root itself, as with
// runc: mount points it lacks (/proc, /sys, /dev) and a missing working
// directory are created in it and stay, like anything the container writes
// there. With --userns=auto, the lock file <run-root>/userns.lock stays
// (empty), and <root> and <root>/containers get o+x so that the
// container's root can reach its root directory.
package container
