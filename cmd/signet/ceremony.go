package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/theupdateframework/notary/trustmanager"
	"golang.org/x/term"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/trust/ceremony"
)

func newCeremonyCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ceremony",
		Short: "Change a repository's root or repository keys with keys held by several people, signing offline",
		Long: `A key ceremony changes a repository's root (new root keys and a threshold
K of N, new server-held timestamp/snapshot keys, a new expiry) and/or its
targets (new repository keys with a threshold, a new expiry) with keys
held by different people, on machines that need not be online:

  signet ceremony prepare IMAGE --out DIR ...   online: the proposed root
  signet ceremony sign DIR                      offline: add signatures
  signet ceremony status DIR                    which thresholds are met
  signet ceremony publish DIR                   online: upload

DIR is plain files (ceremony.json, root.signed.json, summary.txt,
signatures/, transcript.log; targets.signed.json when targets change):
carry it between machines, review it with cat. A new root must be signed
by a threshold of the current root's keys and a threshold of its own
(TUF 5.3.4); new targets by a threshold of the repository keys (the new
ones, when they change).`,
	}
	cmd.AddCommand(newCeremonyPrepareCmd(g), newCeremonySignCmd(g), newCeremonyStatusCmd(), newCeremonyPublishCmd(g), newCeremonyCertCmd(g))
	return cmd
}

func who() string {
	host, _ := os.Hostname()
	if u, err := user.Current(); err == nil {
		return u.Username + "@" + host
	}
	return host
}

func newCeremonyPrepareCmd(g *globalFlags) *cobra.Command {
	var (
		tf      trustFlags
		out     string
		ch      publish.CeremonyChange
		expires []string
	)
	cmd := &cobra.Command{
		Use:   "prepare IMAGE --out DIR",
		Short: "Write the proposed new root of IMAGE into DIR, ready to be signed",
		Long: `Read IMAGE's current trust data (verified) and write DIR: the proposed
new root version, exactly as it will be signed, a summary, and an empty
signature set. Needs the trust server; nothing after it does until
publish.

New root keys: --root-key ID for a key here (its root certificate is made
now; a YubiKey asks for its PIN), or --root-cert FILE for a certificate a
key holder made with 'signet ceremony cert'. --threshold K: how many of
them must sign from now on.

--rotate timestamp|snapshot: the trust server makes a new key (snapshot
needs --server-managed). --rotate targets: new repository keys, each
--targets-key a PEM public key file or the ID of a key here (default: one
made now in this trust dir), --targets-threshold K of them; the current
targets are signed again by them. --expires root=DURATION and/or
targets=DURATION set new expiries (targets alone is an offline re-sign of
the targets by the repository keys).`,
		Example: `  signet ceremony prepare registry.example.com/team/app --out ./ceremony \
    --root-cert alice.crt --root-cert bob.crt --root-cert carol.crt --threshold 2

  signet ceremony prepare registry.example.com/team/app --out ./ceremony \
    --rotate targets --targets-key ci-a.pub --targets-key ci-b.pub --targets-threshold 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out DIR is required: a new folder for the ceremony")
			}
			for _, e := range expires {
				role, d, err := parseExpiry(e)
				if err != nil {
					return err
				}
				if role == "root" {
					ch.RootExpires = d
				} else {
					ch.TargetsExpires = d
				}
			}
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			p, err := publish.PrepareCeremony(cmd.Context(), c, args[0], out, ch, who())
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), ceremony.Summary(p))
			fmt.Fprintf(cmd.OutOrStdout(), "\nprepared %s: now sign it (signet ceremony sign %s) with the keys above\n", out, out)
			return nil
		},
	}
	tf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&out, "out", "", "new folder for the ceremony")
	fl.StringSliceVar(&ch.RootKeys, "root-key", nil, "new root key: a key ID in the trust dir or on an inserted YubiKey (repeatable)")
	fl.StringSliceVar(&ch.RootCerts, "root-cert", nil, "new root key: a root certificate PEM file (signet ceremony cert) (repeatable)")
	fl.IntVar(&ch.Threshold, "threshold", 0, "how many root keys must sign (default: kept, or 1 with new keys)")
	fl.StringSliceVar(&ch.Rotate, "rotate", nil, "targets: new repository keys; timestamp, snapshot: a new key the trust server makes (repeatable)")
	fl.BoolVar(&ch.ServerManaged, "server-managed", false, "with --rotate snapshot: the trust server holds the new snapshot key")
	fl.StringSliceVar(&ch.TargetsKeys, "targets-key", nil, "with --rotate targets: a new repository key, a PEM public key file or a key ID here (repeatable; default: make one)")
	fl.IntVar(&ch.TargetsThreshold, "targets-threshold", 0, "how many repository keys must sign (default: kept, or 1 with new keys)")
	fl.StringSliceVar(&expires, "expires", nil, "ROLE=DURATION, ROLE root or targets: a new lifetime (e.g. root=87600h, targets=8760h; repeatable)")
	return cmd
}

// parseExpiry parses --expires ROLE=DURATION (ROLE root or targets).
func parseExpiry(s string) (role string, d time.Duration, err error) {
	role, dur, ok := strings.Cut(s, "=")
	if !ok || (role != "root" && role != "targets") {
		return "", 0, fmt.Errorf("--expires %q: give root=DURATION or targets=DURATION (e.g. root=87600h); delegations expire by signet refresh", s)
	}
	d, err = time.ParseDuration(dur)
	if err != nil || d <= 0 {
		return "", 0, fmt.Errorf("--expires %q: %q is not a positive duration (e.g. 87600h)", s, dur)
	}
	return role, d, nil
}

func newCeremonySignCmd(g *globalFlags) *cobra.Command {
	var (
		tf    trustFlags
		only  []string
		yes   bool
		useYK string
	)
	cmd := &cobra.Command{
		Use:   "sign DIR",
		Short: "Add signatures to a ceremony with the keys here (no network)",
		Long: `Show the ceremony's summary, ask to confirm (on a terminal; --yes
otherwise), and add a signature by every key it needs that the trust dir
or an inserted YubiKey holds (--key ID: only those). Never contacts the
trust server. Signing again with a key is idempotent.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cer, err := ceremony.Load(args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), ceremony.Summary(cer.Proposal))
			if !yes {
				if !term.IsTerminal(int(os.Stdin.Fd())) {
					return errors.New("confirm on a terminal, or pass --yes after reviewing summary.txt")
				}
				fmt.Fprint(cmd.OutOrStdout(), "\nSign this? [y/N] ")
				line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if strings.ToLower(strings.TrimSpace(line)) != "y" {
					return errors.New("not signed")
				}
			}
			tf.server = cer.Proposal.Server // never contacted
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			var stores []trustmanager.KeyStore
			if useYK != "no" {
				var closeCards func()
				stores, closeCards = insertedCards(cmd)
				defer closeCards()
			}
			c.HardwareKeys = append(c.HardwareKeys, stores...)
			_, added, err := publish.SignCeremony(c, args[0], only, who(), cardOf(stores))
			if err != nil {
				return err
			}
			if len(added) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "\nnothing new: these keys signed already")
			}
			for _, id := range added {
				fmt.Fprintf(cmd.OutOrStdout(), "\nsigned with key %s\n", id)
			}
			_, err = printCeremonyStatus(cmd, args[0])
			return err
		},
	}
	tf.register(cmd)
	cmd.Flags().StringSliceVar(&only, "key", nil, "sign only with this key ID (repeatable)")
	cmd.Flags().BoolVar(&yes, "yes", false, "sign without asking (review summary.txt first)")
	cmd.Flags().StringVar(&useYK, "yubikey", "auto", "auto: also sign with inserted YubiKeys; no: key files only (no smart-card reader is touched)")
	return cmd
}

func newCeremonyStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status DIR",
		Short: "Say which thresholds a ceremony meets; exit 0 only when it can be published",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ok, err := printCeremonyStatus(cmd, args[0])
			if err == nil && !ok {
				err = errors.New("not publishable yet: sign with more of the keys listed (signet ceremony sign)")
			}
			return err
		},
	}
}

// printCeremonyStatus prints each key set's count; ok says whether the
// ceremony can be published.
func printCeremonyStatus(cmd *cobra.Command, dir string) (bool, error) {
	cer, err := ceremony.Load(dir)
	if err != nil {
		return false, err
	}
	st, ok, err := cer.Status()
	if err != nil {
		return false, err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "\n%s of %s:\n", cer.Proposal.What(), cer.Proposal.GUN)
	for _, s := range st {
		mark := "MET"
		if !s.Met() {
			mark = "needs " + fmt.Sprint(s.Threshold-len(s.Valid)) + " more"
		}
		fmt.Fprintf(w, "  %s: %d of %d signatures (%s)\n", s.Name, len(s.Valid), s.Threshold, mark)
	}
	if ok {
		fmt.Fprintf(w, "publishable: signet ceremony publish %s\n", dir)
	}
	return ok, nil
}

func newCeremonyPublishCmd(g *globalFlags) *cobra.Command {
	var tf trustFlags
	cmd := &cobra.Command{
		Use:   "publish DIR",
		Short: "Upload a ceremony's new root and/or targets once its thresholds are met",
		Long: `Check the thresholds, check that the repository has not changed since
prepare (else prepare again), and upload the new root and/or targets. The trust server
then signs the next snapshot and timestamp. The trust server is the one
recorded at prepare unless --trust-server is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			cer, err := publish.PublishCeremony(cmd.Context(), c, args[0], who())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %s of %s\n", cer.Proposal.What(), cer.Proposal.GUN)
			return nil
		},
	}
	tf.register(cmd)
	return cmd
}

func newCeremonyCertCmd(g *globalFlags) *cobra.Command {
	var (
		tf  trustFlags
		key string
		out string
	)
	cmd := &cobra.Command{
		Use:   "cert IMAGE [--key ID] --out FILE",
		Short: "Make the root certificate of a key here, to hand to a ceremony's preparer",
		Long: `A key holder makes the root certificate of their key (in the trust dir or
on an inserted YubiKey: PIN and touch as usual) for IMAGE's repository,
and hands FILE to whoever prepares the ceremony (--root-cert FILE). No
network.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			stores, closeCards := insertedCards(cmd)
			defer closeCards()
			c.HardwareKeys = append(c.HardwareKeys, stores...)
			gun, id, err := publish.RootCertFile(c, args[0], key, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "root certificate of key %s for %s written to %s (key ID in root.json: %s)\n", key, gun, out, id)
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&key, "key", "", "the key's ID (signet key list; default: the only root key here)")
	cmd.Flags().StringVar(&out, "out", "", "file to write the certificate (PEM) to")
	return cmd
}
