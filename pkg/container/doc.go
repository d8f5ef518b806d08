// Package container is the engine: the one place that composes the stages
// (namespaces, chroot, cgroups, privileges) into a container's life.
//
// # Running a container
//
// Run takes a Spec and goes through the steps docker's runtime takes, each
// reported to a trace.Tracer:
//
//  1. validate the spec and make a state directory under the run root;
//  2. create a cgroup and write the limits (cgroups(7));
//  3. re-execute this binary as "minictr init" with new namespaces
//     (clone(2)); the child waits on a socket before doing anything;
//  4. move the child into the cgroup, then release it with its init spec;
//  5. the child, now PID 1 of its PID namespace, runs the init checklist:
//     mounts and pivot_root(2), host name, user, working directory,
//     capabilities, then execve(2) of the user's command; a failure on the
//     way comes back over the socket as an error with an exit code;
//  6. forward signals, wait, and turn the way the process ended into an
//     exit status (128+N for signal N, 137 with a note for an OOM kill);
//  7. remove the cgroup and the state directory, whatever happened.
//
// Host side effects: a cgroup named minictr-<id> in each hierarchy, a
// directory <run-root>/containers/<id>, and for an image an overlay
// snapshot under <root>/containers/<id>, all removed by Run before it
// returns; if the engine itself is killed, the next Run reclaims them
// (Reap). The container's other mounts live in its mount namespace and
// vanish with it. With --rootfs, the directory is the container's root
// itself, as with runc: mount points it lacks (/proc, /sys, /dev) and a
// missing working directory are created in it and stay, like anything
// the container writes there.
package container
