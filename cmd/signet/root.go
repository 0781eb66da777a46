package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "signet",
		Short: "Sign, serve and enforce content trust for container images",
		Long: `signet signs container image digests into TUF metadata compatible with
Notary v1 and Docker Content Trust, serves that trust data from its own
trust server, and enforces it for every client with a verifying proxy.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.setupLogging(cmd)
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newVersionCmd(), newServerCmd(g), newInitCmd(g), newPushCmd(g), newSignCmd(g), newVerifyCmd(g), newInspectCmd(g), newRevokeCmd(g), newRotateCmd(g), newMigrateCmd(g), newCeremonyCmd(g), newProxyCmd(g), newMirrorCmd(g), newKeyCmd(), newYubikeyCmd())
	root.AddCommand(newStatusCmd(g), newRefreshCmd(g))
	root.AddCommand(newSignerCmd(g), newDelegationCmd(g))
	return root
}

// logger builds the process logger from the global flags; logs go to
// stderr so stdout stays for command output.
func (g *globalFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", g.logFormat)
}

// jsonLogs reports whether logs are JSON (--log-format json).
func (g *globalFlags) jsonLogs() bool { return strings.EqualFold(g.logFormat, "json") }

// defaultDataDir is the per-user data folder: $SIGNET_DATA_DIR, else
// $XDG_DATA_HOME/signet, else ~/.local/share/signet.
func defaultDataDir() string {
	if d := os.Getenv("SIGNET_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "signet")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "signet")
	}
	return ".signet"
}
