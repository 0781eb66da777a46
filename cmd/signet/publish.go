package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/trust"
)

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newPushCmd(g *globalFlags) *cobra.Command {
	var (
		tf            trustFlags
		allowUnsigned bool
		quiet         bool
	)
	cmd := &cobra.Command{
		Use:   "push SRC IMAGE:TAG",
		Short: "Push an image and sign the pushed digest",
		Long: `Push an image to a registry, then sign the digest of the exact manifest
pushed into the repository's trust data (one publish).

SRC is an OCI image layout folder (holding one image or index), a
'docker save' tarball, or an image reference in another registry. A
multi-arch index is pushed and signed as the index digest.

The trust side is checked before anything is uploaded. If no key can be
unlocked (no passphrase in the environment and no terminal), nothing is
pushed unless --allow-unsigned is given.`,
		Example: `  SIGNET_ROOT_PASSPHRASE=... SIGNET_REPOSITORY_PASSPHRASE=... \
    signet push ./build/oci registry.example.com/team/app:1.2.0`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			if !quiet {
				c.Registry.Progress = progress(cmd.ErrOrStderr(), g.jsonLogs(), c.Logger)
			}
			s, unsigned, err := publish.Push(cmd.Context(), c, args[0], args[1], allowUnsigned)
			if err != nil {
				return err
			}
			if unsigned != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "pushed %s %s (%d bytes) UNSIGNED (--allow-unsigned): %v\n", s.Image, s.Digest, s.Size, unsigned)
				return nil
			}
			printSigned(cmd.OutOrStdout(), []publish.Signed{s})
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().BoolVar(&allowUnsigned, "allow-unsigned", false, "push even if the tag cannot be signed (no key unlocks, or the trust server is unreachable)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no upload progress")
	return cmd
}

// progress prints upload progress to w at most every half second and
// returns the channel go-containerregistry reports on. With JSON logs it
// logs through logger instead, so that every stderr line is JSON.
func progress(w io.Writer, jsonLogs bool, logger *slog.Logger) chan v1.Update {
	ch := make(chan v1.Update, 64)
	report := func(u v1.Update, done bool) {
		switch {
		case jsonLogs && done:
			logger.Info("uploaded", "bytes", u.Total)
		case jsonLogs:
			logger.Info("uploading", "complete", u.Complete, "total", u.Total)
		case done:
			fmt.Fprintf(w, "uploaded: %d bytes\n", u.Total)
		default:
			fmt.Fprintf(w, "uploading: %d/%d bytes (%d%%)\n", u.Complete, u.Total, u.Complete*100/u.Total)
		}
	}
	go func() {
		var last time.Time
		var u v1.Update
		for u = range ch {
			if time.Since(last) > 500*time.Millisecond && u.Total > 0 {
				report(u, false)
				last = time.Now()
			}
		}
		if u.Total > 0 {
			report(u, true)
		}
	}()
	return ch
}

func printSigned(w io.Writer, signed []publish.Signed) {
	for _, s := range signed {
		if s.Init {
			fmt.Fprintf(w, "initialised trust data for %s\n", s.GUN)
			break
		}
	}
	noted := map[string]bool{}
	for _, s := range signed {
		for _, n := range s.Notes {
			if !noted[s.GUN+n] {
				noted[s.GUN+n] = true
				fmt.Fprintf(w, "%s: %s\n", s.GUN, n)
			}
		}
	}
	for _, s := range signed {
		fmt.Fprintf(w, "signed %s %s (%d bytes) into %s\n", s.Image, s.Digest, s.Size, strings.Join(s.Roles, ", "))
	}
}

func newSignCmd(g *globalFlags) *cobra.Command {
	var (
		tf     trustFlags
		digest string
		size   int64
		file   string
	)
	cmd := &cobra.Command{
		Use:   "sign IMAGE:TAG...",
		Short: "Sign tags as the registry serves them, in one publish per repository",
		Long: `Sign tags: resolve each tag's manifest digest and size from the registry,
and sign them all into the repository's trust data with one publish per
repository. A repository without trust data is initialised first.

--digest and --size sign one tag without asking the registry. --file
reads tags from a file (or - for stdin), one per line:
  IMAGE:TAG                    resolved from the registry
  IMAGE:TAG sha256:HEX SIZE    signed as given
Blank lines and lines starting with # are ignored.`,
		Example: `  signet sign registry.example.com/team/app:1.2.0 registry.example.com/team/app:latest
  signet sign --digest sha256:3f1... --size 1572 registry.example.com/team/app:1.2.0
  crane ls registry.example.com/team/app | sed 's|^|registry.example.com/team/app:|' | signet sign --file -`,
		RunE: func(cmd *cobra.Command, args []string) error {
			reqs, err := signRequests(cmd.InOrStdin(), args, file, digest, size)
			if err != nil {
				return err
			}
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			signed, err := publish.Sign(cmd.Context(), c, reqs)
			printSigned(cmd.OutOrStdout(), signed)
			return err
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&digest, "digest", "", "sign this manifest digest (sha256:HEX) without asking the registry")
	cmd.Flags().Int64Var(&size, "size", 0, "manifest size in bytes, with --digest")
	cmd.Flags().StringVarP(&file, "file", "f", "", "read tags from FILE (- for stdin)")
	return cmd
}

// signRequests builds the list of tags to sign from args, --file and
// --digest/--size.
func signRequests(stdin io.Reader, args []string, file, digest string, size int64) ([]publish.Request, error) {
	if size < 0 {
		return nil, fmt.Errorf("--size %d: the manifest size must be a positive number of bytes", size)
	}
	if (digest != "") != (size != 0) {
		return nil, errors.New("--digest and --size go together")
	}
	if digest != "" && (len(args) != 1 || file != "") {
		return nil, errors.New("--digest signs exactly one IMAGE:TAG")
	}
	var reqs []publish.Request
	for _, a := range args {
		reqs = append(reqs, publish.Request{Image: a, Digest: digest, Size: size})
	}
	if file != "" {
		r := stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return nil, fmt.Errorf("read tags: %w", err)
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			fields := strings.Fields(line)
			switch len(fields) {
			case 1:
				reqs = append(reqs, publish.Request{Image: fields[0]})
			case 3:
				sz, err := strconv.ParseInt(fields[2], 10, 64)
				if err != nil || sz <= 0 {
					return nil, fmt.Errorf("%s line %d: size %q is not a positive number", file, n, fields[2])
				}
				reqs = append(reqs, publish.Request{Image: fields[0], Digest: fields[1], Size: sz})
			default:
				return nil, fmt.Errorf("%s line %d: want IMAGE:TAG or IMAGE:TAG sha256:HEX SIZE", file, n)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read tags from %s: %w", file, err)
		}
	}
	if len(reqs) == 0 {
		return nil, errors.New("no tags to sign: give IMAGE:TAG arguments or --file")
	}
	return reqs, nil
}

func newVerifyCmd(g *globalFlags) *cobra.Command {
	var tf trustFlags
	cmd := &cobra.Command{
		Use:   "verify IMAGE:TAG",
		Short: "Check that the registry serves the signed digest for a tag",
		Long: `Check that the manifest the registry serves now for IMAGE:TAG is the one
signed in targets/releases (else targets), as docker pulls with content
trust. The decision is made by the same engine as the proxy's: a
delegation with no keys (its signer was removed) is passed over, and one
that fails verification denies. The manifest is fetched and hashed; no
registry header is trusted.

Exit status:
  0  the registry serves the signed manifest
  1  denied: the tag is not signed, it moved after signing, the
     repository has no trust data, or the trust data failed verification
     (bad signature, expired, rolled back, oversized)
  2  the check could not be made: bad arguments or configuration, or the
     trust server or registry could not be reached`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(1)(cmd, args); err != nil {
				return &exitError{2, err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return &exitError{2, err}
			}
			v, err := publish.Verify(cmd.Context(), c, args[0])
			if err != nil {
				if publish.IsDenied(err) {
					return &exitError{1, err}
				}
				return &exitError{2, err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "verified %s %s (%d bytes) signed in %s\n", v.Image, v.Digest, v.Size, v.Role)
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{2, err} })
	tf.register(cmd)
	return cmd
}

func newInspectCmd(g *globalFlags) *cobra.Command {
	var (
		tf     trustFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "inspect IMAGE[:TAG]...",
		Short: "Show signed tags, signers, keys and expiries",
		Long: `Show what is signed for each image: signed tags and digests, the signers
(delegations) and their keys, the root and repository keys, and when each
role's metadata expires, as verified by the same engine as verify and
the proxy. --output json keeps the shape of 'docker trust inspect' field
for field (plus an "Expires" object). Delegations that are disabled (no
keys) or failed verification are named on stderr.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: use table or json", output)
			}
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			ins, err := publish.Inspect(cmd.Context(), c, args)
			if err != nil {
				return err
			}
			for _, in := range ins {
				for _, n := range in.Notes {
					fmt.Fprintf(cmd.ErrOrStderr(), "signet: warning: %s: %s\n", in.Name, n)
				}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "    ")
				return enc.Encode(ins)
			}
			for i, in := range ins {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				printInspection(cmd.OutOrStdout(), in.Inspection)
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func printInspection(w io.Writer, in trust.Inspection) {
	fmt.Fprintf(w, "Signatures for %s\n\n", in.Name)
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "SIGNED TAG\tDIGEST\tSIGNERS")
	for _, t := range in.SignedTags {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.SignedTag, t.Digest, strings.Join(t.Signers, ", "))
	}
	tw.Flush()
	if len(in.SignedTags) == 0 {
		fmt.Fprintln(w, "(no signed tags)")
	}
	if len(in.Signers) > 0 {
		fmt.Fprintf(w, "\nList of signers and their keys for %s\n\n", in.Name)
		tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "SIGNER\tKEYS")
		for _, s := range in.Signers {
			fmt.Fprintf(tw, "%s\t%s\n", s.Name, keyIDs(s.Keys))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nAdministrative keys for %s\n\n", in.Name)
	for _, a := range in.AdministrativeKeys {
		fmt.Fprintf(w, "  %s Key:\t%s\n", a.Name, keyIDs(a.Keys))
	}
	if len(in.Expires) > 0 {
		fmt.Fprintf(w, "\nExpiries\n\n")
		tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		for _, role := range sortedRoles(in.Expires) {
			fmt.Fprintf(tw, "  %s\t%s\n", role, in.Expires[role].Format(time.RFC3339))
		}
		tw.Flush()
	}
}

func keyIDs(keys []trust.Key) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return strings.Join(ids, ", ")
}

func sortedRoles(m map[string]time.Time) []string {
	order := []string{"root", "targets", "snapshot", "timestamp"}
	var out []string
	for _, r := range order {
		if _, ok := m[r]; ok {
			out = append(out, r)
		}
	}
	var rest []string
	for r := range m {
		if !contains(order, r) {
			rest = append(rest, r)
		}
	}
	sortStrings(rest)
	return append(out, rest...)
}

func newRevokeCmd(g *globalFlags) *cobra.Command {
	var (
		tf  trustFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "revoke IMAGE[:TAG]",
		Short: "Remove signatures for a tag, or for every tag of a repository",
		Long: `Remove the signature of IMAGE:TAG from every role this trust dir can sign,
in one publish. Without a tag, every signed tag of the repository is
revoked; that needs --yes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.Contains(lastSegment(args[0]), ":") && !yes {
				return fmt.Errorf("revoke %s would remove the signatures of every tag: add --yes to confirm, or name a tag", args[0])
			}
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			tags, err := publish.Revoke(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			for _, t := range tags {
				fmt.Fprintf(cmd.OutOrStdout(), "revoked signature of %s\n", t)
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "confirm revoking every tag")
	return cmd
}

func lastSegment(image string) string {
	if i := strings.LastIndex(image, "/"); i >= 0 {
		return image[i+1:]
	}
	return image
}

func newInitCmd(g *globalFlags) *cobra.Command {
	var (
		tf       trustFlags
		useYK    string
		ykSerial uint32
	)
	cmd := &cobra.Command{
		Use:   "init IMAGE",
		Short: "Create a repository's trust data (root, repository key, server-held snapshot)",
		Long: `Create and publish a repository's trust data: the first root key in the
trust dir (or a new one), a new repository (targets) key, and the
snapshot key held by the trust server, as docker does. 'signet sign' does
this on first use.

When a YubiKey is inserted (--yubikey auto, the default) or with
--yubikey yes, the root key lives on it (slot 9c): the one there, or a new
one generated on the device and attested. It never touches the disk.
--yubikey no keeps the root key in the trust dir.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.config(cmd, g)
			if err != nil {
				return err
			}
			use, required, err := wantYubikey(useYK)
			if err != nil {
				return err
			}
			if use {
				ks, closeCard, err := yubikeyRoot(cmd, ykSerial, required)
				if err != nil {
					return err
				}
				defer closeCard()
				if ks != nil {
					c.HardwareKeys = append(c.HardwareKeys, ks)
				}
			}
			created, err := publish.Init(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(cmd.OutOrStdout(), "initialised trust data for %s\n", args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s already has trust data\n", args[0])
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&useYK, "yubikey", "auto", "root key on a YubiKey: auto (if one is inserted), yes or no")
	cmd.Flags().Uint32Var(&ykSerial, "yubikey-serial", 0, "the YubiKey to use, when several are inserted")
	return cmd
}
