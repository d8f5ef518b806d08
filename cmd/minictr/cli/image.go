package cli

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/minictr/minictr/pkg/container"
	"github.com/minictr/minictr/pkg/image"
)

// imageCommands are the verbs that manage images: the top-level docker
// spellings (pull, push, images, rmi, tag, history, search, login, logout,
// save, load, import) and the `image` group (inspect, prune, and aliases).
func imageCommands(g *globals) []*cobra.Command {
	group := &cobra.Command{Use: "image", Short: "Manage images"}
	group.AddCommand(newImageInspectCmd(g), newImagePruneCmd(g),
		withName(newImagesCmd(g), "ls"), withName(newRmiCmd(g), "rm"),
		newPullCmd(g), newPushCmd(g), newTagCmd(g), newHistoryCmd(g), newSaveCmd(g), newLoadCmd(g), newImportCmd(g))
	return []*cobra.Command{
		newPullCmd(g), newPushCmd(g), newImagesCmd(g), newRmiCmd(g), newTagCmd(g),
		newHistoryCmd(g), newSearchCmd(g), newLoginCmd(g), newLogoutCmd(g),
		newSaveCmd(g), newLoadCmd(g), newImportCmd(g), group,
	}
}

// withName renames a command for its place in the `image` group.
func withName(c *cobra.Command, name string) *cobra.Command {
	c.Use = name + c.Use[len(c.Name()):]
	return c
}

// registryFlags are the flags of the verbs that talk to a registry.
type registryFlags struct {
	insecure []string
}

func (f *registryFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.insecure, "insecure-registry", nil, "reach this registry (host:port) over plain HTTP (loopback always is)")
}

// imageStore opens the image store under --root.
func (g *globals) imageStore(progress image.Progress, insecure []string) (*image.Store, error) {
	return image.Open(filepath.Join(g.root, "image"), image.Options{
		Tracer:   g.tracer(),
		Progress: progress,
		Insecure: insecure,
		// The engine knows which containers holding leases still live.
		LeaseAlive: func(id string) bool { return container.Alive(g.runRoot, id) },
	})
}

// interruptible is a context cancelled by Ctrl-C or SIGTERM, so that a pull
// stops cleanly and leaves nothing half-written.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func newPullCmd(g *globals) *cobra.Command {
	var quiet bool
	var platform string
	var reg registryFlags
	cmd := &cobra.Command{
		Use:   "pull [flags] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Long: "Download an image, verify every digest, and unpack its layers.\n" +
			"With --explain, each registry request is shown with its curl equivalent.",
		Example: "  minictr pull busybox\n  minictr pull --platform linux/arm64 127.0.0.1:5000/app:v1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := image.PullOptions{}
			if platform != "" {
				p, err := image.ParsePlatform(platform)
				if err != nil {
					return usageError{err}
				}
				opts.Platform = &p
			}
			progress := newProgress(g.stdout, quiet)
			store, err := g.imageStore(progress, reg.insecure)
			if err != nil {
				return err
			}
			ref, err := store.Parse(args[0])
			if err != nil {
				return err
			}
			if !quiet {
				tag := ref.Tag
				if ref.Digest != "" {
					tag = ref.Digest
				}
				fmt.Fprintf(g.stdout, "%s: Pulling from %s\n", tag, ref.Repository)
			}
			before, _ := store.Get(args[0])
			ctx, cancel := interruptible()
			defer cancel()
			img, err := store.Pull(ctx, args[0], opts)
			progress.Wait()
			if err != nil {
				return loginHint(store, args[0], err)
			}
			if !quiet {
				fmt.Fprintf(g.stdout, "Digest: %s\n", repoDigestOf(img, ref))
				status := "Downloaded newer image"
				if before != nil && before.Digest == img.Digest {
					status = "Image is up to date"
				}
				fmt.Fprintf(g.stdout, "Status: %s for %s\n", status, ref)
			}
			_, err = fmt.Fprintln(g.stdout, ref)
			return err
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image reference")
	cmd.Flags().StringVar(&platform, "platform", "", "os/arch[/variant] to pick from a multi-arch image (default: this host's)")
	reg.add(cmd)
	return cmd
}

// loginHint adds to a registry's refusal how to log in.
func loginHint(store *image.Store, ref string, err error) error {
	r, perr := store.Parse(ref)
	if perr != nil || !errors.Is(err, image.ErrUnauthorized) {
		return err
	}
	return fmt.Errorf("%w (log in with: minictr login %s)", err, r.Registry)
}

// repoDigestOf is the digest the image has in ref's repository.
func repoDigestOf(img *image.Image, ref image.Reference) string {
	for _, rd := range img.RepoDigests {
		if name, d, ok := strings.Cut(rd, "@"); ok && name == ref.Name() { // a repository name has no "@"
			return d
		}
	}
	return img.Digest
}

func newPushCmd(g *globals) *cobra.Command {
	var quiet bool
	var reg registryFlags
	cmd := &cobra.Command{
		Use:     "push [flags] NAME[:TAG]",
		Short:   "Upload an image to a registry",
		Long:    "Upload an image. Blobs the registry has are skipped; blobs of another\nrepository of the same registry are mounted instead of sent.",
		Example: "  minictr tag busybox 127.0.0.1:5000/me/busybox:v1\n  minictr push 127.0.0.1:5000/me/busybox:v1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			progress := newProgress(g.stdout, quiet)
			store, err := g.imageStore(progress, reg.insecure)
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			pushed, err := store.Push(ctx, args[0], image.PushOptions{})
			progress.Wait()
			if err != nil {
				return loginHint(store, args[0], err)
			}
			ref, _ := store.Parse(args[0])
			if quiet {
				_, err = fmt.Fprintln(g.stdout, ref)
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "%s: digest: %s size: %d\n", ref.Tag, pushed.Digest, pushed.Size)
			return err
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image reference")
	reg.add(cmd)
	return cmd
}

func newTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short:   "Give an image another name",
		Example: "  minictr tag busybox 127.0.0.1:5000/me/busybox:v1",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.imageStore(nil, nil)
			if err != nil {
				return err
			}
			return store.Tag(args[0], args[1])
		},
	}
}

func newRmiCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [flags] IMAGE [IMAGE...]",
		Short: "Remove images",
		Long: "Untag an image; when no tag is left, remove it and the layers no other\n" +
			"image shares. An image a container uses is refused unless -f.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.imageStore(nil, nil)
			if err != nil {
				return err
			}
			var firstErr error
			for _, ref := range args {
				rm, err := store.Remove(ref, image.RemoveOptions{Force: force})
				if err != nil {
					// Like docker: report each failure, go on with the rest.
					if firstErr == nil {
						firstErr = err
					} else {
						fmt.Fprintf(g.stderr, "minictr: %v\n", err)
					}
					continue
				}
				for _, u := range rm.Untagged {
					fmt.Fprintf(g.stdout, "Untagged: %s\n", u)
				}
				for _, d := range rm.Deleted {
					fmt.Fprintf(g.stdout, "Deleted: %s\n", d)
				}
			}
			return firstErr
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even if a container uses the image, and all its tags")
	return cmd
}
