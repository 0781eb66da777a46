package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/publish"
)

func newRotateCmd(g *globalFlags) *cobra.Command {
	var (
		tf            trustFlags
		serverManaged bool
		targetsKeys   []string
		threshold     int
	)
	cmd := &cobra.Command{
		Use:   "rotate IMAGE ROLE...",
		Short: "Replace the root, targets, timestamp or snapshot key (one-shot, keys at hand)",
		Long: `Replace the keys of the timestamp and/or snapshot role of a repository
with new keys made and held by the trust server, in a new root version
signed by the repository's existing root keys (from the trust dir or a
YubiKey). Clients that pinned the old root follow without any action.

This is the take-over after 'signet mirror': the repository's timestamp
key (and snapshot key, when the old server held it, as Docker Content
Trust does) belonged to the old server, which will be gone. Rotate both
in one step then; rotating only the timestamp fails, naming the fix, when
nobody here can sign the snapshot. The current trust data is verified
first, ignoring only its expiry.

ROLE is timestamp or snapshot (snapshot needs --server-managed), or root:
a new root key is made in the trust dir and a new root version, signed by
the current root keys and the new one, names it (the one-shot of a key
ceremony, for when every key is at hand; with keys held by several
people, or K-of-N roots, use signet ceremony).

ROLE targets (alone) replaces a lost or compromised repository key: a new
key in the trust dir (or --targets-key, repeatable, with --threshold K of
them), named by a new root version signed by the root keys, and the
current targets signed again with them in the same publish (see
docs/ceremonies.md). With K > 1, every later signature into targets needs
K of those keys at hand: the trust dir, inserted YubiKeys.`,
		Example: `  SIGNET_ROOT_PASSPHRASE=... signet rotate registry.example.com/team/app timestamp snapshot --server-managed`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			if contains(args[1:], "targets") {
				return rotateTargets(cmd, c, args, targetsKeys, threshold)
			}
			if len(targetsKeys) > 0 || threshold != 0 {
				return fmt.Errorf("--targets-key and --threshold go with ROLE targets; for a K-of-N root, use signet ceremony")
			}
			gun, res, err := publish.Rotate(cmd.Context(), c, args[0], args[1:], serverManaged)
			if err != nil {
				return err
			}
			roles := make([]string, 0, len(res.Keys))
			for r := range res.Keys {
				roles = append(roles, r)
			}
			sort.Strings(roles)
			for _, r := range roles {
				fmt.Fprintf(cmd.OutOrStdout(), "rotated the %s key of %s to %s (held by the trust server)\n", r, gun, res.Keys[r])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "root version %d names the new keys, signed by the existing root keys\n", res.RootVersion)
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().BoolVar(&serverManaged, "server-managed", false, "the trust server makes and holds the new snapshot key")
	cmd.Flags().StringSliceVar(&targetsKeys, "targets-key", nil, "with ROLE targets: the ID of a repository key in the trust dir or on a YubiKey (repeatable; default: make one)")
	cmd.Flags().IntVar(&threshold, "threshold", 0, "with ROLE targets: how many of the new repository keys must sign (default 1)")
	return cmd
}

// rotateTargets is 'signet rotate IMAGE targets'.
func rotateTargets(cmd *cobra.Command, c publish.Config, args []string, keyIDs []string, k int) error {
	if len(args) != 2 {
		return fmt.Errorf("rotate targets: rotate it alone (signet rotate %s targets), then the other roles", args[0])
	}
	gun, res, err := publish.RotateTargets(cmd.Context(), c, args[0], keyIDs, k)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "rotated the targets key of %s to %s\n", gun, res.Keys["targets"])
	fmt.Fprintf(cmd.OutOrStdout(), "root version %d names it, signed by the existing root keys; the targets were signed again with it\n", res.RootVersion)
	for _, id := range res.OldKeys {
		fmt.Fprintf(cmd.ErrOrStderr(), "signet: note: the old repository key %s stays in the trust dir: signet key remove %s --yes once you no longer need it\n", id, id)
	}
	return nil
}
