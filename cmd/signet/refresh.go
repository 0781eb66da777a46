package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/trust"
)

func newRefreshCmd(g *globalFlags) *cobra.Command {
	var (
		tf      trustFlags
		roles   []string
		expires []string
		within  string
	)
	cmd := &cobra.Command{
		Use:   "refresh IMAGE...",
		Short: "Re-sign targets and delegations with the keys at hand before they expire",
		Long: `Re-sign a repository's targets and delegations with new expiries and
higher versions, with the keys this trust dir holds, and publish them in
one update. The trust server then signs a new snapshot (when it holds
that key, as docker sets up) and timestamp; when this trust dir holds the
snapshot key, the snapshot is signed here too. The current trust data is
read through the engine, ignoring only expiry, so expired roles can be
renewed. Running it again re-signs again (versions go up).

By default every targets role whose keys are here is re-signed; roles
whose keys are elsewhere are listed and left alone. --roles names the
roles to re-sign; then one that cannot be re-signed here is an error.
--within keeps only roles that expire within it.

--expires DURATION sets the new lifetime of every role re-signed (default
3y, notary's); --expires ROLE=DURATION sets one role's. Durations are
days, weeks or years (30d, 2w, 3y) or Go durations (36h).`,
		Example: `  SIGNET_REPOSITORY_PASSPHRASE=... signet refresh registry.example.com/team/app
  signet refresh --within 30d --roles targets/releases registry.example.com/team/app
  signet refresh --expires 1y --expires targets/releases=90d registry.example.com/team/app`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := trust.RefreshOptions{Roles: roles}
			var err error
			if opts.Lifetimes, err = trust.ParseLifetimes(expires); err != nil {
				return err
			}
			if within != "" {
				if opts.Within, err = trust.ParseDuration(within); err != nil {
					return fmt.Errorf("--within: %w", err)
				}
			}
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			reports, err := publish.Refresh(cmd.Context(), c, args, opts)
			printRefresh(cmd.OutOrStdout(), reports)
			return err
		},
	}
	tf.register(cmd)
	cmd.Flags().StringSliceVar(&roles, "roles", nil, "roles to re-sign (targets, targets/releases, snapshot); default every targets role whose keys are here")
	cmd.Flags().StringArrayVar(&expires, "expires", nil, "new lifetime: DURATION for every role, ROLE=DURATION for one (default 3y)")
	cmd.Flags().StringVar(&within, "within", "", "only roles that expire within this (30d); default every role chosen")
	return cmd
}

func printRefresh(w io.Writer, reports []publish.RefreshReport) {
	for _, rep := range reports {
		if rep.Err != nil {
			continue // in the error
		}
		for _, r := range rep.Refreshed {
			fmt.Fprintf(w, "refreshed %s %s: version %d -> %d, expires %s -> %s\n", rep.GUN, r.Role, r.OldVersion, r.NewVersion,
				r.OldExpires.Format(time.RFC3339), r.NewExpires.Format(time.RFC3339))
		}
		for _, s := range rep.Skipped {
			fmt.Fprintf(w, "left %s %s: %s\n", rep.GUN, s.Role, s.Reason)
		}
		if len(rep.Refreshed) == 0 {
			fmt.Fprintf(w, "nothing to refresh in %s\n", rep.GUN)
		}
	}
}
