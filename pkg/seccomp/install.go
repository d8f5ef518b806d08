package seccomp

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/trace"
)

const stage = "seccomp"

// Install makes f the seccomp filter of every thread of this process, for
// good: seccomp(2) SECCOMP_SET_MODE_FILTER with SECCOMP_FILTER_FLAG_TSYNC.
// The filter is inherited across fork and execve and can never be removed,
// only stacked on.
//
// TSYNC matters in Go: the runtime runs goroutines on many threads, and a
// filter on one thread alone would leave the others (and the children
// they start) unfiltered.
//
// The kernel lets an unprivileged process install a filter only once it
// has set no_new_privs (otherwise a filter could fool a setuid program);
// with CAP_SYS_ADMIN it needs not. no_new_privs belongs to a thread: call
// Install from the goroutine that set it (privileges.Apply locks that
// goroutine to its thread), or it fails with EACCES. Install it last
// before execve: from then on the init itself is filtered.
func Install(f *Filter, t trace.Tracer) error {
	if f == nil || len(f.Program) == 0 {
		return errors.New("seccomp: empty filter")
	}
	if len(f.Program) > maxInstructions {
		return fmt.Errorf("seccomp: filter has %d instructions, the kernel takes at most %d", len(f.Program), maxInstructions)
	}
	prog := unix.SockFprog{Len: uint16(len(f.Program)), Filter: &f.Program[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return os.NewSyscallError("seccomp SECCOMP_SET_MODE_FILTER", errno)
	}
	if r != 0 {
		// With TSYNC, a positive result is a thread that could not take
		// the filter (it has a filter of its own that is not an ancestor).
		return fmt.Errorf("seccomp: thread %d could not be synchronized", r)
	}
	trace.Or(t).Step(stage, fmt.Sprintf("seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, %d instructions)", len(f.Program)), "")
	return nil
}
