// Package trace is the instructor view of minictr: every stage reports each
// kernel-level step it takes (a clone flag, a mount, a cgroup file write, a
// capability change, an exec) to one Tracer, together with the shell command
// that would do the same by hand.
//
// It is the one package every stage may import: a leaf with no dependencies
// beyond the standard library, so the stages stay independent of each other.
package trace

import (
	"fmt"
	"io"
	"sync"
)

// A Tracer receives the steps of the engine as they happen.
type Tracer interface {
	// Step records one action. stage names the package that took it
	// ("namespaces", "cgroups", "chroot", ...), action says what was done in
	// the words of the syscall or file involved, and shell is the command a
	// person would type for the same effect, or "" when there is none.
	Step(stage, action, shell string)
}

// Discard is the Tracer that ignores everything: a quiet library by default.
var Discard Tracer = discard{}

type discard struct{}

func (discard) Step(string, string, string) {}

// Or returns t, or Discard when t is nil, so that callers can leave the
// tracer unset.
func Or(t Tracer) Tracer {
	if t == nil {
		return Discard
	}
	return t
}

// New returns a Tracer that prints each step to w as
//
//	[stage] action
//	        $ shell
//
// It is safe for concurrent use.
func New(w io.Writer) Tracer {
	return &writer{w: w}
}

type writer struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *writer) Step(stage, action, shell string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "[%s] %s\n", stage, action)
	if shell != "" {
		fmt.Fprintf(t.w, "%*s$ %s\n", len(stage)+3, "", shell)
	}
}

// Recorder keeps the steps in memory; tests use it to check what a stage did.
type Recorder struct {
	mu    sync.Mutex
	Steps []Recorded
}

// Recorded is one step kept by a Recorder.
type Recorded struct{ Stage, Action, Shell string }

// Step implements Tracer.
func (r *Recorder) Step(stage, action, shell string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Steps = append(r.Steps, Recorded{stage, action, shell})
}
