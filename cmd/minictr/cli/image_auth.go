package cli

import (
	"bufio"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newLoginCmd(g *globals) *cobra.Command {
	var user, password string
	var passwordStdin bool
	var reg registryFlags
	cmd := &cobra.Command{
		Use:   "login [flags] [SERVER]",
		Short: "Log in to a registry (docker.io by default)",
		Long: "Check the credentials against the registry, then keep them in\n" +
			"$DOCKER_CONFIG/config.json (~/.docker/config.json), or in the credential\n" +
			"helper it names, where docker, podman, skopeo and minictr all find them.",
		Example: "  echo \"$PASSWORD\" | minictr login -u student --password-stdin 127.0.0.1:5000",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			if passwordStdin {
				if password != "" {
					return usageError{fmt.Errorf("--password and --password-stdin are mutually exclusive")}
				}
				line, err := bufio.NewReader(g.stdin).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("reading the password from stdin: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
			}
			if user == "" || password == "" {
				return usageError{fmt.Errorf("login needs -u USER and a password (-p or --password-stdin); minictr does not prompt")}
			}
			ctx, cancel := interruptible()
			defer cancel()
			login, err := g.registryClient(nil, reg.insecure).Login(ctx, server, user, password)
			if err != nil {
				return err
			}
			if login.Helper == "" {
				// As docker warns: base64 is an encoding, not encryption.
				fmt.Fprintf(g.stderr, "WARNING! Your password is stored unencrypted in %s.\n"+
					"Configure a credential helper (\"credsStore\" in that file) to keep it elsewhere.\n", login.ConfigFile)
			}
			_, err = fmt.Fprintln(g.stdout, "Login Succeeded")
			return err
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (visible in ps: prefer --password-stdin)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin")
	reg.add(cmd)
	return cmd
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Forget the credentials of a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			found, err := g.registryClient(nil, nil).Logout(server)
			if err != nil {
				return err
			}
			if server == "" {
				server = "docker.io"
			}
			if !found {
				_, err = fmt.Fprintf(g.stdout, "Not logged in to %s\n", server)
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "Removing login credentials for %s\n", server)
			return err
		},
	}
}

// maxSearchLimit is the most results docker's search returns (its daemon
// refuses a --limit outside 1..100).
const maxSearchLimit = 100

func newSearchCmd(g *globals) *cobra.Command {
	var limit int
	var reg registryFlags
	cmd := &cobra.Command{
		Use:   "search [flags] [REGISTRY/]TERM",
		Short: "Search repositories: a registry's catalog, or Docker Hub",
		Example: "  minictr search 127.0.0.1:5000/busy   # /v2/_catalog, filtered\n" +
			"  minictr search nginx                 # Docker Hub's search API",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > maxSearchLimit {
				return fmt.Errorf("invalid --limit %d: outside the range [1, %d]", limit, maxSearchLimit)
			}
			ctx, cancel := interruptible()
			defer cancel()
			results, err := g.registryClient(nil, reg.insecure).Search(ctx, args[0], limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDESCRIPTION\tSTARS\tOFFICIAL")
			for _, r := range results {
				official := ""
				if r.Official {
					official = "[OK]"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Name, r.Description, r.Stars, official)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 25, "maximum number of results (1 to 100)")
	reg.add(cmd)
	return cmd
}
