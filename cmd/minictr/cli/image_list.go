package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/minictr/minictr/internal/stringid"
	"github.com/minictr/minictr/pkg/image"
)

// imageRow is one line of `images`, with docker's --format field names.
type imageRow struct {
	Repository   string
	Tag          string
	Digest       string
	ID           string
	CreatedSince string
	CreatedAt    string
	Size         string
}

// imageHeader titles the columns of a "table" format.
var imageHeader = imageRow{Repository: "REPOSITORY", Tag: "TAG", Digest: "DIGEST", ID: "IMAGE ID",
	CreatedSince: "CREATED", CreatedAt: "CREATED AT", Size: "SIZE"}

func newImagesCmd(g *globals) *cobra.Command {
	var quiet, digests, all bool
	var format string
	cmd := &cobra.Command{
		Use:   "images [flags] [REPOSITORY[:TAG]]",
		Short: "List images",
		Example: "  minictr images\n  minictr images --digests busybox\n" +
			"  minictr images --format '{{.Repository}}:{{.Tag}} {{.Size}}'\n  minictr images --format json",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.readStore()
			if err != nil {
				return err
			}
			list, err := store.List()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if list, err = filterImages(list, args[0]); err != nil {
					return usageError{err}
				}
			}
			return renderImages(g.stdout, list, quiet, digests, format)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "print only image IDs")
	f.BoolVar(&digests, "digests", false, "show digests")
	f.BoolVarP(&all, "all", "a", false, "show all images (minictr keeps no intermediate images: same as without)")
	f.StringVar(&format, "format", "", "Go template over .Repository .Tag .Digest .ID .CreatedSince .CreatedAt .Size, \"table TEMPLATE\", or json")
	return cmd
}

// filterImages keeps the rows of a repository (and tag, when given).
func filterImages(list []image.Summary, arg string) ([]image.Summary, error) {
	ref, err := image.ParseReference(arg)
	if err != nil {
		return nil, err
	}
	explicitTag := strings.Contains(arg[strings.LastIndex(arg, "/")+1:], ":")
	var out []image.Summary
	for _, s := range list {
		if s.Reference == "" {
			continue
		}
		r, err := image.ParseReference(s.Reference)
		if err != nil || r.Name() != ref.Name() || explicitTag && r.Tag != ref.Tag {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

func rowOf(s image.Summary) imageRow {
	return imageRow{
		Repository:   s.Repository,
		Tag:          s.Tag,
		Digest:       s.Digest,
		ID:           stringid.Short(s.ID),
		CreatedSince: createdSince(s.Created),
		CreatedAt:    s.Created.Format("2006-01-02 15:04:05 -0700 MST"),
		Size:         displaySize(s.Size),
	}
}

func renderImages(w io.Writer, list []image.Summary, quiet, digests bool, format string) error {
	if quiet {
		seen := map[string]bool{}
		for _, s := range list {
			if !seen[s.ID] {
				seen[s.ID] = true
				fmt.Fprintln(w, stringid.Short(s.ID))
			}
		}
		return nil
	}
	switch {
	case format == "json":
		enc := json.NewEncoder(w)
		for _, s := range list {
			if err := enc.Encode(rowOf(s)); err != nil {
				return err
			}
		}
		return nil
	case format != "":
		return renderTemplate(w, format, list)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if digests {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
	} else {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	}
	for _, s := range list {
		r := rowOf(s)
		if digests {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.Digest, r.ID, r.CreatedSince, r.Size)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size)
		}
	}
	return tw.Flush()
}

// renderTemplate runs a --format Go template per row; "table TEMPLATE"
// adds a header line and aligns columns, as docker does.
func renderTemplate(w io.Writer, format string, list []image.Summary) error {
	text, table := strings.CutPrefix(format, "table ")
	tmpl, err := template.New("format").Option("missingkey=error").Parse(text + "\n")
	if err != nil {
		return usageError{fmt.Errorf("invalid --format: %w", err)}
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		out = tw
		tmpl, err = template.New("format").Parse(strings.ReplaceAll(text, `\t`, "\t") + "\n")
		if err != nil {
			return usageError{fmt.Errorf("invalid --format: %w", err)}
		}
		if err := tmpl.Execute(out, imageHeader); err != nil {
			return usageError{fmt.Errorf("invalid --format: %w", err)}
		}
	}
	for _, s := range list {
		if err := tmpl.Execute(out, rowOf(s)); err != nil {
			return usageError{fmt.Errorf("invalid --format: %w", err)}
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// createdSince is docker's CREATED column: "5 minutes ago", "2 years ago".
func createdSince(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return units.HumanDuration(time.Now().UTC().Sub(t)) + " ago"
}

// displaySize is docker's SIZE column: decimal units, three significant digits.
func displaySize(n int64) string {
	return units.HumanSizeWithPrecision(float64(n), 3)
}

func newImageInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE [IMAGE...]",
		Short: "Show an image's details as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.readStore()
			if err != nil {
				return err
			}
			// Like docker: the images found, then one line per name that
			// is not, and exit 1.
			out := []inspectView{}
			var failed []error
			for _, ref := range args {
				img, err := store.Get(ref)
				if err != nil {
					failed = append(failed, noSuchImage(ref, err))
					continue
				}
				out = append(out, inspectOf(img))
			}
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "    ")
			if err := enc.Encode(out); err != nil {
				return err
			}
			return errors.Join(failed...)
		},
	}
}

// inspectView is `image inspect`'s JSON, with docker's field names where
// they exist.
type inspectView struct {
	ID           string    `json:"Id"`
	RepoTags     []string  `json:"RepoTags"`
	RepoDigests  []string  `json:"RepoDigests"`
	Created      time.Time `json:"Created"`
	Author       string    `json:"Author,omitempty"`
	Architecture string    `json:"Architecture"`
	Variant      string    `json:"Variant,omitempty"`
	Os           string    `json:"Os"`
	Size         int64     `json:"Size"`
	Config       any       `json:"Config"`
	RootFS       struct {
		Type   string   `json:"Type"`
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
	Metadata struct {
		ManifestDigest string   `json:"ManifestDigest"`
		LayerDirs      []string `json:"LayerDirs"` // minictr: unpacked layers, top first
	} `json:"Metadata"`
}

func inspectOf(img *image.Image) inspectView {
	v := inspectView{
		ID: img.ID, RepoTags: img.Tags, RepoDigests: img.RepoDigests, Created: img.Created,
		Author: img.Config.Author, Architecture: img.Config.Architecture, Variant: img.Config.Variant,
		Os: img.Config.OS, Size: img.Size, Config: img.Config.Config,
	}
	if v.RepoTags == nil {
		v.RepoTags = []string{}
	}
	if v.RepoDigests == nil {
		v.RepoDigests = []string{}
	}
	v.RootFS.Type = "layers"
	v.RootFS.Layers = img.DiffIDs
	v.Metadata.ManifestDigest = img.Digest
	v.Metadata.LayerDirs = img.Layers
	return v
}

func newHistoryCmd(g *globals) *cobra.Command {
	var quiet, noTrunc bool
	cmd := &cobra.Command{
		Use:   "history [flags] IMAGE",
		Short: "Show how an image was built, layer by layer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.readStore()
			if err != nil {
				return err
			}
			img, err := store.Get(args[0])
			if err != nil {
				return noSuchImage(args[0], err)
			}
			return renderHistory(g.stdout, img, quiet, noTrunc)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the image ID")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not shorten the commands")
	return cmd
}

// renderHistory lists the config's history entries newest first. Entries
// that made a layer get its size; the others (ENV, CMD ...) show 0B.
func renderHistory(w io.Writer, img *image.Image, quiet, noTrunc bool) error {
	if quiet {
		_, err := fmt.Fprintln(w, stringid.Short(img.ID))
		return err
	}
	hist := img.Config.History
	if len(hist) == 0 {
		// An image without history: one line per layer.
		hist = make([]v1.History, len(img.DiffIDs))
	}
	sizes := img.LayerSizes // bottom first
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
	layer := len(sizes) - 1
	// Count the layers from the top: walk history newest first.
	for i := len(hist) - 1; i >= 0; i-- {
		h := hist[i]
		size := int64(0)
		if !h.EmptyLayer && layer >= 0 {
			size = sizes[layer]
			layer--
		}
		id := "<missing>"
		if i == len(hist)-1 {
			id = stringid.Short(img.ID)
		}
		by := h.CreatedBy
		if !noTrunc && len(by) > 45 {
			by = by[:44] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, createdSince(h.Created.Time), by, displaySize(size), h.Comment)
	}
	return tw.Flush()
}
