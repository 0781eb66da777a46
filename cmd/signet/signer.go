package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/trust"
)

func newSignerCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "signer",
		Short: "Add, remove and rotate docker signers (targets/releases plus targets/<name>)",
		Long: `Manage signers as 'docker trust signer' does: a signer's keys go into
targets/releases (the role docker reads) and targets/<name> (which names
the signer in 'docker trust inspect'). The repository (targets) key must
be in the trust dir; its passphrase comes from SIGNET_REPOSITORY_PASSPHRASE
(or the DOCKER_CONTENT_TRUST_* / NOTARY_* names), else the terminal.

--key is a PEM file of the signer's public key or certificate (what
'docker trust key generate NAME' writes as NAME.pub), or the ID of a key
in the trust dir. See docs/signers.md.`,
	}
	cmd.AddCommand(newSignerAddCmd(g), newSignerRemoveCmd(g), newSignerRotateCmd(g))
	return cmd
}

func newSignerAddCmd(g *globalFlags) *cobra.Command {
	var (
		tf   trustFlags
		keys []string
	)
	cmd := &cobra.Command{
		Use:   "add NAME IMAGE... --key PUB",
		Short: "Add a signer to repositories (initialising them if needed)",
		Long: `Add signer NAME, with its public key(s), to targets/releases and
targets/NAME of each repository (every tag), as 'docker trust signer add'
does; a repository without trust data is initialised first. After a
failure, the next repository is still tried.`,
		Example: `  signet signer add alice --key alice.pub registry.example.com/team/app`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			outs, err := publish.SignerAdd(cmd.Context(), c, args[0], keys, args[1:])
			for _, o := range outs {
				if o.Err == nil {
					printEdit(cmd.OutOrStdout(), cmd.ErrOrStderr(), fmt.Sprintf("added signer %s to %s", args[0], o.GUN), o.EditResult)
				}
			}
			return err
		},
	}
	tf.register(cmd)
	cmd.Flags().StringArrayVar(&keys, "key", nil, "the signer's public key: a PEM file (public key or certificate) or a key ID of the trust dir (repeatable)")
	return cmd
}

func newSignerRemoveCmd(g *globalFlags) *cobra.Command {
	var (
		tf  trustFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "remove NAME IMAGE...",
		Short: "Remove a signer from repositories",
		Long: `Remove signer NAME from each repository, as 'docker trust signer remove'
does: its keys leave targets/releases and targets/NAME is deleted. Tags
signed by other signers, or in targets, stay served.

If NAME holds the last key of targets/releases, the tags signed only
there stop being served (tags in targets stay): that needs --yes. If the
current targets/releases is signed only by NAME's key, signet signs it
again with another releases key held here (the trust dir, or
SIGNET_SIGNER_KEY_FILE), or refuses: every tag would be denied.`,
		Example: `  signet signer remove alice registry.example.com/team/app`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			outs, err := publish.SignerRemove(cmd.Context(), c, args[0], args[1:], yes)
			for _, o := range outs {
				if o.Err == nil {
					printEdit(cmd.OutOrStdout(), cmd.ErrOrStderr(), fmt.Sprintf("removed signer %s from %s", args[0], o.GUN), o.EditResult)
				}
			}
			return err
		},
	}
	tf.register(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "confirm removing the last key of targets/releases")
	return cmd
}

func newSignerRotateCmd(g *globalFlags) *cobra.Command {
	var (
		tf   trustFlags
		keys []string
	)
	cmd := &cobra.Command{
		Use:   "rotate NAME IMAGE --key NEWPUB",
		Short: "Replace a signer's key, keeping its signed tags",
		Long: `Replace the key(s) of signer NAME in targets/NAME and targets/releases
with --key. If the new private key is here (the trust dir, or
SIGNET_SIGNER_KEY_FILE), what the old key signed is signed again with the
new one at once. If not, both keys stay listed, so the signer's tags stay
signed, until the signer signs with the new key (any 'signet sign');
running this command again then drops the old key.

Rotation keeps what the old key signed. If that key may be compromised,
check 'signet inspect' for tags you did not sign and revoke them.`,
		Example: `  signet signer rotate alice --key alice-2025.pub registry.example.com/team/app`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			res, err := publish.SignerRotate(cmd.Context(), c, args[0], keys, args[1])
			if err != nil {
				return err
			}
			what := fmt.Sprintf("rotated the key of signer %s of %s", args[0], res.GUN)
			if len(res.KeptKeys) > 0 {
				what = fmt.Sprintf("added the new key of signer %s to %s; the old key stays listed for now", args[0], res.GUN)
			}
			printEdit(cmd.OutOrStdout(), cmd.ErrOrStderr(), what, res)
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringArrayVar(&keys, "key", nil, "the signer's new public key: a PEM file or a key ID of the trust dir (repeatable)")
	return cmd
}

// printEdit says what a change of delegations did: what on stdout, notes
// (what to do next) on stderr.
func printEdit(w, notes io.Writer, what string, res trust.EditResult) {
	if res.Initialized {
		fmt.Fprintf(w, "initialised trust data for %s\n", res.GUN)
	}
	if len(res.Published) == 0 {
		fmt.Fprintf(w, "%s is already as asked: nothing published\n", res.GUN)
	} else {
		fmt.Fprintf(w, "%s (published %s)\n", what, strings.Join(res.Published, ", "))
	}
	for _, r := range res.Resigned {
		fmt.Fprintf(w, "signed %s again with its new keys, so what it signed stays valid\n", r)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(notes, "signet: note: %s: %s\n", res.GUN, n)
	}
}
