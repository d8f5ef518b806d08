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
	sock  *os.File
	files []*os.File // sent with the payload (Release's files), close-on-exec
}

// Files are the files the parent sent with the payload, in Release's
// order; nil when it sent none. They are close-on-exec: the user's program
// never inherits them.
func (r *Reporter) Files() []*os.File { return r.files }

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
	payload, files, err := readFrameFiles(r.sock)
	r.files = files
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

// readFrameFiles is readFrame that also receives the files attached to the
// frame's first byte (writeFrameFiles), close-on-exec at once.
func readFrameFiles(sock *os.File) ([]byte, []*os.File, error) {
	var size [4]byte
	oob := make([]byte, unix.CmsgSpace(4*maxFiles))
	conn, err := sock.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var n, oobn int
	var rerr error
	err = conn.Read(func(fd uintptr) bool {
		for {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), size[:], oob, unix.MSG_CMSG_CLOEXEC)
			if rerr != unix.EINTR {
				return true
			}
		}
	})
	if err == nil && rerr != nil {
		err = os.NewSyscallError("recvmsg", rerr)
	}
	if err != nil {
		return nil, nil, err
	}
	files, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return nil, files, io.EOF
	}
	if _, err := io.ReadFull(sock, size[n:]); err != nil {
		return nil, files, err
	}
	payload, err := readPayload(sock, size)
	return payload, files, err
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, os.NewSyscallError("parsing SCM_RIGHTS", err)
	}
	var files []*os.File
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, os.NewSyscallError("parsing SCM_RIGHTS", err)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "received"))
		}
	}
	return files, nil
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	return readPayload(r, size)
}

func readPayload(r io.Reader, size [4]byte) ([]byte, error) {
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
	if len(files) > maxFiles {
		return fmt.Errorf("telling the parent set-up is done: %d files are over the %d limit", len(files), maxFiles)
	}
	if err := writeFrameFiles(r.sock, data, files); err != nil {
		return fmt.Errorf("telling the parent set-up is done: %w", err)
	}
	var goAhead [1]byte
	if _, err := io.ReadFull(r.sock, goAhead[:]); err != nil {
		return fmt.Errorf("waiting for the parent's go-ahead: %w", err)
	}
	return nil
}

// answer is a message from the child: "ready", or the error that stopped
// it. A successful exec sends nothing: it closes the socket.
type answer struct {
	Ready   bool   `json:"ready,omitempty"`
	Message string `json:"message,omitempty"`
	Code    int    `json:"code,omitempty"`
}
