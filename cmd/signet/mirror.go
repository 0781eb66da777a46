package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/mirror"
	"github.com/signet-project/signet/trust/verify"
)

type mirrorFlags struct {
	from, to           string
	file               string
	rootCertIDs        []string
	rootCA             string
	parallel           int
	maxRequests        int
	fromCA, toCA       string
	fromUser, toUser   string
	expiryWarning      time.Duration
	repositoriesOnArgs []string
}

func newMirrorCmd(g *globalFlags) *cobra.Command {
	var f mirrorFlags
	cmd := &cobra.Command{
		Use:   "mirror --from SOURCE [--to DEST] [IMAGE...]",
		Short: "Copy repositories' trust data from a Notary server, trust dir or archive into signet",
		Long: `Copy each repository's complete trust data, byte for byte, verified as a
client would before anything is written: every root version, the current
targets and delegations, snapshot and timestamp.

SOURCE (--from) is a Notary v1 server URL (notary-server, notary.docker.io,
another signet server), a docker or notary client's trust dir
(~/.docker/trust, ~/.notary: the metadata it cached), or a folder that
'signet mirror --to DIR' wrote. DEST (--to, default $SIGNET_TRUST_SERVER)
is a signet trust server started with --allow-import, or a folder for an
offline archive.

IMAGE is a repository (docker.io/library/alpine, registry:5000/team/app).
--file reads more, one per line (- for stdin). With none, a trust dir or
archive gives every repository it holds; a server must be told.

The root is verified against the destination's, if it has one (the
source must extend it); else the root a trust dir holds; else the
source's 1.root.json, trusted on first use unless --root-cert-id or
--root-ca pin the current root. Expired data is copied and reported.
Re-running copies only what changed.

Exit status: 0 all copied or unchanged, 1 a repository failed, 2 bad
arguments.`,
		Example: `  signet mirror --from https://notary.docker.io --to https://trust.example.com docker.io/team/app
  signet mirror --from ~/.docker/trust --to https://trust.example.com
  signet mirror --from https://notary.example.com --to ./trust-archive --file repos.txt
  signet mirror --from ./trust-archive --to https://trust.example.com`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.repositoriesOnArgs = args
			return runMirror(cmd, g, &f)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// register adds the mirror flags (shared with signet migrate).
func (f *mirrorFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.from, "from", "", "Notary server URL, trust dir or archive folder to copy from")
	fl.StringVar(&f.to, "to", "", "signet trust server URL or archive folder to copy to (default $SIGNET_TRUST_SERVER)")
	fl.StringVarP(&f.file, "file", "f", "", "read repositories from FILE (- for stdin), one per line")
	fl.StringSliceVar(&f.rootCertIDs, "root-cert-id", nil, "accept only current roots with this certificate key ID (repeatable)")
	fl.StringVar(&f.rootCA, "root-ca", "", "accept only current roots whose certificates chain to this PEM CA")
	fl.IntVar(&f.parallel, "parallel", 4, "repositories copied at once")
	fl.IntVar(&f.maxRequests, "max-requests", 8, "requests in flight to a source server")
	fl.StringVar(&f.fromCA, "from-ca", "", "PEM CA bundle for the source server (default ~/.docker/tls/<host:port>/ca.crt if present)")
	fl.StringVar(&f.toCA, "to-ca", "", "PEM CA bundle for the destination server (default ~/.docker/tls/<host:port>/ca.crt if present)")
	fl.StringVar(&f.fromUser, "from-username", "", "source server user (default $SIGNET_MIRROR_FROM_USERNAME, else the docker credentials for its host or the repository's registry); password in $SIGNET_MIRROR_FROM_PASSWORD")
	fl.StringVar(&f.toUser, "to-username", "", "destination server user (default $SIGNET_TRUST_USERNAME, else the docker credentials for its host); password in $SIGNET_TRUST_PASSWORD")
	fl.DurationVar(&f.expiryWarning, "expiry-warning", 7*24*time.Hour, "print the proxy archive rule for timestamps expiring within this")
}

func runMirror(cmd *cobra.Command, g *globalFlags, f *mirrorFlags) error {
	logger, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return &exitError{2, err}
	}
	opts, err := f.options(cmd.InOrStdin())
	if err != nil {
		return &exitError{2, err}
	}
	errw := cmd.ErrOrStderr()
	opts.Logger = logger
	opts.Progress = func(done, total int, r mirror.Result) {
		if g.jsonLogs() {
			logger.Info("mirror", "gun", r.GUN, "outcome", r.Outcome.String(), "done", done, "total", total, "stored", len(r.Stored), "files", r.Files, "err", r.Err)
			return
		}
		fmt.Fprintf(errw, "[%d/%d] %s\n", done, total, progressLine(r))
	}
	rep, err := mirror.Run(cmd.Context(), opts)
	if err != nil {
		return &exitError{2, err}
	}
	printMirrorSummary(cmd.OutOrStdout(), rep, f.expiryWarning)
	if n := rep.Count(mirror.Failed); n > 0 {
		return fmt.Errorf("%d of %d repositories failed; run the same command again once the cause is fixed (what was copied stays)", n, len(rep.Results))
	}
	return nil
}

// options builds the run's options from the flags and environment.
func (f *mirrorFlags) options(stdin io.Reader) (mirror.Options, error) {
	var opts mirror.Options
	switch {
	case f.parallel < 1:
		return opts, fmt.Errorf("--parallel %d: give a positive number", f.parallel)
	case f.maxRequests < 1:
		return opts, fmt.Errorf("--max-requests %d: give a positive number", f.maxRequests)
	case f.expiryWarning < 0:
		return opts, fmt.Errorf("--expiry-warning %s: give a positive duration", f.expiryWarning)
	}
	repos, err := readRepositories(stdin, f.repositoriesOnArgs, f.file)
	if err != nil {
		return opts, err
	}
	fromUser, fromPassword := f.fromUser, os.Getenv("SIGNET_MIRROR_FROM_PASSWORD")
	if fromUser == "" {
		fromUser = os.Getenv("SIGNET_MIRROR_FROM_USERNAME")
	}
	if fromUser != "" && fromPassword == "" {
		return opts, fmt.Errorf("source user %q has no password: set SIGNET_MIRROR_FROM_PASSWORD", fromUser)
	}
	src, err := mirror.OpenSource(f.from, mirror.SourceOptions{
		Auth:        trust.TransportOptions{Credentials: trust.Credentials{Username: fromUser, Password: fromPassword}, CAFile: f.fromCA},
		Keychain:    authn.DefaultKeychain,
		MaxRequests: f.maxRequests,
	})
	if err != nil {
		return opts, err
	}
	to := f.to
	if to == "" {
		to = os.Getenv("SIGNET_TRUST_SERVER")
	}
	toAuth := trust.TransportOptions{CAFile: f.toCA}
	if strings.Contains(to, "://") {
		if toAuth.Credentials, err = publish.TrustCredentials(to, f.toUser, os.Getenv("SIGNET_TRUST_PASSWORD"), os.Getenv, authn.DefaultKeychain); err != nil {
			return opts, err
		}
	}
	sink, err := mirror.OpenSink(to, toAuth)
	if err != nil {
		return opts, err
	}
	return mirror.Options{
		Source:        src,
		Sink:          sink,
		Repositories:  repos,
		Pin:           verify.Pin{CertIDs: f.rootCertIDs, CAFile: f.rootCA},
		Parallel:      f.parallel,
		ExpiryWarning: f.expiryWarning,
	}, nil
}

// readRepositories joins the arguments and --file's lines (blank lines
// and # comments skipped).
func readRepositories(stdin io.Reader, args []string, file string) ([]string, error) {
	repos := append([]string(nil), args...)
	if file == "" {
		return repos, nil
	}
	r := stdin
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		defer fh.Close()
		r = fh
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("--file %s line %d: %q: one repository per line", file, n, line)
		}
		repos = append(repos, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--file %s: %w", file, err)
	}
	return repos, nil
}

func progressLine(r mirror.Result) string {
	if r.Outcome == mirror.Failed {
		return fmt.Sprintf("%s: FAILED: %v", r.GUN, r.Err)
	}
	s := fmt.Sprintf("%s: %s, %d of %d files stored (root v%d), verified from %s", r.GUN, r.Outcome, len(r.Stored), r.Files, r.RootVersion, r.Anchor)
	if len(r.Notes) > 0 {
		s += "; " + strings.Join(r.Notes, "; ")
	}
	return s
}

func printMirrorSummary(w io.Writer, rep *mirror.Report, warn time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tRESULT\tSTORED\tROOT\tTIMESTAMP EXPIRES\tSNAPSHOT SHA256")
	for _, r := range rep.Results {
		if r.Outcome == mirror.Failed {
			fmt.Fprintf(tw, "%s\tFAILED\t-\t-\t-\t-\n", r.GUN)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\tv%d\t%s\t%s\n", r.GUN, r.Outcome, len(r.Stored), r.Files, r.RootVersion,
			r.Expires["timestamp"].UTC().Format("2006-01-02 15:04"), r.SnapshotSHA256)
	}
	tw.Flush()
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	var failed, notes, rules []string
	for _, r := range rep.Results {
		if r.Err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.GUN, r.Err))
		}
		for _, n := range r.Notes {
			notes = append(notes, r.GUN+": "+n)
		}
		if r.ArchiveRule != "" {
			rules = append(rules, r.GUN+": "+r.ArchiveRule)
		}
	}
	section("Failed:", failed)
	section("Notes:", notes)
	section(fmt.Sprintf("Proxy archive rules (timestamp expired or expiring within %s; add to the repository's policy rule):", days(warn)), rules)
	fmt.Fprintf(w, "\n%d repositories: %d copied, %d unchanged, %d failed in %s", len(rep.Results),
		rep.Count(mirror.Copied), rep.Count(mirror.Unchanged), rep.Count(mirror.Failed), rep.Elapsed.Round(time.Millisecond))
	if rep.Requests > 0 {
		fmt.Fprintf(w, "; %d requests to the source (%.1f/s)", rep.Requests, float64(rep.Requests)/rep.Elapsed.Seconds())
	}
	fmt.Fprintln(w)
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := int(d / (24 * time.Hour)); n != 1 {
			return fmt.Sprintf("%d days", n)
		}
		return "1 day"
	}
	return d.String()
}
