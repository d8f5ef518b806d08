package container

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/minictr/minictr/pkg/seccomp"
)

// SeccompUnconfined is the Spec.Seccomp value for no filter at all, as
// docker's `--security-opt seccomp=unconfined`.
const SeccompUnconfined = "unconfined"

// seccompProfile loads the profile a container runs under: nil and no
// error for none (unconfined or privileged, as in docker, where
// --privileged always means unconfined), nil and true for the default,
// which the compiler loads itself so that its parsing overlaps the start.
// A profile file is read and checked here, before anything exists.
func (s *Spec) seccompProfile() (p *seccomp.Profile, confined bool, err error) {
	switch {
	case s.Privileged || s.Seccomp == SeccompUnconfined:
		return nil, false, nil
	case s.Seccomp == "":
		return nil, true, nil
	}
	p, err = seccomp.Load(s.Seccomp)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, false, fmt.Errorf("%w: seccomp profile: %w", ErrInvalidSpec, err)
	}
	if err != nil { // it names the file and says "seccomp profile"
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return p, true, nil
}

// profileName names a Spec.Seccomp value in messages.
func profileName(file string) string {
	if file == "" {
		return "docker's default seccomp profile"
	}
	return "seccomp profile " + file
}

// compiled is the outcome of compiling the container's seccomp profile.
type compiled struct {
	program []byte // the filter, as MarshalBinary encodes it for the init
	length  int    // its instructions
	err     error
}

// compileSeccomp compiles the profile (nil: the default) for the
// capabilities the container keeps, in a goroutine: the engine's next
// steps (state record, snapshot, cgroup) run meanwhile, and the init only
// has to install the result. The channel delivers once.
func compileSeccomp(p *seccomp.Profile, name string, caps []string, earlyInstall bool) <-chan compiled {
	out := make(chan compiled, 1)
	go func() {
		var c compiled
		defer func() { out <- c }()
		if p == nil {
			if p, c.err = seccomp.Default(); c.err != nil {
				return
			}
		}
		f, err := p.Compile(seccomp.Native, caps)
		if err != nil {
			c.err = fmt.Errorf("%w: %s: %w", ErrInvalidSpec, name, err)
			return
		}
		if c.err = checkInitCalls(f, name, earlyInstall); c.err != nil {
			return
		}
		c.program, c.err = f.MarshalBinary()
		c.length = len(f.Program)
	}()
	return out
}

// initCalls are the syscalls the init still makes once its filter is
// installed: the exec itself, reporting a failure of it, and what the Go
// runtime does meanwhile. A profile that refuses one of them would stop
// every container before the user's program starts: refuse the profile
// instead, with the call it blocks.
var initCalls = []string{
	"execve", "write", "close", "exit_group", "exit", "futex", "nanosleep",
	"sched_yield", "rt_sigreturn", "rt_sigprocmask", "mmap", "munmap", "madvise",
	"tgkill", "getpid", "gettid",
}

// privilegeCalls are the calls that drop privileges (privileges.Apply and
// the init after it): filtered too when the filter must come before them.
var privilegeCalls = []string{
	"prctl", "capget", "capset", "setgroups", "setresgid", "setresuid",
	"openat", "getdents64", "fcntl", "read", "newfstatat", "fstat",
}

// checkInitCalls refuses a filter under which the init could not exec.
func checkInitCalls(f *seccomp.Filter, name string, earlyInstall bool) error {
	calls := initCalls
	if earlyInstall {
		calls = append(calls[:len(calls):len(calls)], privilegeCalls...)
	}
	for _, call := range calls {
		act, _, err := f.Evaluate(seccomp.Native, call)
		if err != nil {
			return err
		}
		if act != seccomp.ActAllow && act != seccomp.ActLog {
			return fmt.Errorf("%w: %s gives %s to %s, which the container's init needs to start the container", ErrInvalidSpec, name, act, call)
		}
	}
	return nil
}

// seccomp waits for the compiled filter and puts it in the init's spec. It
// runs before the init starts: a profile that cannot work starts nothing.
func (r *run) seccomp() error {
	if r.filter == nil {
		return nil // unconfined
	}
	c := <-r.filter
	if c.err != nil {
		var spec error = c.err
		if !errors.Is(spec, ErrInvalidSpec) {
			spec = fmt.Errorf("seccomp profile: %w", c.err)
		}
		return &StartError{Code: 125, Err: spec}
	}
	r.init.Seccomp = c.program
	r.t.Step("seccomp", fmt.Sprintf("compiled %s for this container's capabilities: %d BPF instructions, for the init to install", profileName(r.o.Spec.Seccomp), c.length), "")
	return nil
}
