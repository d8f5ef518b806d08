// Package seccomp filters the syscalls a container's processes may make:
// it loads profiles in docker's JSON format, compiles them to classic BPF,
// prints the program, and installs it.
//
// # The kernel feature
//
// seccomp(2) with SECCOMP_SET_MODE_FILTER attaches a classic BPF program
// (the filter language of tcpdump, see bpf.go) to a thread. The kernel runs
// it on every syscall, with the syscall's number, ABI and arguments as
// input (struct seccomp_data), and does what it returns: allow the call,
// fail it with an errno, kill the thread or process, trap, log or defer to
// a tracer. Filters are inherited by children and across execve and can
// never be removed. Documentation/userspace-api/seccomp_filter.rst in the
// kernel tells the rest.
//
// A container needs one because namespaces and capabilities leave much of
// the kernel reachable: unshare(CLONE_NEWUSER) hands an unprivileged
// process every capability inside a new user namespace, from which it can
// mount a cgroup hierarchy or reach nf_tables; keyctl reaches keyrings
// that are not namespaced; perf_event_open, userfaultfd and bpf widen the
// kernel's attack surface. Docker's default profile refuses these with
// EPERM; Default is a profile with the same effect.
//
// # Why a compiler of our own
//
// runc and docker compile profiles with libseccomp, a C library reached
// through cgo. minictr builds static binaries (the lab VM runs them with no
// C library to load), and a compiler that a lesson can read top to bottom
// teaches what libseccomp hides. It is small: a linear list of checks
// (with ranges of consecutive numbers), where libseccomp can also build a
// binary tree of syscall numbers, and an assembler of a few instructions
// with labels, which a third-party BPF package (golang.org/x/net/bpf)
// would not save. Syscall numbers come from tables generated from the
// kernel's headers and x/sys (mktables.go).
//
// # Host side effects
//
// None. A filter belongs to the process that installs it and dies with it.
//
// # In a container's init
//
//	p, err := seccomp.Default()                              // or seccomp.Load(path)
//	f, err := p.Compile(seccomp.Native, caps)                // the caps the container keeps
//	act, _, err := f.Evaluate(seccomp.Native, "execve")      // act != ActAllow: refuse the profile
//	... privileges.Apply (capabilities, no_new_privs), on this locked thread ...
//	err = seccomp.Install(f, tracer)                         // last, just before execve
//
// Compile can run in the engine and the program travel to the init with
// MarshalBinary, so that the init only installs it. Unconfined and
// privileged containers skip all of it: no filter is the unconfined one.
package seccomp
