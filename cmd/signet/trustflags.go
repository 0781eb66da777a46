package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/keys"
)

// trustFlags are the flags every publisher command shares.
type trustFlags struct {
	server        string
	trustDir      string
	user          string
	passwordStdin bool
	caFile        string
}

func (f *trustFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "trust-server", "", "trust server URL (default $SIGNET_TRUST_SERVER, $DOCKER_CONTENT_TRUST_SERVER, else notary.docker.io for docker.io and https://<registry> otherwise)")
	fl.StringVar(&f.trustDir, "trust-dir", defaultTrustDir(), "folder of keys and cached trust data (an existing ~/.docker/trust works)")
	fl.StringVar(&f.user, "trust-username", "", "trust server user (default $SIGNET_TRUST_USERNAME, else the docker credentials for its host)")
	fl.BoolVar(&f.passwordStdin, "trust-password-stdin", false, "read the trust server password from stdin (else $SIGNET_TRUST_PASSWORD)")
	fl.StringVar(&f.caFile, "trust-ca", "", "PEM CA bundle for the trust server (default ~/.docker/tls/<host:port>/ca.crt if present)")
}

// defaultTrustDir is $SIGNET_TRUST_DIR, else <data dir>/trust.
func defaultTrustDir() string {
	if d := os.Getenv("SIGNET_TRUST_DIR"); d != "" {
		return d
	}
	return filepath.Join(defaultDataDir(), "trust")
}

// config builds the publisher configuration from flags and environment.
func (f *trustFlags) config(cmd *cobra.Command, g *globalFlags) (publish.Config, error) {
	logger, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return publish.Config{}, err
	}
	c := publish.Config{
		TrustDir: f.trustDir,
		Server:   publish.ServerFromEnv(f.server, os.Getenv),
		Logger:   logger,
		Passphrases: &keys.Retriever{
			Getenv: os.Getenv,
			Prompt: ttyPrompt(cmd.ErrOrStderr()),
		},
	}
	c.TrustAuth.CAFile = f.caFile
	password := os.Getenv("SIGNET_TRUST_PASSWORD")
	if f.passwordStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("read trust server password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	creds, err := publish.TrustCredentials(c.Server, f.user, password, os.Getenv, authn.DefaultKeychain)
	if err != nil {
		return c, err
	}
	c.TrustAuth.Credentials = creds
	// A pipeline's signer key can come from the environment instead of
	// the trust dir.
	if c.SignerKey, err = keys.FromEnv(os.Getenv, c.Passphrases, ""); err != nil {
		return c, err
	}
	return c, nil
}

// ttyPrompt asks on the terminal, or returns nil when stdin is not one.
func ttyPrompt(w io.Writer) keys.Prompt {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	return func(question string, confirm bool) (string, error) {
		fmt.Fprint(w, question)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(w)
		if err != nil {
			return "", err
		}
		if confirm {
			fmt.Fprint(w, "Repeat it: ")
			again, err := term.ReadPassword(fd)
			fmt.Fprintln(w)
			if err != nil {
				return "", err
			}
			if string(again) != string(b) {
				return "", errors.New("the passphrases differ")
			}
		}
		return string(b), nil
	}
}
