// Command minictr is a small container engine built one kernel feature at a
// time. See README.md for the lessons that explain each piece.
package main

import (
	"os"

	"github.com/minictr/minictr/cmd/minictr/cli"
)

func main() { os.Exit(cli.Main()) }
