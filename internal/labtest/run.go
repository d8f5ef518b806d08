package labtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A Shell says how to start the sh session a block runs in.
type Shell struct {
	Args    []string      // e.g. {"sh", "-l"}: the lab's login shell reads /etc/profile
	Dir     string        // where each block starts
	Env     []string      // nil: this process's environment
	Timeout time.Duration // per step
}

// A Failure is a step that did not do what the README shows.
type Failure struct {
	Step   Step
	Status int    // exit status, -1 when the step never finished
	Got    string // its output
	Reason string
}

func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d: $ %s%s\n", f.Step.Line, bang(f.Step), f.Step.Command)
	fmt.Fprintf(&b, "  %s (exit status %d)\n", f.Reason, f.Status)
	if len(f.Step.Want) > 0 {
		b.WriteString("  want:\n")
		for _, l := range f.Step.Want {
			b.WriteString("    " + l + "\n")
		}
	}
	b.WriteString("  got:\n")
	for _, l := range lines(f.Got) {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func bang(s Step) string {
	if s.MustFail {
		return "! "
	}
	return ""
}

// RunBlock runs a block's steps one after the other in one shell and
// returns the first failure (nil when every step did what the README
// shows). The shell, and anything the steps left running, is killed at the
// end.
func RunBlock(b Block, sh Shell) error {
	s, err := startSession(sh)
	if err != nil {
		return err
	}
	grace := 10 * time.Second
	defer func() { s.close(grace) }()
	for _, step := range b.Steps {
		out, status, err := s.run(step.Command, sh.Timeout)
		if err != nil {
			grace = 0 // a step that hangs would only hang the end too
			return &Failure{Step: step, Status: -1, Got: out, Reason: err.Error()}
		}
		if f := check(step, out, status); f != nil {
			return f
		}
	}
	return nil
}

// check compares one step's result with the README.
func check(step Step, out string, status int) *Failure {
	switch {
	case step.MustFail && status == 0:
		return &Failure{Step: step, Status: status, Got: out, Reason: "succeeded, but the README marks it \"$ !\": it must fail"}
	case !step.MustFail && status != 0:
		return &Failure{Step: step, Status: status, Got: out, Reason: "failed"}
	case len(step.Want) > 0 && !Match(step.Want, lines(out)):
		return &Failure{Step: step, Status: status, Got: out, Reason: "printed something else than the README shows"}
	}
	return nil
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// session is one sh process fed a step at a time on its stdin; after each
// step it prints a marker with the step's exit status, so that the output
// of the step is what came before the marker.
type session struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *os.File
	marker string
	buf    []byte
	chunks chan []byte // closed when the shell and its children closed the pipe
}

func startSession(sh Shell) (*session, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &session{
		cmd:    exec.Command(sh.Args[0], sh.Args[1:]...),
		out:    r,
		marker: "@@labtest-" + hex.EncodeToString(id[:]) + "@@",
		chunks: make(chan []byte),
	}
	s.cmd.Dir, s.cmd.Env = sh.Dir, sh.Env
	// One pipe for stdout and stderr keeps their lines in the order a
	// terminal would show them.
	s.cmd.Stdout, s.cmd.Stderr = w, w
	// Its own process group, so that the end of the block kills the steps'
	// background processes too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("starting %s: %w", strings.Join(sh.Args, " "), err)
	}
	w.Close()
	go s.read()
	return s, nil
}

// read forwards the shell's output until every writer has closed the pipe.
func (s *session) read() {
	defer close(s.chunks)
	for {
		b := make([]byte, 32*1024)
		n, err := s.out.Read(b)
		if n > 0 {
			s.chunks <- b[:n]
		}
		if err != nil {
			return
		}
	}
}

// run sends one step: the command in a group whose stdin is /dev/null (so
// that it cannot eat the steps after it), then the marker line.
func (s *session) run(command string, timeout time.Duration) (string, int, error) {
	script := fmt.Sprintf("{\n%s\n} </dev/null\nprintf '\\n%s %%d\\n' \"$?\"\n", command, s.marker)
	if _, err := io.WriteString(s.stdin, script); err != nil {
		return "", -1, fmt.Errorf("the shell is gone: %w", err)
	}
	deadline := time.After(timeout)
	end := []byte("\n" + s.marker + " ")
	for {
		if i := bytes.Index(s.buf, end); i >= 0 {
			rest := s.buf[i+len(end):]
			if j := bytes.IndexByte(rest, '\n'); j >= 0 {
				out := string(s.buf[:i])
				status, err := strconv.Atoi(string(rest[:j]))
				s.buf = append([]byte(nil), rest[j+1:]...)
				if err != nil {
					return out, -1, fmt.Errorf("bad marker line: %w", err)
				}
				return out, status, nil
			}
		}
		select {
		case c, ok := <-s.chunks:
			if !ok {
				return string(s.buf), -1, errors.New("the shell ended before the step did (an exit in the command?)")
			}
			s.buf = append(s.buf, c...)
		case <-deadline:
			return string(s.buf), -1, fmt.Errorf("timed out after %v", timeout)
		}
	}
}

// close ends the shell (an EOF on its stdin, so that its EXIT trap runs,
// given grace to do so) and then kills what the steps left running in its
// group.
func (s *session) close(grace time.Duration) {
	s.stdin.Close()
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	// The reader may be blocked handing over a last chunk; once the pipe
	// is closed it ends and closes chunks.
	go func() {
		for range s.chunks {
		}
	}()
	s.out.Close()
}
