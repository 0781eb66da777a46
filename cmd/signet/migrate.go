package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/migrate"
	"github.com/signet-project/signet/trust/mirror"
)

func newMigrateCmd(g *globalFlags) *cobra.Command {
	var (
		f  mirrorFlags
		tf trustFlags
	)
	cmd := &cobra.Command{
		Use:   "migrate --from URL [--to URL] IMAGE...",
		Short: "Move repositories off a Notary v1 server: mirror, take over its keys, advise clients",
		Long: `Move repositories off a Notary v1 server (notary.docker.io, notary-server)
into a signet trust server in one step:

  1. mirror: copy each repository's trust data, verified, byte for byte
     (as 'signet mirror');
  2. take over: the timestamp key (and the snapshot key, when the old
     server held it, as Docker Content Trust does) move to the signet
     server's keys in a new root version signed by the repository's
     root keys, which the trust dir (--trust-dir) or a YubiKey must hold
     (as 'signet rotate IMAGE timestamp snapshot --server-managed');
  3. advise: what clients change (the trust server they ask); clients
     holding the old root follow the rotation without any action.

A repository whose root key is not here is mirrored but not taken over:
its timestamp expires with the old server; the summary says so, and the
proxy can serve it in archive mode with the rule mirror prints.

The destination must run 'signet server --allow-import'. Re-running is
safe: what is copied stays, a repository taken over is left alone.`,
		Example: `  SIGNET_ROOT_PASSPHRASE=... signet migrate --from https://notary.docker.io --to https://trust.example.com docker.io/team/app`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.repositoriesOnArgs = args
			to := f.to
			if to == "" {
				to = os.Getenv("SIGNET_TRUST_SERVER")
			}
			if !strings.Contains(to, "://") {
				return &exitError{2, fmt.Errorf("--to %q: migrate needs a signet trust server URL (https://...); for an offline archive use signet mirror --to DIR", to)}
			}
			f.to = to
			opts, err := f.options(cmd.InOrStdin())
			if err != nil {
				return &exitError{2, err}
			}
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return &exitError{2, err}
			}
			opts.Logger = logger
			errw := cmd.ErrOrStderr()
			opts.Progress = func(done, total int, r mirror.Result) {
				fmt.Fprintf(errw, "[%d/%d] mirror %s\n", done, total, progressLine(r))
			}
			tf.server, tf.caFile, tf.user = to, f.toCA, f.toUser
			c, err := tf.config(cmd, g)
			if err != nil {
				return &exitError{2, err}
			}
			results, err := migrate.Run(cmd.Context(), migrate.Options{Mirror: opts, To: to, Publish: c})
			if err != nil {
				return &exitError{2, err}
			}
			return printMigration(cmd, results)
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&tf.trustDir, "trust-dir", defaultTrustDir(), "folder holding the repositories' root keys (an existing ~/.docker/trust works)")
	return cmd
}

func printMigration(cmd *cobra.Command, results []migrate.Result) error {
	w := cmd.OutOrStdout()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tMIRROR\tTAKE-OVER\tCLIENTS")
	failed := 0
	var notes []string
	for _, r := range results {
		take := "-"
		switch {
		case r.Mirror.Outcome == mirror.Failed:
			failed++
			notes = append(notes, fmt.Sprintf("%s: mirror failed: %v", r.Mirror.GUN, r.Mirror.Err))
		case r.Err != nil:
			failed++
			take = "FAILED"
			notes = append(notes, fmt.Sprintf("%s: %v", r.Mirror.GUN, r.Err))
			if r.Mirror.ArchiveRule != "" {
				notes = append(notes, fmt.Sprintf("%s: until it is taken over, a proxy can serve it with %s", r.Mirror.GUN, r.Mirror.ArchiveRule))
			}
		case len(r.Rotated) == 0:
			take = "done before"
		default:
			var roles []string
			for role := range r.Rotated {
				roles = append(roles, role)
			}
			sort.Strings(roles)
			take = fmt.Sprintf("%s (root v%d)", strings.Join(roles, "+"), r.RootVersion)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Mirror.GUN, r.Mirror.Outcome, take, r.Clients)
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, "  "+n)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d repositories not fully migrated; fix the cause and run the same command again", failed, len(results))
	}
	return nil
}
