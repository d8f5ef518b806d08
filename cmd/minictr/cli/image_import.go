package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/minictr/minictr/pkg/image"
)

func newImportCmd(g *globals) *cobra.Command {
	var changes []string
	cmd := &cobra.Command{
		Use:   "import [flags] FILE|- [REPOSITORY[:TAG]]",
		Short: "Make an image from a root filesystem tarball",
		Long: "Make a one-layer image from a tar of a root filesystem, as docker import\n" +
			"does. --change sets CMD, ENTRYPOINT, ENV, WORKDIR or USER.",
		Example: "  tar -C rootfs -c . | minictr import --change 'CMD [\"sh\"]' - busybox:local",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = g.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("importing: %w", err)
				}
				defer f.Close()
				in = f
			}
			opts := image.ImportOptions{Changes: changes}
			if len(args) == 2 {
				opts.Ref = args[1]
			}
			store, err := g.imageStore()
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			img, err := store.Import(ctx, in, opts)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, img.ID)
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER)")
	return cmd
}
