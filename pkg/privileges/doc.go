// Package privileges takes away what a container's process does not need
// before it runs: capabilities, the root user, and the ability to gain
// privileges back.
//
// # The kernel features
//
// capabilities(7) split root's power into about 40 pieces (CAP_NET_ADMIN,
// CAP_SYS_ADMIN, ...). Each thread has a bounding set (the most it can ever
// get back, lowered with prctl(2) PR_CAPBSET_DROP), and permitted,
// effective, inheritable and ambient sets, read and written with capget(2)
// and capset(2). A container keeps docker's 14 capabilities by default.
//
// credentials(7): setgroups(2), setresgid(2) and setresuid(2) switch to the
// container's user; the user and its groups are looked up in the image's
// own /etc/passwd and /etc/group, not the host's.
//
// PR_SET_NO_NEW_PRIVS (prctl(2)) makes execve(2) ignore setuid bits and
// file capabilities, so the process and its children can never gain more.
//
// # Host side effects
//
// None. Everything changes the calling thread's own credentials, which die
// with the container's processes. LookupUser only reads files.
package privileges
