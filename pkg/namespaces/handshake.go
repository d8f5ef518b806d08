package namespaces

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNotChild is returned by Handshake in a process that Start did not
// start.
var ErrNotChild = errors.New("not started by namespaces.Start: " + envInitFD + " is not set")

// A Reporter is the child's end of the handshake socket, kept open until
// exec so that a set-up failure can still be reported.
type Reporter struct {
	sock *os.File
}

// Handshake is the first thing the re-executed child does. It finds its
// end of the socket, blocks until the parent calls Release and returns the
// payload. If the cgroup namespace was requested it unshares it now: the
// parent has moved the child into its cgroup by then, so that cgroup
// becomes the root of the child's view.
//
// Handshake locks the calling goroutine to its OS thread for good: a
// namespace made by unshare(2) belongs to the calling thread only, and
// execve(2) keeps the namespaces of the thread that calls it. Call
// Handshake, and exec, from the same goroutine.
//
// On error the Reporter is still returned when the socket was found, so
// that the failure can be sent to the parent.
func Handshake() ([]byte, *Reporter, error) {
	runtime.LockOSThread() // never unlocked: see above
	fd, kinds, err := handshakeEnv()
	if err != nil {
		return nil, nil, err
	}
	// exec.Cmd dup2()ed the socket onto fd 3, which clears close-on-exec:
	// set it again, so that a successful exec closes the socket.
	unix.CloseOnExec(fd)
	r := &Reporter{sock: os.NewFile(uintptr(fd), "init-handshake")}
	payload, err := readFrame(r.sock)
	if err != nil {
		return nil, r, fmt.Errorf("reading the init payload from fd %d: %w", fd, err)
	}
	if has(kinds, Cgroup) {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return nil, r, os.NewSyscallError("unshare(CLONE_NEWCGROUP)", err)
		}
	}
	return payload, r, nil
}

// handshakeEnv reads and removes the variables Start set.
func handshakeEnv() (int, []Kind, error) {
	fdText, ok := os.LookupEnv(envInitFD)
	if !ok {
		return -1, nil, ErrNotChild
	}
	names := os.Getenv(envNamespaces)
	os.Unsetenv(envInitFD)
	os.Unsetenv(envNamespaces)
	fd, err := strconv.Atoi(fdText)
	if err != nil || fd < 0 {
		return -1, nil, fmt.Errorf("%s=%q is not a file descriptor", envInitFD, fdText)
	}
	kinds, err := ParseKinds(names)
	if err != nil {
		return -1, nil, fmt.Errorf("%s=%q: %w", envNamespaces, names, err)
	}
	return fd, kinds, nil
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > maxPayload {
		return nil, fmt.Errorf("payload of %d bytes is over the %d limit", n, maxPayload)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	return payload, nil
}

// Fail sends err to the parent, whose Release returns it as an *InitError
// with code as the exit status the CLI should use (125 set-up failed, 126
// not executable, 127 not found). The socket is closed afterwards; the
// caller then exits.
func (r *Reporter) Fail(code int, err error) {
	if r == nil {
		return // Handshake found no socket: there is nobody to tell
	}
	msg := "init failed"
	if err != nil {
		msg = err.Error()
	}
	data, _ := json.Marshal(answer{Message: msg, Code: code}) // cannot fail: strings and an int
	writeFrame(r.sock, data)                                  // nobody to tell if the parent is gone
	r.sock.Close()
}

// Ready tells the parent that set-up is done and waits for its go-ahead.
// Every init must call it, last before exec: Release takes a socket that
// closes without it for a death, never for an exec. The pause is for what
// must come last before exec: the engine writes the
// pids limit there, which a Go init still starting threads could not live
// with earlier (runc writes its cgroup limits at the same point, which it
// calls procReady). An error means the parent refused, or is gone.
//
// files, if any, travel with the message (SCM_RIGHTS, unix(7)): the
// parent's Child.Files returns them, e.g. the master of a terminal the
// child made inside its own /dev/pts. The child may close its copies once
// Ready returns.
func (r *Reporter) Ready(files ...*os.File) error {
	data, _ := json.Marshal(answer{Ready: true})
	if err := sendFrame(r.sock, data, files); err != nil {
		return fmt.Errorf("telling the parent set-up is done: %w", err)
	}
	var goAhead [1]byte
	if _, err := io.ReadFull(r.sock, goAhead[:]); err != nil {
		return fmt.Errorf("waiting for the parent's go-ahead: %w", err)
	}
	return nil
}

// sendFrame writes one frame, with files attached to its first byte.
func sendFrame(sock *os.File, payload []byte, files []*os.File) error {
	if len(files) == 0 {
		return writeFrame(sock, payload)
	}
	if len(files) > maxFiles {
		return fmt.Errorf("%d files to pass, at most %d", len(files), maxFiles)
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	frame := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(frame, uint32(len(payload)))
	copy(frame[4:], payload)
	n, err := unix.SendmsgN(int(sock.Fd()), frame, unix.UnixRights(fds...), nil, 0)
	if err != nil {
		return os.NewSyscallError("sendmsg", err)
	}
	// The files went with the first byte; the rest is a plain write.
	_, err = sock.Write(frame[n:])
	return err
}

// maxFiles bounds the files a frame may carry.
const maxFiles = 4

// readFrameFiles reads one frame and the files attached to it, which are
// close-on-exec in this process.
func readFrameFiles(sock *os.File) ([]byte, []*os.File, error) {
	var size [4]byte
	oob := make([]byte, unix.CmsgSpace(4*maxFiles))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(int(sock.Fd()), size[:], oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, nil, os.NewSyscallError("recvmsg", err)
	}
	files, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) ([]byte, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	if n == 0 {
		return fail(io.EOF)
	}
	if _, err := io.ReadFull(sock, size[n:]); err != nil {
		return fail(err)
	}
	length := binary.BigEndian.Uint32(size[:])
	if length > maxPayload {
		return fail(fmt.Errorf("payload of %d bytes is over the %d limit", length, maxPayload))
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(sock, payload); err != nil {
		return fail(err)
	}
	return payload, files, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, os.NewSyscallError("parsing SCM_RIGHTS", err)
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "from-init"))
		}
	}
	return files, nil
}

// answer is a message from the child: "ready", or the error that stopped
// it. A successful exec sends nothing: it closes the socket.
type answer struct {
	Ready   bool   `json:"ready,omitempty"`
	Message string `json:"message,omitempty"`
	Code    int    `json:"code,omitempty"`
}
