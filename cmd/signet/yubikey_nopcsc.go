//go:build nopcsc

package main

import (
	"github.com/spf13/cobra"

	"github.com/signet-project/signet/keys/yubikey"
)

func newYubikeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "yubikey",
		Short: "YubiKey support (not in this build: built with -tags nopcsc)",
		RunE: func(*cobra.Command, []string) error {
			return yubikey.ErrUnsupported
		},
	}
}
