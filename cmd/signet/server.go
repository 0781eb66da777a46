package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-project/signet/internal/devtls"
	"github.com/signet-project/signet/trust/server"
	"github.com/signet-project/signet/trust/server/auth"
)

type serverFlags struct {
	addr           string
	dataDir        string
	db             string
	tlsCert        string
	tlsKey         string
	devTLS         bool
	devTLSHosts    []string
	authMode       string
	htpasswd       string
	realm          string
	tokenRealm     string
	tokenService   string
	tokenIssuer    string
	tokenRootCert  string
	publicReads    bool
	gunPrefixes    []string
	keyAlgorithm   string
	passphraseFile string
	allowImport    bool
	readCacheBytes int64
	limits         server.Limits
	grace          time.Duration
}

func newServerCmd(g *globalFlags) *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Notary-compatible trust server",
		Long: `Run signet's trust server: the Notary v1 server API that the notary and
docker clients speak, storing TUF metadata in SQLite (default, one file in
the data dir) or PostgreSQL (--db postgres://...).

The server signs timestamps (and snapshots, when a repository delegates
them to it) with keys kept encrypted in its database. The passphrase comes
from ` + server.PassphraseEnv + `, else --key-passphrase-file, else a random
one generated into the data dir on first start (development only).`,
		Example: `  signet server
  signet server --addr 0.0.0.0:4443 --tls-cert cert.pem --tls-key key.pem --db postgres://signet@db/signet
  signet server --dev-tls --auth htpasswd --htpasswd ./htpasswd
  signet server --allow-import --auth token ...   # while moving repositories here with signet mirror`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:4443", "address to listen on")
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "folder for the SQLite database, generated passphrase and development TLS files")
	fl.StringVar(&f.db, "db", "", "database: an SQLite file path or a postgres:// URL (default <data-dir>/server.db)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM) to serve https")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM) for --tls-cert")
	fl.BoolVar(&f.devTLS, "dev-tls", false, "serve https with a local CA and certificate made in <data-dir>/tls (development)")
	fl.StringSliceVar(&f.devTLSHosts, "dev-tls-host", nil, "extra host name or IP for the --dev-tls certificate (repeatable)")
	fl.StringVar(&f.authMode, "auth", "none", "access control: none, htpasswd or token (reads too, unless --public-reads)")
	fl.StringVar(&f.htpasswd, "htpasswd", "", "htpasswd file with bcrypt entries (--auth htpasswd)")
	fl.StringVar(&f.realm, "realm", "signet", "basic auth realm (--auth htpasswd)")
	fl.StringVar(&f.tokenRealm, "token-realm", "", "token service URL that issues tokens (--auth token)")
	fl.StringVar(&f.tokenService, "token-service", "", "service name tokens must be issued for (--auth token)")
	fl.StringVar(&f.tokenIssuer, "token-issuer", "", "issuer tokens must come from (--auth token)")
	fl.StringVar(&f.tokenRootCert, "token-rootcert", "", "PEM bundle of certificates that sign tokens (--auth token)")
	fl.BoolVar(&f.publicReads, "public-reads", false, "with --auth, let anyone read trust data (writes still need credentials)")
	fl.StringSliceVar(&f.gunPrefixes, "gun-prefix", nil, "serve only repositories whose name starts with this prefix (repeatable)")
	fl.StringVar(&f.keyAlgorithm, "key-algorithm", "ecdsa", "algorithm of server-managed keys: ecdsa or ed25519")
	fl.StringVar(&f.passphraseFile, "key-passphrase-file", "", "file holding the passphrase for server keys (if "+server.PassphraseEnv+" is unset)")
	fl.Int64Var(&f.limits.MaxRequestBytes, "max-request-bytes", 32<<20, "largest update request accepted")
	fl.Int64Var(&f.limits.MaxMetadataBytes, "max-metadata-bytes", 16<<20, "largest metadata file accepted in an update")
	fl.IntVar(&f.limits.MaxParts, "max-parts", 100, "most metadata files accepted in one update")
	fl.BoolVar(&f.allowImport, "allow-import", false, "accept imports of trust data from another server (POST /v2/<gun>/_trust/import; needs push, like a publish)")
	fl.IntVar(&f.limits.MaxImportParts, "max-import-parts", 2000, "most metadata files accepted in one import (every delegation and older root)")
	fl.Int64Var(&f.limits.MaxBytesInFlight, "max-bytes-in-flight", 256<<20, "most bytes of updates handled at once, server-wide (past it: 503 with Retry-After)")
	fl.Int64Var(&f.readCacheBytes, "read-cache-bytes", 0, "memory for answers to metadata reads (0: 64 MiB; negative: off); each read still checks one change counter in the database, so replicas never serve old data")
	fl.DurationVar(&f.grace, "shutdown-grace", 15*time.Second, "how long to let requests finish on shutdown")
	return cmd
}

func runServer(cmd *cobra.Command, g *globalFlags, f *serverFlags) error {
	ctx := cmd.Context()
	logger, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	dsn := f.db
	if dsn == "" {
		if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
			return fmt.Errorf("create data dir %q: %w", f.dataDir, err)
		}
		dsn = filepath.Join(f.dataDir, "server.db")
	}
	authz, err := buildAuth(f)
	if err != nil {
		return err
	}
	tlsConfig, err := buildTLS(f, logger)
	if err != nil {
		return err
	}
	pass, generated, err := server.KeyPassphrase(os.Getenv(server.PassphraseEnv), f.passphraseFile, f.dataDir)
	if err != nil {
		return err
	}
	if generated {
		logger.Warn("server keys are encrypted with a generated passphrase stored beside the data; set " + server.PassphraseEnv + " in production")
	}
	store, err := server.OpenStore(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	srv, err := server.New(ctx, server.Options{
		Store:          store,
		KeyPassphrase:  pass,
		KeyAlgorithm:   f.keyAlgorithm,
		Auth:           authz,
		GUNPrefixes:    f.gunPrefixes,
		Limits:         f.limits,
		AllowImport:    f.allowImport,
		ReadCacheBytes: f.readCacheBytes,
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	ln, scheme, err := listen(f.addr, tlsConfig)
	if err != nil {
		return err
	}
	logger.Info("trust server listening", "url", scheme+"://"+ln.Addr().String(), "db", string(store.Dialect()), "auth", f.authMode, "allow_import", f.allowImport)
	fmt.Fprintf(cmd.OutOrStdout(), "signet trust server on %s://%s\n", scheme, ln.Addr())
	err = server.Serve(ctx, ln, srv, tlsConfig, f.grace, logger)
	logger.Info("trust server stopped")
	return err
}

func buildAuth(f *serverFlags) (server.Authorizer, error) {
	var a auth.Authorizer
	switch f.authMode {
	case "", "none":
		if f.publicReads {
			return nil, fmt.Errorf("--public-reads needs --auth htpasswd or token")
		}
		return nil, nil
	case "htpasswd":
		if f.htpasswd == "" {
			return nil, fmt.Errorf("--auth htpasswd needs --htpasswd FILE (create it with: htpasswd -B -c FILE USER)")
		}
		h, err := auth.NewHtpasswd(f.htpasswd, f.realm)
		if err != nil {
			return nil, err
		}
		a = h
	case "token":
		var missing []string
		for name, v := range map[string]string{"--token-realm": f.tokenRealm, "--token-service": f.tokenService, "--token-issuer": f.tokenIssuer, "--token-rootcert": f.tokenRootCert} {
			if v == "" {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("--auth token needs %s", strings.Join(missing, ", "))
		}
		t, err := auth.NewToken(auth.TokenOptions{Realm: f.tokenRealm, Service: f.tokenService, Issuer: f.tokenIssuer, RootCertBundle: f.tokenRootCert})
		if err != nil {
			return nil, err
		}
		a = t
	default:
		return nil, fmt.Errorf("--auth %q: use none, htpasswd or token", f.authMode)
	}
	if f.publicReads {
		a = auth.ReadOpen(a)
	}
	return a, nil
}

func buildTLS(f *serverFlags, logger interface{ Info(string, ...any) }) (*tls.Config, error) {
	certFile, keyFile := f.tlsCert, f.tlsKey
	switch {
	case f.devTLS && (certFile != "" || keyFile != ""):
		return nil, fmt.Errorf("use either --dev-tls or --tls-cert/--tls-key, not both")
	case f.devTLS:
		hosts := append([]string{}, f.devTLSHosts...)
		if h, _, err := net.SplitHostPort(f.addr); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			hosts = append(hosts, h)
		}
		files, err := devtls.Ensure(filepath.Join(f.dataDir, "tls"), hosts, time.Now())
		if err != nil {
			return nil, err
		}
		logger.Info("development TLS", "ca", files.CACert, "hint", "docker reads the CA from ~/.docker/tls/<host:port>/ca.crt")
		certFile, keyFile = files.Cert, files.Key
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	return serverTLS(certFile, keyFile)
}

// listen opens addr and names the URL scheme clients use.
func listen(addr string, tlsConfig *tls.Config) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	if tlsConfig != nil {
		return ln, "https", nil
	}
	return ln, "http", nil
}

// serverTLS loads a certificate and key into a TLS 1.2+ server config.
func serverTLS(certFile, keyFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %q: %w", certFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}
