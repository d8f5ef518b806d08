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
	cmds := []*cobra.Command{
		newPullCmd(g), newPushCmd(g), newImagesCmd(g), newRmiCmd(g), newTagCmd(g),
		newHistoryCmd(g), newSearchCmd(g), newLoginCmd(g), newLogoutCmd(g),
		newSaveCmd(g), newLoadCmd(g), newImportCmd(g), group,
	}
	for _, c := range cmds {
		exitStatus(c, exitFailed)
	}
	return cmds
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

// imageStore opens the image store under --root, creating it if needed.
func (g *globals) imageStore() (*image.Store, error) {
	return image.Open(filepath.Join(g.root, "image"), g.storeOptions(false))
}

// readStore opens the image store for a verb that only reads it (images,
// inspect, history, save): a store that does not exist reads as empty and
// is not created, so a mistyped --root leaves no directory tree behind.
func (g *globals) readStore() (*image.Store, error) {
	return image.Open(filepath.Join(g.root, "image"), g.storeOptions(true))
}

func (g *globals) storeOptions(readOnly bool) image.Options {
	return image.Options{
		Tracer:   g.tracer(),
		ReadOnly: readOnly,
		// Say why nothing happens: another minictr is changing the store.
		Waiting: func(h image.LockHolder) {
			holder := "another process"
			if h.PID != 0 {
				holder = fmt.Sprintf("PID %d (%s)", h.PID, h.Op)
			}
			fmt.Fprintf(g.stderr, "minictr: waiting for the image store lock held by %s\n", holder)
		},
	}
}

// registryClient is the client of the verbs that talk to a registry.
func (g *globals) registryClient(progress image.Progress, insecure []string) *image.Client {
	return image.NewClient(image.ClientOptions{Tracer: g.tracer(), Progress: progress, Insecure: insecure})
}

// noSuchImage is docker's wording for a reference or ID the store does not
// have: "No such image: busybox:latest", "No such image: sha256:abc".
func noSuchImage(arg string, err error) error {
	if !errors.Is(err, image.ErrNotFound) {
		return err
	}
	name := arg
	if !strings.HasPrefix(arg, "sha256:") {
		if r, perr := image.ParseReference(arg); perr == nil {
			name = r.FamiliarString()
		}
	}
	return notFound{name, err}
}

type notFound struct {
	name string
	err  error
}

func (e notFound) Error() string { return "No such image: " + e.name }
func (e notFound) Unwrap() error { return e.err }

// familiarString is a full reference the store returned as docker prints
// it: without docker.io/library/ or docker.io/ ("student/app:v1").
func familiarString(ref string) string {
	r, err := image.ParseReference(ref)
	if err != nil {
		return ref
	}
	return r.FamiliarString()
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
			store, err := g.imageStore()
			if err != nil {
				return err
			}
			client := g.registryClient(progress, reg.insecure)
			ref, err := client.Parse(args[0])
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
			img, err := client.Pull(ctx, store, args[0], opts)
			progress.Wait()
			if err != nil {
				return loginHint(client, args[0], err)
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
func loginHint(client *image.Client, ref string, err error) error {
	r, perr := client.Parse(ref)
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
			store, err := g.imageStore()
			if err != nil {
				return err
			}
			client := g.registryClient(progress, reg.insecure)
			ctx, cancel := interruptible()
			defer cancel()
			pushed, err := client.Push(ctx, store, args[0], image.PushOptions{})
			progress.Wait()
			if err != nil {
				return loginHint(client, args[0], err)
			}
			ref, _ := client.Parse(args[0])
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
			store, err := g.imageStore()
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			return store.Tag(ctx, args[0], args[1])
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
			store, err := g.imageStore()
			if err != nil {
				return err
			}
			ctx, cancel := interruptible()
			defer cancel()
			// Like docker: go on past a failure, then report every failure,
			// in argument order, and exit 1; with -f an image that is not
			// there is only a warning.
			var failed, missing []error
			for _, ref := range args {
				rm, err := store.Remove(ctx, ref, image.RemoveOptions{Force: force})
				if err != nil {
					err = noSuchImage(ref, err)
					failed = append(failed, err)
					if errors.Is(err, image.ErrNotFound) {
						missing = append(missing, err)
					}
					continue
				}
				for _, u := range rm.Untagged {
					fmt.Fprintf(g.stdout, "Untagged: %s\n", familiarString(u))
				}
				for _, d := range rm.Deleted {
					fmt.Fprintf(g.stdout, "Deleted: %s\n", d)
				}
			}
			if force && len(failed) == len(missing) {
				for _, e := range missing {
					fmt.Fprintf(g.stderr, "minictr: %v\n", e)
				}
				return nil
			}
			return errors.Join(failed...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even if a container uses the image, and all its tags")
	return cmd
}
