// Command mkrootfs makes a minimal busybox root filesystem from the host's
// static busybox (Debian's busybox-static): the root the demo and the
// lessons run. Usage: go run ./scripts/mkrootfs DIR
package main

import (
	"fmt"
	"os"

	"github.com/minictr/minictr/internal/testenv"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkrootfs DIR")
		os.Exit(2)
	}
	if err := testenv.BusyboxRootfs(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mkrootfs:", err)
		os.Exit(1)
	}
}
