package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/keys"
)

// keyStore opens the trust dir's key store with the usual passphrase
// sources.
func keyStore(cmd *cobra.Command, trustDir string) (*keys.Store, error) {
	return keys.Open(trustDir, &keys.Retriever{Getenv: os.Getenv, Prompt: ttyPrompt(cmd.ErrOrStderr())})
}

func newKeyCmd() *cobra.Command {
	var trustDir string
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage signing keys in a trust dir (list, generate, import, export, remove, passwd)",
		Long: `Manage the encrypted key files of a trust dir (<trust dir>/private/<id>.key),
compatible with ~/.docker/trust and ~/.notary: --trust-dir ~/.docker/trust
works on a docker user's keys. Passphrases come from the environment
(SIGNET_ROOT_PASSPHRASE, SIGNET_REPOSITORY_PASSPHRASE,
SIGNET_DELEGATION_PASSPHRASE and the DOCKER_CONTENT_TRUST_* / NOTARY_*
names) or the terminal.`,
	}
	cmd.PersistentFlags().StringVar(&trustDir, "trust-dir", defaultTrustDir(), "folder of keys and cached trust data")

	list := &cobra.Command{
		Use:   "list",
		Short: "List keys: role, repository, key ID and where the key lives (file, or YubiKey serial and slot)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := keyStore(cmd, trustDir)
			if err != nil {
				return err
			}
			printKeys(cmd.OutOrStdout(), append(s.List(), cardKeys(cmd.ErrOrStderr())...))
			return nil
		},
	}

	var role, gun, algorithm string
	generate := &cobra.Command{
		Use:   "generate",
		Short: "Generate a key (ECDSA P-256 by default, or ed25519) encrypted in the trust dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := keyStore(cmd, trustDir)
			if err != nil {
				return err
			}
			info, err := s.Generate(role, gun, algorithm)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "generated %s key %s\n", info.Role, info.ID)
			return nil
		},
	}
	generate.Flags().StringVarP(&role, "role", "r", "targets/releases", "role: root, targets (with --gun) or targets/<name>")
	generate.Flags().StringVarP(&gun, "gun", "g", "", "repository for a targets key (docker.io/library/app)")
	generate.Flags().StringVar(&algorithm, "algorithm", "ecdsa", "ecdsa or ed25519")

	var importRole, importGUN string
	importCmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Import private keys (notary, docker trust key generate, or plain PKCS#8/EC/RSA PEM files)",
		Long: `Import private keys from PEM files. The role and repository come from the
PEM headers when present (--role and --gun override them). An encrypted key
is decrypted with the passphrase for its role and stored encrypted again.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := keyStore(cmd, trustDir)
			if err != nil {
				return err
			}
			for _, file := range args {
				raw, err := readCapped(file, keys.MaxKeyFileBytes)
				if err != nil {
					return err
				}
				info, err := s.Import(raw, importRole, importGUN)
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "imported %s key %s from %s\n", info.Role, info.ID, file)
			}
			return nil
		},
	}
	importCmd.Flags().StringVarP(&importRole, "role", "r", "", "role, if the PEM has no role header")
	importCmd.Flags().StringVarP(&importGUN, "gun", "g", "", "repository, if the PEM has no gun header")

	var (
		output string
		public bool
	)
	export := &cobra.Command{
		Use:   "export KEY-ID",
		Short: "Export a key, still encrypted, in the PEM format `notary key import` reads (--public: its public key)",
		Long: `Export a key, still encrypted, in the PEM format 'notary key import' reads.
With --public, write its public key instead (PEM "PUBLIC KEY"; the
passphrase unlocks the key to derive it): what a key holder hands to
'signet signer add --key', 'signet delegation add --key' or
'signet ceremony prepare --targets-key'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := keyStore(cmd, trustDir)
			if err != nil {
				return err
			}
			export, what, mode := s.Export, "encrypted", os.FileMode(0o600)
			if public {
				export, what, mode = s.PublicPEM, "public key", 0o644
			}
			pemBytes, err := export(args[0])
			if err != nil {
				for _, k := range cardKeys(cmd.ErrOrStderr()) {
					if k.ID == args[0] {
						if public {
							return fmt.Errorf("key %s lives on %s: hand over its certificate instead (signet yubikey generate --cert FILE wrote it; signet ceremony cert makes a root one)", k.ID, k.Location)
						}
						return fmt.Errorf("key %s lives on %s and cannot leave it: keep a second YubiKey instead of an export", k.ID, k.Location)
					}
				}
				return err
			}
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(pemBytes)
				return err
			}
			if err := os.WriteFile(output, pemBytes, mode); err != nil {
				return fmt.Errorf("write %s: %w", output, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported key %s to %s (%s)\n", args[0], output, what)
			return nil
		},
	}
	export.Flags().StringVarP(&output, "output", "o", "", "file to write (default stdout)")
	export.Flags().BoolVar(&public, "public", false, "write the public key, not the encrypted private key")

	var yes bool
	remove := &cobra.Command{
		Use:   "remove KEY-ID",
		Short: "Delete a key from the trust dir",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("removing a key cannot be undone: add --yes (export it first if you may need it)")
			}
			s, err := keyStore(cmd, trustDir)
			if err != nil {
				return err
			}
			if err := s.Remove(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed key %s\n", args[0])
			return nil
		},
	}
	remove.Flags().BoolVarP(&yes, "yes", "y", false, "confirm the removal")

	passwd := &cobra.Command{
		Use:   "passwd KEY-ID",
		Short: "Change a key's passphrase (new one from SIGNET_NEW_PASSPHRASE or the terminal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := keyStore(cmd, trustDir)
			if err != nil {
				return err
			}
			newPass := os.Getenv("SIGNET_NEW_PASSPHRASE")
			if newPass == "" {
				prompt := ttyPrompt(cmd.ErrOrStderr())
				if prompt == nil {
					return errors.New("no new passphrase and no terminal to ask: set SIGNET_NEW_PASSPHRASE")
				}
				if newPass, err = prompt("New passphrase: ", true); err != nil {
					return err
				}
			}
			if err := s.Passwd(args[0], newPass); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "changed the passphrase of key %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, generate, importCmd, export, remove, passwd)
	return cmd
}

func printKeys(w io.Writer, list []keys.Info) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tGUN\tKEY ID\tLOCATION")
	for _, k := range list {
		gun := k.GUN
		if gun == "" {
			gun = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Role, gun, k.ID, k.Location)
	}
	tw.Flush()
}

// readCapped reads a small file whole, refusing bigger ones.
func readCapped(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes: not a key file (limit %d)", path, fi.Size(), max)
	}
	return os.ReadFile(path)
}
