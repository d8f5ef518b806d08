package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/minictr/minictr/pkg/container"
)

// changesState lists the verbs that change minictr's state, by name (as
// `image rm` and `image prune` name themselves too).
var changesState = map[string]bool{
	"run": true, "rmi": true, "rm": true, "prune": true, "pull": true,
	"push": true, "load": true, "import": true, "tag": true,
}

// reclaim removes what containers of killed engines left (cgroups,
// snapshots, state directories, leases on images) before a verb that
// changes state, so that no command works next to garbage and no garbage
// outlives the next such command. A failure is only worth a warning: the
// verb itself can still do its work.
func (g *globals) reclaim(cmd *cobra.Command) {
	if !changesState[cmd.Name()] {
		return
	}
	err := container.Reap(container.ReapOptions{
		Root:    g.root,
		RunRoot: g.runRoot,
		// Only a container that ran an image holds a lease: open the store
		// only then.
		Release: func(id string) error {
			store, err := g.imageStore()
			if err != nil {
				return err
			}
			return store.Release(id)
		},
		Tracer: g.tracer(),
	})
	if err != nil {
		fmt.Fprintf(g.stderr, "minictr: warning: %v\n", &container.CleanupError{Err: err})
	}
}
