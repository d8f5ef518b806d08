//go:build cgo

package nsenter

/*
extern char minictr_nsenter_op[8], minictr_nsenter_path[64];
extern int minictr_nsenter_errno, minictr_nsenter_pidns_fd;
*/
import "C"

import (
	"os"
	"syscall"
)

// available: the constructor in nsenter.c is linked into this binary.
const available = true

// constructorError returns what the C constructor could not do, as the
// *os.PathError Go would have made (Op "open" or "setns").
func constructorError() error {
	if C.minictr_nsenter_errno == 0 {
		return nil
	}
	return &os.PathError{
		Op:   C.GoString(&C.minictr_nsenter_op[0]),
		Path: C.GoString(&C.minictr_nsenter_path[0]),
		Err:  syscall.Errno(C.minictr_nsenter_errno),
	}
}

// pidNamespaceFD is the target's PID namespace, opened by the constructor
// and left for Go to join, or -1.
func pidNamespaceFD() int { return int(C.minictr_nsenter_pidns_fd) }
