package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/registry/blobcache/bucket"
	"github.com/signet-project/signet/registry/proxy"
	"github.com/signet-project/signet/trust/server"
	"github.com/signet-project/signet/trust/server/auth"
	"github.com/signet-project/signet/trust/verify"
)

type proxyFlags struct {
	addr, upstream, trustServer, policy string
	tofu                                bool
	rootCertIDs, signers                []string
	rootCA, mode                        string
	refresh, grace                      time.Duration
	tlsCert, tlsKey, clientCA, htpasswd string
	trustCA                             string
	upCreds, upUser, upPasswordFile     string
	cacheDir                            string
	cacheSize                           sizeValue
	noCache                             bool
	scrub                               time.Duration
	cacheShared                         string
}

func newProxyCmd(g *globalFlags) *cobra.Command {
	f := &proxyFlags{}
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the verifying pull-through registry proxy",
		Long: `Run a pull-through registry proxy that serves only signed images: a tag is
answered with the manifest whose digest the trust data signs, fetched from
the upstream by that digest and checked byte for byte; digests only if
signed or referenced by a signed index or served manifest; nothing else.
Denials are 403 DENIED with the image, the reason and the policy rule.

Quick start (no policy file): every repository of --upstream, docker's rule
(targets/releases, else targets), roots pinned with --root-cert-id or
--root-ca, or trusted on first use with --tofu. --policy FILE replaces the
quick-start flags.

Upstream access is anonymous unless you grant more: whoever can reach the
proxy can pull what its upstream credentials can read (within the policy).
--upstream-credentials docker uses the docker credentials of the user
running the proxy; --upstream-username with --upstream-password-file uses
basic auth; a policy file sets credentials per upstream.

Blobs and verified manifests are cached on disk (--cache-dir, default
$XDG_CACHE_HOME/signet/blobs, bounded by --cache-size), verified before
they are kept and served only while the trust data still allows them:
every request is decided first. What is cached and signed is served while
the upstream is down. --no-cache streams every blob from the upstream.`,
		Example: `  signet proxy --addr 127.0.0.1:5001 --upstream http://127.0.0.1:5000 --trust-server http://127.0.0.1:4443 --tofu
  signet proxy --addr :5443 --tls-cert tls.crt --tls-key tls.key --policy /etc/signet/policy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProxy(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:5001", "address to listen on")
	fl.StringVar(&f.upstream, "upstream", "", "upstream registry URL (quick start)")
	fl.StringVar(&f.trustServer, "trust-server", "", "trust server URL (quick start)")
	fl.BoolVar(&f.tofu, "tofu", false, "trust each repository's root on first use (quick start)")
	fl.StringSliceVar(&f.rootCertIDs, "root-cert-id", nil, "accepted root certificate key ID (repeatable; quick start)")
	fl.StringVar(&f.rootCA, "root-ca", "", "PEM CA that root certificates must chain to (quick start)")
	fl.StringSliceVar(&f.signers, "signer", nil, "delegation that must have signed (repeatable; all must agree); default docker's rule")
	fl.StringVar(&f.mode, "mode", "enforce", "enforce, or warn (serve unsigned images with a Warning header)")
	fl.StringVar(&f.upCreds, "upstream-credentials", proxy.CredentialsAnonymous, "what the proxy presents to the upstream: anonymous, docker (~/.docker/config.json and credential helpers of the user running the proxy) or basic (quick start)")
	fl.StringVar(&f.upUser, "upstream-username", "", "upstream user for basic credentials (quick start)")
	fl.StringVar(&f.upPasswordFile, "upstream-password-file", "", "file holding the upstream password for basic credentials (quick start)")
	fl.StringVar(&f.policy, "policy", "", "policy file (YAML); replaces the quick-start flags")
	fl.StringVar(&f.trustCA, "trust-ca", "", "PEM CA bundle for the trust server (default ~/.docker/tls/<host:port>/ca.crt if present)")
	fl.DurationVar(&f.refresh, "refresh", 30*time.Second, "how often trust data is refreshed per repository")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate for clients")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS key for --tls-cert")
	fl.StringVar(&f.clientCA, "client-ca", "", "require client certificates signed by this CA (mTLS)")
	fl.StringVar(&f.htpasswd, "htpasswd", "", "require HTTP basic auth from clients (bcrypt htpasswd file)")
	fl.DurationVar(&f.grace, "shutdown-grace", 15*time.Second, "how long to let requests finish on shutdown")
	fl.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "folder of the blob cache (one proxy per folder)")
	f.cacheSize = sizeValue(blobcache.DefaultMaxBytes)
	fl.Var(&f.cacheSize, "cache-size", "bound of the blob cache, in bytes or with a unit (20GiB, 500MB); least recently used blobs are evicted beyond it")
	fl.BoolVar(&f.noCache, "no-cache", false, "no blob cache: stream every blob from the upstream, keep manifests in memory only")
	fl.DurationVar(&f.scrub, "cache-scrub-interval", 24*time.Hour, "how often every cached file is hashed again (0: never)")
	fl.StringVar(&f.cacheShared, "cache-shared", "", "a bucket the proxy's replicas share, looked up before the upstream: s3://BUCKET?region=R[&endpoint=URL&use_path_style=true] (AWS credentials from the environment) or file:///FOLDER")
	return cmd
}

// sizeValue is a byte count flag that takes units (20GiB, 500MB).
type sizeValue int64

func (v *sizeValue) String() string {
	n := int64(*v)
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (v *sizeValue) Set(s string) error {
	n, err := proxy.ParseSize(s)
	if err != nil {
		return err
	}
	if n <= 0 {
		return fmt.Errorf("size %q: give more than 0 bytes (--no-cache turns the cache off)", s)
	}
	*v = sizeValue(n)
	return nil
}

func (v *sizeValue) Type() string { return "size" }

// defaultCacheDir is the per-user cache folder of the blob cache:
// $XDG_CACHE_HOME/signet/blobs, else ~/.cache/signet/blobs (the
// system's user cache folder elsewhere). The proxy has no data folder:
// what it keeps on disk is a cache, fetched again if lost.
func defaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "signet", "blobs")
}

// proxyCache is the blob cache settings: the policy file's cache section,
// overridden by the flags given on the command line.
type proxyCache struct {
	off    bool
	dir    string
	max    int64
	scrub  time.Duration
	shared string // bucket URL, "" for none
}

func cacheSettings(fl *pflag.FlagSet, f *proxyFlags, file proxy.CacheConfig) (proxyCache, error) {
	c := proxyCache{off: file.Disabled, dir: f.cacheDir, max: int64(f.cacheSize), scrub: f.scrub, shared: f.cacheShared}
	if file.Shared != "" && !fl.Changed("cache-shared") {
		c.shared = file.Shared
	}
	if file.Dir != "" && !fl.Changed("cache-dir") {
		c.dir = file.Dir
	}
	if file.MaxBytes > 0 && !fl.Changed("cache-size") {
		c.max = file.MaxBytes
	}
	if file.ScrubInterval != nil && !fl.Changed("cache-scrub-interval") {
		c.scrub = *file.ScrubInterval
	}
	if fl.Changed("no-cache") {
		c.off = f.noCache
	}
	if c.off && fl.Changed("no-cache") && (fl.Changed("cache-dir") || fl.Changed("cache-size") || fl.Changed("cache-shared")) {
		return proxyCache{}, errors.New("--no-cache turns the cache off: drop --cache-dir, --cache-size and --cache-shared, or --no-cache")
	}
	if c.scrub < 0 {
		return proxyCache{}, fmt.Errorf("--cache-scrub-interval %v: give 0 (never) or more", c.scrub)
	}
	if !c.off && c.dir == "" {
		return proxyCache{}, errors.New("no folder for the blob cache ($XDG_CACHE_HOME and $HOME are unset): give --cache-dir, or --no-cache")
	}
	return c, nil
}

// proxyConfig is the policy (from --policy or the quick-start flags) and
// the policy file's cache section, if any.
func proxyConfig(f *proxyFlags) (proxy.Config, error) {
	if f.policy != "" {
		if f.upstream != "" || f.trustServer != "" || f.tofu || len(f.rootCertIDs) > 0 || f.rootCA != "" || len(f.signers) > 0 ||
			f.upCreds != proxy.CredentialsAnonymous || f.upUser != "" || f.upPasswordFile != "" {
			return proxy.Config{}, errors.New("--policy replaces --upstream, --upstream-credentials, --upstream-username, --upstream-password-file, --trust-server, --tofu, --root-cert-id, --root-ca and --signer: use one or the other")
		}
		return proxy.LoadConfig(f.policy)
	}
	ups, pol, err := proxyPolicy(f)
	return proxy.Config{Upstreams: ups, Policy: pol}, err
}

// proxyPolicy is the quick start's policy.
func proxyPolicy(f *proxyFlags) ([]proxy.Upstream, proxy.Policy, error) {
	if f.upstream == "" || f.trustServer == "" {
		return nil, proxy.Policy{}, errors.New("give --upstream and --trust-server (quick start) or --policy FILE")
	}
	if f.mode != "enforce" && f.mode != "warn" {
		return nil, proxy.Policy{}, fmt.Errorf("--mode %q: use enforce or warn", f.mode)
	}
	ups, pol, err := proxy.QuickStart(f.upstream, f.trustServer, verify.Pin{TOFU: f.tofu, CertIDs: f.rootCertIDs, CAFile: f.rootCA}, f.signers, f.mode)
	if err != nil {
		return nil, proxy.Policy{}, err
	}
	if f.upUser != "" || f.upPasswordFile != "" {
		if f.upCreds != proxy.CredentialsAnonymous && f.upCreds != proxy.CredentialsBasic {
			return nil, proxy.Policy{}, fmt.Errorf("--upstream-username and --upstream-password-file go with --upstream-credentials basic, not %q", f.upCreds)
		}
		f.upCreds = proxy.CredentialsBasic
	}
	ups[0].Credentials, ups[0].Username, ups[0].PasswordFile = f.upCreds, f.upUser, f.upPasswordFile
	if f.upCreds == proxy.CredentialsBasic && (f.upUser == "" || f.upPasswordFile == "") {
		return nil, proxy.Policy{}, errors.New("--upstream-credentials basic needs --upstream-username and --upstream-password-file")
	}
	return ups, pol, nil
}

func runProxy(cmd *cobra.Command, g *globalFlags, f *proxyFlags) error {
	logger, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	cfg, err := proxyConfig(f)
	if err != nil {
		return err
	}
	ups, pol := cfg.Upstreams, cfg.Policy
	cache, err := cacheSettings(cmd.Flags(), f, cfg.Cache)
	if err != nil {
		return err
	}
	var store *blobcache.Store
	shared := "none"
	if !cache.off {
		opts := blobcache.Options{MaxBytes: cache.max, Logger: logger}
		if cache.shared != "" {
			b, err := bucket.Open(cmd.Context(), cache.shared)
			if err != nil {
				return err
			}
			defer b.Close()
			opts.Shared, shared = b, b.String()
		}
		s, err := blobcache.Open(cache.dir, opts)
		if err != nil {
			return err
		}
		// Closed after the server has shut down (deferred calls run last
		// first), once the scrub has stopped.
		defer s.Close()
		store = s
		scrubCtx, stopScrub := context.WithCancel(cmd.Context())
		scrubbed := make(chan struct{})
		go func() {
			defer close(scrubbed)
			proxy.ScrubCache(scrubCtx, store, cache.scrub, logger)
		}()
		defer func() { stopScrub(); <-scrubbed }()
	}
	p, err := proxy.New(proxy.Options{Upstreams: ups, Policy: pol, Keychain: authn.DefaultKeychain, TrustCAFile: f.trustCA, RefreshInterval: f.refresh, Logger: logger, Store: store})
	if err != nil {
		return err
	}
	var h http.Handler = p.Handler()
	if f.htpasswd != "" {
		ht, err := auth.NewHtpasswd(f.htpasswd, "signet proxy")
		if err != nil {
			return err
		}
		h = basicAuth(ht, h)
	}
	tlsConfig, err := proxyTLS(f)
	if err != nil {
		return err
	}
	ln, scheme, err := listen(f.addr, tlsConfig)
	if err != nil {
		return err
	}
	for _, u := range ups {
		logger.Info("upstream", "url", u.URL, "prefix", u.Prefix, "credentials", u.Presents())
	}
	for _, r := range pol.Rules {
		logger.Info("policy rule", "name", r.Name, "match", r.Match, "trust_server", r.TrustServer, "tofu", r.Pin.TOFU, "mode", r.Mode)
	}
	if store != nil {
		st := store.Stats()
		logger.Info("blob cache", "dir", cache.dir, "max_bytes", cache.max, "scrub_interval", cache.scrub, "objects", st.Objects, "size_bytes", st.Size, "shared", shared)
	} else {
		logger.Info("blob cache off: every blob streams from the upstream")
	}
	fmt.Fprintf(cmd.OutOrStdout(), "signet proxy on %s://%s\n", scheme, ln.Addr())
	// No write timeout: a large layer may stream for a long time; a
	// client that goes away cancels its upstream request.
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return server.ServeServer(cmd.Context(), ln, srv, f.grace)
}

// basicAuth guards everything but health and readiness with htpasswd.
func basicAuth(a *auth.Htpasswd, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		if err := a.Authorize(r, "", "pull"); err != nil {
			var ch interface{ Header() string }
			if errors.As(err, &ch) {
				w.Header().Set("WWW-Authenticate", ch.Header())
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":%q}]}\n", err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

func proxyTLS(f *proxyFlags) (*tls.Config, error) {
	if f.tlsCert == "" && f.tlsKey == "" {
		if f.clientCA != "" {
			return nil, errors.New("--client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if f.tlsCert == "" || f.tlsKey == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cfg, err := serverTLS(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, err
	}
	if f.clientCA != "" {
		pem, err := os.ReadFile(f.clientCA)
		if err != nil {
			return nil, fmt.Errorf("read client CA %q: %w", f.clientCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %q holds no PEM certificate", f.clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
