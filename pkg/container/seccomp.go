package container

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/internal/atomicfile"
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
func (s *Spec) seccompProfile() (p *seccomp.Profile, source []byte, confined bool, err error) {
	switch {
	case s.Privileged || s.Seccomp == SeccompUnconfined:
		return nil, nil, false, nil
	case s.Seccomp == "":
		return nil, nil, true, nil
	}
	data, err := os.ReadFile(s.Seccomp)
	if err != nil {
		return nil, nil, false, fmt.Errorf("%w: seccomp profile: %w", ErrInvalidSpec, err)
	}
	if p, err = seccomp.Parse(data); err != nil { // it says "seccomp profile"
		return nil, nil, false, fmt.Errorf("%w: %s: %w", ErrInvalidSpec, s.Seccomp, err)
	}
	return p, data, true, nil
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
	cache   string // the file it is kept in
	cached  bool   // read from there, not compiled
	err     error
}

// compileSeccomp compiles the profile (nil: the default; source is the
// file's content) for the capabilities the container keeps, in a
// goroutine: the engine's next steps (state record, snapshot, cgroup) run
// meanwhile, and the init only has to install the result. The channel
// delivers once.
//
// A compiled filter that passed checkInitCalls is kept in cacheDir, named
// after everything it depends on (filterKey): a later start with the same
// profile and capabilities reads 3 KB instead of parsing and compiling,
// about 0.7 ms of CPU.
func compileSeccomp(p *seccomp.Profile, source []byte, name string, caps []string, earlyInstall bool, cacheDir string) <-chan compiled {
	out := make(chan compiled, 1)
	go func() {
		var c compiled
		defer func() { out <- c }()
		cache := ""
		if key, err := filterKey(source, caps, earlyInstall); err == nil {
			cache = filepath.Join(cacheDir, key)
			var f seccomp.Filter
			if data, err := os.ReadFile(cache); err == nil && f.UnmarshalBinary(data) == nil {
				c.program, c.length, c.cache, c.cached = data, len(f.Program), cache, true
				return
			}
		}
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
		if c.err == nil && cache != "" && os.MkdirAll(cacheDir, 0o700) == nil &&
			atomicfile.Write(cache, c.program, 0o600) == nil { // a cache: without it, compile again
			c.cache = cache
		}
	}()
	return out
}

// filterKey names a compiled filter after what it is compiled from: the
// profile (a file's content; for the default, this very binary, which
// embeds it), the capabilities, the running kernel (rules name a minimum
// kernel) and the architecture, and the init's order (checkInitCalls).
func filterKey(source []byte, caps []string, earlyInstall bool) (string, error) {
	h := sha256.New()
	if source == nil {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/exe", &st); err != nil {
			return "", err
		}
		fmt.Fprintf(h, "default profile of the binary %d:%d size %d mtime %d.%d\n", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
	} else {
		fmt.Fprintf(h, "profile %x\n", sha256.Sum256(source))
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	fmt.Fprintf(h, "caps %q\nkernel %s\narch %s\nearly %t\n", caps, unix.ByteSliceToString(u.Release[:]), seccomp.Native, earlyInstall)
	return fmt.Sprintf("%x.bpf", h.Sum(nil)), nil
}

// initCalls are the syscalls the init still makes once its filter is
// installed: the exec itself, reporting a failure of it, and what the Go
// runtime does meanwhile. A profile that refuses one of them would stop
// every container before the user's program starts: refuse the profile
// instead, with the call it blocks.
var initCalls = []string{
	"execve", "write", "close", "exit_group", "exit", "futex", "nanosleep",
	"sched_yield", "rt_sigreturn", "rt_sigprocmask", "mmap", "munmap", "madvise",
	"tgkill", "getpid", "gettid", "clone",
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
		var args []uint64
		if call == "clone" {
			// A new thread of the Go runtime, which may start one at any
			// time (runtime/os_linux.go's cloneFlags).
			args = []uint64{unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM | unix.CLONE_THREAD}
		}
		act, _, err := f.Evaluate(seccomp.Native, call, args...)
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
	how := fmt.Sprintf("compiled %s for this container's capabilities: %d BPF instructions, for the init to install", profileName(r.o.Spec.Seccomp), c.length)
	switch {
	case c.cached:
		how = fmt.Sprintf("%s for this container's capabilities, compiled by an earlier start: %d BPF instructions read from %s, for the init to install", profileName(r.o.Spec.Seccomp), c.length, c.cache)
	case c.cache != "":
		how += " (kept in " + c.cache + ")"
	}
	r.t.Step("seccomp", how, "")
	return nil
}
