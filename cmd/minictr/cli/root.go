// Package cli is the minictr command line: thin cobra verbs that turn flags
// into an options struct, make one library call and render the result.
//
// Errors travel as values up to Main, which prints "minictr: <error>" once
// and returns the exit code docker would: the container's own status, 125
// when the engine fails or a flag does not parse, 126 when the command
// cannot be invoked, 127 when it is not found, and 1 when an image verb
// fails.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/minictr/minictr/pkg/container"
	"github.com/minictr/minictr/pkg/trace"
)

// Exit codes shared with docker.
const (
	exitFailed   = 1   // an image verb failed (docker's image verbs exit 1)
	exitEngine   = 125 // minictr itself failed, or was called wrongly
	exitNoInvoke = 126 // the command exists but cannot be run
	exitNotFound = 127 // the command does not exist
)

// globals holds what every verb shares: the global flags and the terminal.
type globals struct {
	root    string // persistent state: images, containers (--root, MINICTR_ROOT)
	runRoot string // live state a reboot forgets (--run-root, MINICTR_RUN_ROOT)
	explain bool   // print the kernel-level steps as they happen

	stdin          io.Reader
	stdout, stderr io.Writer
}

// tracer is where the stages report their steps: stderr with --explain,
// nowhere otherwise.
func (g *globals) tracer() trace.Tracer {
	if g.explain {
		return trace.New(g.stderr)
	}
	return trace.Discard
}

// Main runs minictr with os.Args and returns its exit code.
func Main() int {
	if container.IsInit() {
		// This process is the re-executed container init, not a user command.
		return container.InitMain()
	}
	g := &globals{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	root := newRootCmd(g)
	root.SetArgs(os.Args[1:])
	return exitCode(g.stderr, root.Execute())
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "minictr",
		Short: "A container engine built one kernel feature at a time",
		Long: "minictr runs containers with the same kernel features docker uses:\n" +
			"namespaces, a pivot_root into a prepared root filesystem, cgroups and\n" +
			"capabilities. Add --explain to any command to watch each step.",
		SilenceErrors: true,
		SilenceUsage:  true,
		// Every verb that changes state first reclaims what dead engines left.
	}
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetIn(g.stdin)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	// A bad global flag is a wrong invocation of any verb, as docker's are.
	// Then reclaim what killed engines left, before a verb that changes state.
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if err := g.check(); err != nil {
			return err
		}
		g.reclaim(cmd)
		return nil
	}
	f := root.PersistentFlags()
	f.StringVar(&g.root, "root", envOr("MINICTR_ROOT", "/var/lib/minictr"), "directory for persistent state (env MINICTR_ROOT)")
	f.StringVar(&g.runRoot, "run-root", envOr("MINICTR_RUN_ROOT", "/run/minictr"), "directory for live state (env MINICTR_RUN_ROOT)")
	f.BoolVar(&g.explain, "explain", false, "print each kernel-level step with its shell equivalent")

	root.AddCommand(newRunCmd(g))
	root.AddCommand(imageCommands(g)...)
	root.AddCommand(newVersionCmd(g))
	return root
}

// check refuses global flags that would make minictr write somewhere the
// user did not mean: an empty --root would put the store in the working
// directory.
func (g *globals) check() error {
	if g.root == "" {
		return usageError{fmt.Errorf("--root (MINICTR_ROOT) is empty: name a directory")}
	}
	if g.runRoot == "" {
		return usageError{fmt.Errorf("--run-root (MINICTR_RUN_ROOT) is empty: name a directory")}
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// usageError marks a wrong invocation (unknown flag, bad value): exit 125.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// failure marks an error with the exit status it means: exitFailed for the
// image verbs (see exitStatus).
type failure struct {
	err  error
	code int
}

func (e failure) Error() string { return e.err.Error() }
func (e failure) Unwrap() error { return e.err }
func (e failure) ExitCode() int { return e.code }

// exitStatus makes every failure of cmd and its subcommands, argument
// errors included, exit with code, as docker's image verbs exit 1. Flag
// errors stay usage errors (125): cobra reports them before RunE.
func exitStatus(cmd *cobra.Command, code int) {
	mark := func(err error) error {
		if err == nil {
			return nil
		}
		var out []error
		for _, e := range leaves(err) {
			if _, ok := e.(exitCoder); !ok {
				e = failure{e, code}
			}
			out = append(out, e)
		}
		return errors.Join(out...)
	}
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error { return mark(run(c, args)) }
	}
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error { return mark(check(c, args)) }
	}
	for _, sub := range cmd.Commands() {
		exitStatus(sub, code)
	}
}

// exitCoder is implemented by errors that know which exit status they mean.
type exitCoder interface{ ExitCode() int }

// exitCode prints err once and maps it to an exit status. A joined error
// is taken apart: clean-up failures become warnings that leave the status
// alone, the container's own ending gives the status, and any other
// failure is printed and decides it.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var exit *container.ExitError
	var failures []error
	for _, e := range leaves(err) {
		var cleanup *container.CleanupError
		switch {
		case errors.As(e, &cleanup):
			fmt.Fprintf(stderr, "minictr: warning: %v\n", e)
		case errors.As(e, &exit):
		default:
			failures = append(failures, e)
		}
	}
	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Fprintf(stderr, "minictr: %v\n", f)
		}
		var coder exitCoder
		if errors.As(failures[0], &coder) {
			return coder.ExitCode()
		}
		return exitEngine
	}
	if exit == nil {
		return 0 // only warnings
	}
	// The container ran: its status is ours. Only an OOM kill deserves a word.
	if exit.OOMKilled {
		fmt.Fprintf(stderr, "minictr: %v\n", exit)
	}
	return exit.Code
}

// leaves flattens errors.Join trees into their members.
func leaves(err error) []error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range joined.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}
