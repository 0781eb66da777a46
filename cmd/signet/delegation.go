package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/trust"
)

func newDelegationCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delegation",
		Short: "Add, remove and list delegations (roles, keys, thresholds, paths)",
		Long: `Manage delegations in general: any targets/<name> role, with several keys,
a threshold (how many of its keys must sign) and paths (tag prefixes it
may sign; "" is every tag). 'signet signer' is the docker-compatible
shortcut. Changing a delegation needs the key of its parent (for
targets/<name>, the repository key) in the trust dir. See docs/signers.md.`,
	}
	cmd.AddCommand(newDelegationAddCmd(g), newDelegationRemoveCmd(g), newDelegationListCmd(g))
	return cmd
}

func newDelegationAddCmd(g *globalFlags) *cobra.Command {
	var (
		tf        trustFlags
		keys      []string
		paths     []string
		threshold int
	)
	cmd := &cobra.Command{
		Use:   "add IMAGE ROLE [--key PUB]... [--threshold K] [--path P]...",
		Short: "Create a delegation, or add keys and paths to it, or set its threshold",
		Long: `Create delegation ROLE (targets/<name>) of IMAGE's repository, with --key
(at least one), --threshold (default 1) and --path (default every tag),
or add keys and paths to it and set its threshold. A raised threshold
that the role's current signatures do not meet is met by signing it
again with the keys held here, or refused.`,
		Example: `  signet delegation add registry.example.com/team/app targets/releases --key a.pub --key b.pub --threshold 2`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			res, err := publish.DelegationAdd(cmd.Context(), c, args[0], args[1], keys, threshold, paths)
			if err != nil {
				return err
			}
			printEdit(cmd.OutOrStdout(), cmd.ErrOrStderr(), fmt.Sprintf("updated %s of %s", args[1], res.GUN), res)
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringArrayVar(&keys, "key", nil, "a public key: a PEM file (public key or certificate) or a key ID of the trust dir (repeatable)")
	cmd.Flags().StringArrayVar(&paths, "path", nil, `a tag prefix the role may sign, "" for every tag (repeatable; default "" for a new role)`)
	cmd.Flags().IntVar(&threshold, "threshold", 0, "how many of its keys must sign (default: 1 for a new role, else unchanged)")
	return cmd
}

func newDelegationRemoveCmd(g *globalFlags) *cobra.Command {
	var (
		tf    trustFlags
		keys  []string
		paths []string
		yes   bool
	)
	cmd := &cobra.Command{
		Use:   "remove IMAGE ROLE [--key PUB|ID]... [--path P]...",
		Short: "Remove keys or paths from a delegation, or the whole delegation",
		Long: `Remove --key (a PEM file, a key ID, or a unique prefix of 8 or more hex
digits) and --path from delegation ROLE; with neither, remove ROLE.
Removing what signed tags depend on (the role, its last key, the paths
of signed tags) needs --yes. A role left signed only by removed keys is
signed again with keys held here, or the removal is refused.`,
		Example: `  signet delegation remove registry.example.com/team/app targets/releases --key 1a2b3c4d5e6f`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			res, err := publish.DelegationRemove(cmd.Context(), c, args[0], args[1], keys, paths, yes)
			if err != nil {
				return err
			}
			what := fmt.Sprintf("updated %s of %s", args[1], res.GUN)
			if len(keys) == 0 && len(paths) == 0 {
				what = fmt.Sprintf("removed %s from %s", args[1], res.GUN)
			}
			printEdit(cmd.OutOrStdout(), cmd.ErrOrStderr(), what, res)
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringArrayVar(&keys, "key", nil, "a key to remove: a PEM file, a key ID or an ID prefix (repeatable)")
	cmd.Flags().StringArrayVar(&paths, "path", nil, "a path to remove (repeatable)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "confirm removing what signed tags depend on")
	return cmd
}

func newDelegationListCmd(g *globalFlags) *cobra.Command {
	var tf trustFlags
	cmd := &cobra.Command{
		Use:   "list IMAGE",
		Short: "List delegations: role, threshold, paths, status, signed tags and key IDs",
		Long: `List the delegations of IMAGE's repository, from trust data verified by
the same engine as verify and the proxy. STATUS is verified, empty
(nothing signed yet), disabled (no keys: nothing it signed counts) or
failed (it does not verify: lookups reaching it are denied).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			gun, list, err := publish.DelegationList(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			printDelegations(cmd.OutOrStdout(), cmd.ErrOrStderr(), gun, list)
			return nil
		},
	}
	tf.register(cmd)
	return cmd
}

func printDelegations(w, errw io.Writer, gun string, list []trust.Delegation) {
	if len(list) == 0 {
		fmt.Fprintf(w, "%s has no delegations: tags are signed in targets\n", gun)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tTHRESHOLD\tPATHS\tSTATUS\tTAGS\tKEY IDS")
	for _, d := range list {
		paths := make([]string, len(d.Paths))
		for i, p := range d.Paths {
			paths[i] = strconv.Quote(p)
		}
		fmt.Fprintf(tw, "%s\t%d of %d\t%s\t%s\t%d\t%s\n", d.Role, d.Threshold, len(d.KeyIDs), strings.Join(paths, ","), d.Status, len(d.Tags), strings.Join(d.KeyIDs, " "))
	}
	tw.Flush()
	for _, d := range list {
		if d.Err != nil {
			fmt.Fprintf(errw, "signet: warning: %s: %s failed verification: %v\n", gun, d.Role, d.Err)
		}
	}
}
