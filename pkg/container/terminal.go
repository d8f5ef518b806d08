package container

import (
	"io"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// foregroundTerminal returns stdin when it is a terminal whose foreground
// process group is ours: then the container gets the terminal for its run
// (its own process group in the foreground, so Ctrl-C goes to it once and
// it can read the keyboard), and minictr takes it back afterwards. It
// returns nil otherwise, e.g. for `minictr run ... &` from a shell, which
// must not steal the terminal from that shell.
func foregroundTerminal(stdin io.Reader) *os.File {
	f, ok := stdin.(*os.File)
	if !ok {
		return nil
	}
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	if err != nil || pgrp != unix.Getpgrp() {
		return nil
	}
	return f
}

// takeTerminalBack makes minictr's process group the terminal's foreground
// again. A background process doing so gets SIGTTOU unless it ignores it.
func takeTerminalBack(term *os.File) error {
	signal.Ignore(unix.SIGTTOU)
	defer signal.Reset(unix.SIGTTOU)
	return unix.IoctlSetPointerInt(int(term.Fd()), unix.TIOCSPGRP, unix.Getpgrp())
}
