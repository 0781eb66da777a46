package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/keys/yubikey"
)

// Set by release builds (scripts/release.sh) with
//
//	-ldflags "-X main.version=v1.2.0 -X main.commit=<git sha> -X main.date=2026-01-02T03:04:05Z"
//
// Without them, `signet version` reads what the go command recorded in
// the binary: the module version (`go install ...@v1.2.0`), and the
// commit and its time (vcs.revision, vcs.time) of a build in a git
// checkout.
var (
	version string
	commit  string
	date    string
)

// buildInfo is what `signet version` prints.
type buildInfo struct {
	Version  string // v1.2.0, or "dev"
	Commit   string // git commit, or "unknown"
	Modified bool   // built from a checkout with uncommitted changes
	Date     string // release build time or commit time (RFC 3339), or "unknown"
	Go       string // go1.26.0
	Platform string // linux/amd64
	YubiKey  bool   // built with PC/SC (YubiKey support)
}

// readBuildInfo combines the -X values (ldVersion, ldCommit, ldDate), which
// win, with the build information the go command recorded (info, nil if
// there is none).
func readBuildInfo(ldVersion, ldCommit, ldDate string, info *debug.BuildInfo) buildInfo {
	b := buildInfo{
		Version: ldVersion, Commit: ldCommit, Date: ldDate,
		Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		YubiKey: yubikey.Supported,
	}
	if info != nil {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		if info.GoVersion != "" {
			b.Go = info.GoVersion
		}
		var rev, at string
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		// The recorded commit describes the build only if it is the
		// commit the -X values name (or they name none).
		if b.Commit == "" || b.Commit == rev {
			b.Commit, b.Modified = rev, modified
		}
		if b.Date == "" {
			b.Date = at
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

func (b buildInfo) write(w io.Writer) {
	fmt.Fprintf(w, "signet %s\n", b.Version)
	c := b.Commit
	if b.Modified {
		c += " (with uncommitted changes)"
	}
	yk := "no (built without PC/SC)"
	if b.YubiKey {
		yk = "yes"
	}
	fmt.Fprintf(w, "commit:    %s\nbuilt:     %s\ngo:        %s\nplatform:  %s\nyubikey:   %s\n", c, b.Date, b.Go, b.Platform, yk)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print signet's version, commit, build date, Go version, platform and YubiKey support",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, _ := debug.ReadBuildInfo()
			readBuildInfo(version, commit, date, info).write(cmd.OutOrStdout())
			return nil
		},
	}
}
