// Package namespaces starts a container's first process in new Linux
// namespaces, and joins the namespaces of a running one.
//
// A namespace gives a process its own copy of one global resource
// (namespaces(7)): its hostname (UTS), its process IDs (PID), its mount
// table (mnt), its System V IPC objects (IPC), its network stack (net), its
// view of the cgroup tree (cgroup) and its user and group IDs with the
// capabilities that go with them (user). A process gets new ones when it
// is created, with clone(2) flags such as CLONE_NEWUTS, or later with
// unshare(2), and enters existing ones with setns(2). Each namespace shows
// as a link in /proc/PID/ns: two processes share a namespace when the
// links name the same inode. User namespaces map IDs inside to IDs
// outside through /proc/PID/uid_map and gid_map (user_namespaces(7)).
//
// # Starting a container init
//
// A Go program cannot fork and keep running Go code in the child, so
// minictr re-executes its own binary (/proc/self/exe) in the new
// namespaces and talks to it over a socket:
//
//  1. Start makes a unix socketpair and starts the binary with
//     clone(CLONE_NEWUTS|CLONE_NEWPID|...), argv[0] "minictr", the child's
//     end of the socket as fd 3 and _MINICTR_INIT_FD=3 in its environment.
//     With a user namespace, Go writes the uid and gid maps before the child
//     runs on, and the child becomes uid 0 inside. Start closes its copy of
//     the child's end at once, so the child's death always shows as EOF.
//  2. The child's main calls Handshake, which blocks reading fd 3.
//  3. Meanwhile the parent does what must happen before the container runs:
//     put the child's PID in a cgroup, wire its network.
//  4. Release sends the payload (the init spec) as a 4-byte length and the
//     bytes, and reads the answer. Files may travel with it (SCM_RIGHTS,
//     unix(7)): what the parent could only make once the child existed,
//     such as a mount idmapped through the child's user namespace. With a
//     uid map written by root, setgroups stays allowed and the child drops
//     the parent's supplementary groups.
//  5. Handshake returns the payload; if a cgroup namespace was requested it
//     unshares it now, so that the cgroup the parent chose is its root.
//  6. The child sets up the container (mounts, hostname, privileges), then
//     reports Ready, with any files it hands over (the master of a
//     terminal it made, passed as SCM_RIGHTS), and waits; Release runs the
//     caller's ready hook (the engine writes the pids limit there, and
//     takes the files: Child.Files) and sends the go-ahead.
//  7. The child execs the user's command. The socket is close-on-exec, so
//     a successful exec closes it and Release reads EOF: it returns nil.
//  8. If set-up fails, the child calls Reporter.Fail, which writes a JSON
//     InitError (message and exit code), and exits; Release returns it.
//     The Ready report is mandatory: a socket that closes before it is a
//     child that died without a word (or exec'd too early, and is killed),
//     and Release returns an error with the exit status.
//
// The shell equivalent of step 1 is unshare(1):
// unshare --uts --pid --mount --ipc --net --fork CMD.
//
// Config.NewSession starts the child in a session of its own (setsid(2)):
// the caller's terminal is not its controlling terminal, so nothing in the
// container can reach it through /dev/tty or TIOCSTI. Config.Exe re-executes
// an open file instead of a path: SealedExe opens the binary through a
// read-only overlayfs attached to no mount namespace, so that the child's
// /proc/PID/exe cannot be written (CVE-2019-5736), as runc 1.2 does.
//
// # Joining a running container
//
// Join moves one OS thread into a container's namespaces with setns(2),
// like nsenter(1). It cannot join a user namespace: the kernel allows that
// only to a single-threaded process, which a running Go program never is.
// The nsenter subpackage does it with a small C constructor that runs
// before the Go runtime starts.
//
// # Host side effects
//
// SealedExe creates an empty directory (0700) for the overlay's second
// layer, which stays for the next start; its overlay is never attached to
// a mount namespace and goes away with the last process running from it.
// Nothing else persists. Namespaces are reference-counted by the kernel and vanish
// with their last process (or last open /proc/PID/ns file or bind mount,
// which this package never makes). Killing the container's processes is
// all the clean-up there is; the child is started with a parent-death
// signal (SIGKILL), so it also dies with the engine that started it.
package namespaces
