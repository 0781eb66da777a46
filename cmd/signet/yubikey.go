//go:build !nopcsc && (cgo || windows)

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/go-piv/piv-go/v2/piv"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/notary/trustmanager"
	"golang.org/x/term"

	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/keys/yubikey"
)

// yubikeyOptions wires the PIN and touch callbacks to the environment and
// the terminal.
func yubikeyOptions(w io.Writer) yubikey.Options {
	return yubikey.Options{
		PIN: func(serial uint32, retries int) (string, error) {
			if pin := os.Getenv("SIGNET_YUBIKEY_PIN"); pin != "" {
				return pin, nil
			}
			fd := int(os.Stdin.Fd())
			if !term.IsTerminal(fd) {
				return "", fmt.Errorf("YubiKey %d needs its PIN and there is no terminal: set SIGNET_YUBIKEY_PIN", serial)
			}
			fmt.Fprintf(w, "PIN for YubiKey %d (%d tries left): ", serial, retries)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(w)
			return string(b), err
		},
		Touch: func(serial uint32, slot string) {
			fmt.Fprintf(w, "Touch YubiKey %d to sign (slot %s)...\n", serial, slot)
		},
	}
}

func newYubikeyCmd() *cobra.Command {
	var serial uint32
	cmd := &cobra.Command{
		Use:   "yubikey",
		Short: "Keep root and signing keys on YubiKeys (PIV): list, setup, generate, attest, reset",
		Long: `Manage YubiKeys through PIV. The PIN comes from SIGNET_YUBIKEY_PIN or the
terminal; a wrong PIN reports the tries left and is not retried. Keys are
generated on the card and never leave it: there is no backup, so keep a
second YubiKey with its own root key (thresholds come with root rotation).`,
	}
	cmd.PersistentFlags().Uint32Var(&serial, "serial", 0, "the YubiKey to use, when several are inserted")

	open := func(cmd *cobra.Command) (*yubikey.Card, error) {
		return yubikey.Open(serial, yubikeyOptions(cmd.ErrOrStderr()))
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List YubiKeys: serial, firmware, PIN tries left, slots in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := yubikey.Cards()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tFIRMWARE\tPIN TRIES\tSLOT\tALGORITHM\tPIN/TOUCH\tKEY ID")
			found := 0
			for _, n := range names {
				c, err := yubikey.OpenReader(n, yubikeyOptions(cmd.ErrOrStderr()))
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "skipping %s: %v\n", n, err)
					continue
				}
				info, err := c.Info()
				c.Close()
				if err != nil {
					return err
				}
				found++
				if len(info.Slots) == 0 {
					fmt.Fprintf(tw, "%d\t%s\t%d\t-\t-\t-\t-\n", info.Serial, info.Firmware, info.PINRetries)
				}
				for _, s := range info.Slots {
					fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s/%s\t%s\n", info.Serial, info.Firmware, info.PINRetries, s.Slot, s.Algorithm, s.PINPolicy, s.TouchPolicy, s.KeyID)
				}
			}
			tw.Flush()
			if found == 0 {
				return errors.New("no YubiKey found: insert one (and check pcscd is running)")
			}
			return nil
		},
	}

	var pinPolicy, touchPolicy, role, gun, certOut string
	generate := &cobra.Command{
		Use:   "generate",
		Short: "Generate a key on the YubiKey (root in 9c, targets in 9a, a signer in 9d), attest it, write its certificate to the slot",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pp, tp, err := policies(pinPolicy, touchPolicy)
			if err != nil {
				return err
			}
			c, err := open(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if (role == "targets") != (gun != "") {
				return errors.New("a targets key needs --gun, and only a targets key takes one")
			}
			slot := yubikey.SlotFor(role)
			hk, err := c.Generate(yubikey.GenerateOptions{Slot: slot, PINPolicy: pp, TouchPolicy: tp, Subject: yubikey.Subject(role, gun)})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "generated %s key %s on YubiKey %d (slot %s)\n", role, hk.ID(), c.Serial, slot)
			if certOut != "" {
				pemBytes, err := c.CertificatePEM(slot)
				if err != nil {
					return err
				}
				if err := os.WriteFile(certOut, pemBytes, 0o644); err != nil {
					return fmt.Errorf("write %s: %w", certOut, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "certificate written to %s (to add the signer as a delegation: notary delegation add)\n", certOut)
			}
			if a, err := c.Attest(slot, nil); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "attested by Yubico: serial %d, firmware %d.%d.%d, generated on the device\n", a.Serial, a.Version.Major, a.Version.Minor, a.Version.Patch)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "This key exists only on this YubiKey: there is no backup. For a root, generate a second one on another YubiKey and keep it apart.")
			return nil
		},
	}
	generate.Flags().StringVar(&pinPolicy, "pin-policy", "always", "when the PIN is needed: always, once, never")
	generate.Flags().StringVar(&touchPolicy, "touch-policy", "always", "when a touch is needed: always, cached, never")
	generate.Flags().StringVarP(&role, "role", "r", "root", "root, targets (with --gun) or targets/<name> (a signer)")
	generate.Flags().StringVarP(&gun, "gun", "g", "", "repository of a targets key")
	generate.Flags().StringVar(&certOut, "cert", "", "also write the slot's certificate (PEM) to this file")

	attest := &cobra.Command{
		Use:   "attest",
		Short: "Verify slot 9c's attestation up to Yubico's PIV root CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			a, err := c.Attest(yubikey.RootSlot, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "slot %s of YubiKey %d: key generated on the device, firmware %d.%d.%d, PIN policy %v, touch policy %v: chain verifies to Yubico's PIV root CA\n",
				yubikey.RootSlot, a.Serial, a.Version.Major, a.Version.Minor, a.Version.Patch, a.PINPolicy, a.TouchPolicy)
			return nil
		},
	}

	setup := &cobra.Command{
		Use:   "setup",
		Short: "Change the default PIN and PUK and set a random management key stored PIN-protected",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pin, puk := os.Getenv("SIGNET_YUBIKEY_NEW_PIN"), os.Getenv("SIGNET_YUBIKEY_NEW_PUK")
			if pin == "" || puk == "" {
				return errors.New("set SIGNET_YUBIKEY_NEW_PIN and SIGNET_YUBIKEY_NEW_PUK (6 to 8 characters each)")
			}
			c, err := open(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Setup(pin, puk); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "YubiKey %d: PIN and PUK changed; a random management key is stored on the card behind the PIN\n", c.Serial)
			return nil
		},
	}

	var yes bool
	reset := &cobra.Command{
		Use:   "reset",
		Short: "Erase the YubiKey's PIV keys, certificates, PIN and PUK",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return errors.New("reset erases every PIV key on the card and cannot be undone: add --yes")
			}
			c, err := open(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Reset(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "YubiKey %d reset: PIN 123456, PUK 12345678, default management key\n", c.Serial)
			return nil
		},
	}
	reset.Flags().BoolVarP(&yes, "yes", "y", false, "confirm the reset")
	var trustDir string
	importCmd := &cobra.Command{
		Use:   "import KEY-ID",
		Short: "Copy a software root key from the trust dir into slot 9c (for teams that keep a backup)",
		Long: `Copy an ECDSA P-256 key from the trust dir into the YubiKey's slot 9c. The
key then exists on disk as well, which is the point for a backup; the
card's attestation will not vouch for it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := keyStore(cmd, trustDir)
			if err != nil {
				return err
			}
			key, err := s.Private(args[0])
			if err != nil {
				return err
			}
			c, err := open(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			hk, err := c.Import(key, yubikey.GenerateOptions{Slot: yubikey.RootSlot, Subject: yubikey.Subject("root", "")})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied key %s into slot %s of YubiKey %d\n", hk.ID(), yubikey.RootSlot, c.Serial)
			return nil
		},
	}
	importCmd.Flags().StringVar(&trustDir, "trust-dir", defaultTrustDir(), "folder of keys and cached trust data")
	cmd.AddCommand(list, generate, attest, setup, reset, importCmd)
	return cmd
}

func policies(pin, touch string) (piv.PINPolicy, piv.TouchPolicy, error) {
	pp, ok := map[string]piv.PINPolicy{"always": piv.PINPolicyAlways, "once": piv.PINPolicyOnce, "never": piv.PINPolicyNever}[strings.ToLower(pin)]
	if !ok {
		return 0, 0, fmt.Errorf("--pin-policy %q: use always, once or never", pin)
	}
	tp, ok := map[string]piv.TouchPolicy{"always": piv.TouchPolicyAlways, "cached": piv.TouchPolicyCached, "never": piv.TouchPolicyNever}[strings.ToLower(touch)]
	if !ok {
		return 0, 0, fmt.Errorf("--touch-policy %q: use always, cached or never", touch)
	}
	return pp, tp, nil
}

// yubikeyRoot opens the YubiKey for a repository's root key, generating
// one in slot 9c (on the device) if the slot is empty. With required
// false (--yubikey auto), no card found means no YubiKey (nil store);
// any other failure is an error.
func yubikeyRoot(cmd *cobra.Command, serial uint32, required bool) (trustmanager.KeyStore, func(), error) {
	c, err := yubikey.Open(serial, yubikeyOptions(cmd.ErrOrStderr()))
	if err != nil {
		if !required {
			return nil, func() {}, nil
		}
		return nil, nil, err
	}
	ks := &yubikey.KeyStore{Card: c}
	if len(ks.ListKeys()) == 0 {
		hk, err := c.Generate(yubikey.GenerateOptions{Slot: yubikey.RootSlot, Subject: yubikey.Subject("root", "")})
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		if a, err := c.Attest(yubikey.RootSlot, nil); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "attested by Yubico: generated on YubiKey %d (firmware %d.%d.%d)\n", a.Serial, a.Version.Major, a.Version.Minor, a.Version.Patch)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "generated root key %s on YubiKey %d: it exists only on this card, there is no backup; keep a second YubiKey with its own root key\n", hk.ID(), c.Serial)
	}
	return ks, func() { c.Close() }, nil
}

// wantYubikey decides --yubikey: use reports whether to look for a card,
// required whether not finding one is an error.
func wantYubikey(mode string) (use, required bool, err error) {
	switch mode {
	case "yes":
		return true, true, nil
	case "no":
		return false, false, nil
	case "auto", "":
		names, err := yubikey.Cards()
		return err == nil && len(names) > 0, false, nil
	}
	return false, false, fmt.Errorf("--yubikey %q: use auto, yes or no", mode)
}

// cardKeys lists the signet keys on inserted YubiKeys, for `signet key
// list`; no card (or no pcscd) lists nothing.
func cardKeys(w io.Writer) []keys.Info {
	names, err := yubikey.Cards()
	if err != nil {
		return nil
	}
	var out []keys.Info
	for _, n := range names {
		c, err := yubikey.OpenReader(n, yubikeyOptions(w))
		if err != nil {
			continue
		}
		ks := &yubikey.KeyStore{Card: c}
		for id, ki := range ks.ListKeys() {
			slot, _ := ks.Slot(id)
			out = append(out, keys.Info{ID: id, Role: ki.Role.String(), GUN: ki.Gun.String(), Location: fmt.Sprintf("YubiKey %d slot %s", c.Serial, slot)})
		}
		c.Close()
	}
	return out
}

// insertedCards opens every inserted YubiKey as a key store (for signing
// a ceremony with whichever card is in the reader); none is no error.
func insertedCards(cmd *cobra.Command) ([]trustmanager.KeyStore, func()) {
	names, err := yubikey.Cards()
	if err != nil || len(names) == 0 {
		return nil, func() {}
	}
	var stores []trustmanager.KeyStore
	var cards []*yubikey.Card
	for _, n := range names {
		c, err := yubikey.OpenReader(n, yubikeyOptions(cmd.ErrOrStderr()))
		if err != nil {
			continue // a reader with no card in it
		}
		cards = append(cards, c)
		stores = append(stores, &yubikey.KeyStore{Card: c})
	}
	return stores, func() {
		for _, c := range cards {
			c.Close()
		}
	}
}

// cardOf describes the card holding a key (by its canonical ID), for
// the ceremony transcript: "YubiKey 12345678 slot 9c".
func cardOf(stores []trustmanager.KeyStore) func(string) string {
	return func(keyID string) string {
		for _, s := range stores {
			ks, ok := s.(*yubikey.KeyStore)
			if !ok {
				continue
			}
			if slot, ok := ks.Slot(keyID); ok {
				return fmt.Sprintf("YubiKey %d slot %s", ks.Card.Serial, slot)
			}
		}
		return "key file"
	}
}
