package container

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minictr/minictr/pkg/trace"
)

// streams connects a container's standard streams to the engine's
// (RunOptions' Stdin, Stdout, Stderr) through pipes, or a terminal with
// -t, that the engine copies, as docker does: the container never holds a
// file of the engine's. Passed straight in, the engine's stdin would let
// `sh -c 'echo x > /proc/self/fd/0' < file` reopen and write the host's
// file, and the engine's terminal would let a container push keystrokes
// into the host's shell (TIOCSTI) after it exits.
//
// Without -i (Spec.OpenStdin) the container's stdin is /dev/null, as with
// docker. With -t (Spec.Tty) the init makes a terminal in the container's
// own /dev/pts and sends its master back (namespaces.Reporter.Ready):
// everything the container writes comes out of it, and with -i the
// user's keystrokes go in, the user's terminal in raw mode meanwhile so
// that the container's terminal does the line editing and turns Ctrl-C
// into SIGINT.
type streams struct {
	o *RunOptions
	// init are the init's stdin, stdout and stderr (a nil stdin is
	// /dev/null); the engine closes its copies once the init has them.
	init [3]*os.File
	// ours are the engine's ends, closed when the container is gone.
	ours []*os.File

	copying sync.WaitGroup // copies of the container's output
	master  *os.File       // -t: the container's terminal
	user    *os.File       // the user's terminal, for raw mode and size
	restore *unix.Termios  // the user's terminal mode before raw
	done    sync.Once
}

// outputGrace bounds how long the engine waits, once the container's
// init has exited, for the rest of its output: the kernel kills what is
// left in the container's PID namespace, which closes the pipes at once.
const outputGrace = 2 * time.Second

// newStreams makes the pipes of a container's stdio.
func newStreams(o *RunOptions) (*streams, error) {
	s := &streams{o: o}
	if o.Spec.OpenStdin && !o.Spec.Tty {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		s.init[0], s.ours = r, append(s.ours, w)
	}
	// With -t these carry only what the init says before it switches to
	// the terminal: its own errors.
	for i := 1; i <= 2; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			s.closeAll()
			return nil, err
		}
		s.init[i], s.ours = w, append(s.ours, r)
	}
	s.user = userTerminal(o.Stdin, o.Stdout)
	return s, nil
}

// started runs once the init holds its ends: the engine's copies of them
// go, and the copying starts.
func (s *streams) started() {
	for _, f := range s.init {
		if f != nil {
			f.Close()
		}
	}
	i := 0
	if s.o.Spec.OpenStdin && !s.o.Spec.Tty {
		w := s.ours[0]
		go func() {
			// It may block in a read of the user's terminal after the
			// container is gone; the next write then fails and ends it.
			_, _ = io.Copy(w, orEmpty(s.o.Stdin))
			w.Close()
		}()
		i = 1
	}
	s.copyOut(s.ours[i], s.o.Stdout)
	s.copyOut(s.ours[i+1], s.o.Stderr)
}

func (s *streams) copyOut(from *os.File, to io.Writer) {
	if to == nil {
		to = io.Discard
	}
	s.copying.Add(1)
	go func() {
		defer s.copying.Done()
		// A pipe ends in EOF, a terminal's master in EIO. A destination
		// that fails (a reader gone: `minictr run ... | head -1`) closes
		// our end, so that the container's next write fails as it would
		// on that destination itself (EPIPE, SIGPIPE) instead of blocking
		// on a full pipe.
		if _, err := io.Copy(to, from); err != nil {
			from.Close()
		}
	}()
}

// attachTerminal takes the master of the terminal the init made (-t):
// the container's output comes from it, and with -i the user's input goes
// to it.
func (s *streams) attachTerminal(files []*os.File, t trace.Tracer) error {
	if len(files) != 1 {
		for _, f := range files {
			f.Close()
		}
		return errors.New("the init sent no terminal")
	}
	// A non-blocking copy, which Go's poller takes, so that finish can
	// interrupt a read that waits for output that never comes.
	fd, err := unix.Dup(int(files[0].Fd()))
	files[0].Close()
	if err != nil {
		return os.NewSyscallError("dup", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	unix.CloseOnExec(fd)
	s.master = os.NewFile(uintptr(fd), "/dev/ptmx (container)")
	s.ours = append(s.ours, s.master)
	s.resize()
	if s.o.Spec.OpenStdin {
		if s.user != nil && s.user == s.o.Stdin {
			if err := s.makeRaw(t); err != nil {
				return err
			}
		}
		go func() { _, _ = io.Copy(s.master, orEmpty(s.o.Stdin)) }()
	}
	s.copyOut(s.master, s.o.Stdout)
	return nil
}

// makeRaw puts the user's terminal in raw mode, as cfmakeraw(3) does;
// finish restores it.
func (s *streams) makeRaw(t trace.Tracer) error {
	fd := int(s.user.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return os.NewSyscallError("ioctl TCGETS", err)
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return os.NewSyscallError("ioctl TCSETS", err)
	}
	s.restore = old
	t.Step("engine", "your terminal in raw mode while the container's terminal is attached", "stty raw -echo")
	return nil
}

// resize gives the container's terminal the size of the user's.
func (s *streams) resize() {
	if s.master == nil || s.user == nil {
		return
	}
	ws, err := unix.IoctlGetWinsize(int(s.user.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return
	}
	_ = unix.IoctlSetWinsize(int(s.master.Fd()), unix.TIOCSWINSZ, ws)
}

// finish waits, briefly, for the rest of the container's output, then
// closes the engine's ends and gives the user's terminal its mode back.
func (s *streams) finish() {
	s.done.Do(func() {
		drained := make(chan struct{})
		go func() { s.copying.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(outputGrace):
		}
		s.closeAll()
		if s.restore != nil {
			_ = unix.IoctlSetTermios(int(s.user.Fd()), unix.TCSETS, s.restore)
		}
	})
}

func (s *streams) closeAll() {
	for _, f := range append(s.ours, s.init[:]...) {
		if f != nil {
			f.Close()
		}
	}
}

// userTerminal returns the first of the user's streams that is a
// terminal, or nil.
func userTerminal(in io.Reader, out io.Writer) *os.File {
	for _, s := range []any{in, out} {
		if f, ok := s.(*os.File); ok && isTerminal(f) {
			return f
		}
	}
	return nil
}

// isTerminal reports whether f is a terminal (isatty(3)).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func orEmpty(r io.Reader) io.Reader {
	if r == nil {
		return eofReader{}
	}
	return r
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
