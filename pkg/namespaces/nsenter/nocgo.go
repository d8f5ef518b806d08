//go:build !cgo

package nsenter

// Without cgo there is no constructor: Command and Run return ErrNoCgo.
const available = false

func constructorError() error { return ErrNoCgo }

func pidNamespaceFD() int { return -1 }
