package cli

import (
	"fmt"
	"io"
	"os"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/minictr/minictr/internal/atomicfile"
	"github.com/minictr/minictr/pkg/image"
)

func newSaveCmd(g *globals) *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save [flags] IMAGE [IMAGE...]",
		Short: "Write images to a tar archive (docker save format, or OCI)",
		Example: "  minictr save -o busybox.tar busybox\n" +
			"  minictr save --format oci-archive -o busybox-oci.tar busybox   # skopeo: oci-archive:busybox-oci.tar",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" && isTerminal(g.stdout) {
				return usageError{fmt.Errorf("refusing to write an archive to a terminal: use -o FILE or redirect stdout")}
			}
			store, err := g.readStore()
			if err != nil {
				return err
			}
			if output == "" {
				return store.Save(g.stdout, args, format)
			}
			// Into what the user named, as docker does: through a symlink,
			// into a device or FIFO as a stream; a regular file is written
			// beside its name and renamed, so an interrupted save leaves no
			// truncated archive behind.
			return atomicfile.Output(output, 0o644, func(w io.Writer) error {
				return store.Save(w, args, format)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	cmd.Flags().StringVar(&format, "format", image.DockerArchive, "docker-archive or oci-archive")
	return cmd
}

func newLoadCmd(g *globals) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "load [flags]",
		Short:   "Read images from a tar archive (docker save format, or OCI) or an OCI layout directory",
		Example: "  minictr load -i busybox.tar\n  skopeo copy ... oci:dir && minictr load -i dir",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.imageStore()
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			var loaded []string
			if info, statErr := os.Stat(input); input != "" && statErr == nil && info.IsDir() {
				loaded, err = store.LoadLayout(ctx, input)
			} else {
				var r io.Reader = g.stdin
				if input != "" {
					f, err := os.Open(input)
					if err != nil {
						return err
					}
					defer f.Close()
					r = f
				}
				loaded, err = store.Load(ctx, r)
			}
			for _, l := range loaded {
				if !quiet {
					fmt.Fprintf(g.stdout, "Loaded image: %s\n", l)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from this file (or OCI layout directory) instead of stdin")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing")
	return cmd
}

func newImagePruneCmd(g *globals) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove untagged images (all unused ones with -a) and unreferenced layers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// docker asks for confirmation without -f; minictr never prompts,
			// -f is accepted so that docker habits work.
			_ = force
			store, err := g.imageStore()
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			removed, freed, err := store.Prune(ctx, image.PruneOptions{All: all})
			if err != nil {
				return err
			}
			if len(removed) > 0 {
				fmt.Fprintln(g.stdout, "Deleted Images:")
				for _, id := range removed {
					fmt.Fprintf(g.stdout, "deleted: %s\n", id)
				}
				fmt.Fprintln(g.stdout)
			}
			_, err = fmt.Fprintf(g.stdout, "Total reclaimed space: %s\n", units.HumanSize(float64(freed)))
			return err
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove all images no container uses, not only untagged ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt (minictr never prompts)")
	return cmd
}
