//go:build nopcsc || (!cgo && !windows)

package main

import (
	"io"

	"github.com/spf13/cobra"
	"github.com/theupdateframework/notary/trustmanager"

	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/keys/yubikey"
)

func newYubikeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "yubikey",
		Short: "YubiKey support (not in this build: built without PC/SC)",
		RunE: func(*cobra.Command, []string) error {
			return yubikey.ErrUnsupported
		},
	}
}

func yubikeyRoot(*cobra.Command, uint32, bool) (trustmanager.KeyStore, func(), error) {
	return nil, nil, yubikey.ErrUnsupported
}

// wantYubikey: without PC/SC only "no" and "auto" (meaning no) work.
func wantYubikey(mode string) (use, required bool, err error) {
	if mode == "yes" {
		return false, false, yubikey.ErrUnsupported
	}
	return false, false, nil
}

func cardKeys(io.Writer) []keys.Info { return nil }

func insertedCards(*cobra.Command) ([]trustmanager.KeyStore, func()) { return nil, func() {} }

func cardOf([]trustmanager.KeyStore) func(string) string {
	return func(string) string { return "key file" }
}
