// Package proxy is signet's verifying pull-through registry proxy. It
// speaks the OCI distribution API for pulls and answers a tag only with
// the manifest whose digest the trust data signs, fetched from the
// upstream by that digest and checked byte for byte; digests are served
// only if signed, or children of a signed index, or blobs of a served
// manifest. Every error path denies.
//
// The files follow one pull from top to bottom:
//
//	proxy.go       Options, New, Handler; ServeHTTP runs the steps below
//	request.go     1. parse the path (name, kind, reference, tags page)
//	               and check it against the grammar, before any rule
//	route.go       2. route the name to an upstream, a GUN and a policy rule
//	trust.go       3. the repository's verified trust data, and what it signs
//	decide.go      4. decide: a tag by its signed digest, a digest if the
//	               trust data reaches it (trustcache.go remembers what
//	               does); which tags and referrers a list shows, per mode
//	fetch.go       5. fetch from the upstream: manifests by digest, their
//	               bytes checked (and kept in memory, memcache.go, and in
//	               the blob cache), and the upstream's tags and referrers
//	               lists; redirect.go: which upstream redirects are
//	               followed
//	serve.go       6. answer manifests, tags lists (paged), referrers and
//	               pass-through requests;
//	blob.go        blobs: from the blob cache when there is one
//	               (blobstore.go, Range in ranges.go), else hashed while they
//	               stream from the upstream (stream.go)
//	respond.go     7. denials, errors and the audit line
//
// The blob cache (Options.Store, a registry/blobcache.Store) only keeps:
// every request is decided first, against the current verified trust
// data, exactly as without it, and only what is allowed is looked up.
//
// Set up once, not per request: policy.go (rules), config.go (the policy
// file), upstream.go (upstreams and their credentials), trustca.go (TLS
// to trust servers), metrics.go and status.go.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/trust/verify"
)

// Options configure a Proxy.
type Options struct {
	// Upstreams: at most one without a Prefix (the default).
	Upstreams []Upstream
	// Policy decides which repositories are served and how.
	Policy Policy
	// Keychain gives the credentials of upstreams whose Credentials are
	// CredentialsDocker; nil is authn.DefaultKeychain. Other upstreams
	// never see it.
	Keychain authn.Keychain
	// UpstreamTransport carries requests to upstreams; nil uses a clone
	// of http.DefaultTransport keeping 64 idle connections per host.
	UpstreamTransport http.RoundTripper
	// TrustClient fetches trust data; nil uses a client with a 30s
	// timeout that trusts the system roots plus TrustCAFile, or, without
	// it, each trust server's ~/.docker/tls/<host:port>/ca.crt as docker
	// does. A TrustClient given here is used as it is.
	TrustClient *http.Client
	// TrustCAFile is a PEM bundle of CAs trusted for every trust
	// server's TLS certificate, besides the system roots.
	TrustCAFile string
	// Home is the folder holding .docker (default the user's home).
	Home string
	// RefreshInterval between trust data refreshes per repository
	// (default 30s).
	RefreshInterval time.Duration
	// MaxManifestBytes caps a manifest read from an upstream (default
	// 4 MiB).
	MaxManifestBytes int64
	// ManifestCacheBytes bounds the in-memory cache of verified
	// manifests, and with a Store that of small blobs (up to 64 KiB:
	// configs, small layers), each (default 64 MiB).
	ManifestCacheBytes int64
	// Store is the verified blob cache on disk; nil means no cache:
	// every blob streams from the upstream, hashed on the way, and
	// manifests are kept in memory only. With a store, blobs the
	// decision allows are served from it (Range answered 206) or
	// fetched into it once however many clients ask at the same time,
	// and verified manifests are kept in it too, so that what is
	// cached and still signed is served while the upstream is down.
	// The caller opens and closes it (after the proxy's server is shut
	// down) and may run ScrubCache on it.
	Store *blobcache.Store
	// Now is the clock for trust expiry (default time.Now).
	Now func() time.Time
	// Logger receives the audit log (one line per decision); nil discards.
	Logger *slog.Logger
	// Registerer receives metrics; nil uses a registry of the proxy's own.
	Registerer prometheus.Registerer
}

// Proxy is the verifying proxy's HTTP handler.
type Proxy struct {
	ups       upstreams
	policy    Policy
	trans     *transports
	trustCli  *http.Client
	refresher *verify.Refresher
	maxMan    int64
	manifests *memCache[cachedManifest]
	blobMem   *memCache[[]byte] // small blobs, with a store only
	store     *blobcache.Store
	allowed   *allowedSet
	log       *slog.Logger
	metrics   *metrics
}

// New validates the options and builds a proxy.
func New(opts Options) (*Proxy, error) {
	if err := opts.Policy.Validate(); err != nil {
		return nil, err
	}
	var ups upstreams
	for _, u := range opts.Upstreams {
		up, err := newUpstream(u)
		if err != nil {
			return nil, err
		}
		if up.keychain, err = authFor(u, opts.Keychain); err != nil {
			return nil, err
		}
		if u.Prefix == "" {
			if ups.fallback != nil {
				return nil, errors.New("more than one default upstream (without a prefix)")
			}
			ups.fallback = up
			continue
		}
		ups.list = append(ups.list, up)
	}
	if ups.fallback == nil && len(ups.list) == 0 {
		return nil, errors.New("no upstream registry configured")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := opts.UpstreamTransport
	if base == nil {
		// Keep connections to upstreams: many blobs per pull.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		base = t
	}
	tc := opts.TrustClient
	if tc == nil {
		rt, err := trustTransport(opts.Policy, opts.TrustCAFile, opts.Home)
		if err != nil {
			return nil, err
		}
		tc = &http.Client{Transport: rt, Timeout: 30 * time.Second}
	}
	maxMan := opts.MaxManifestBytes
	if maxMan <= 0 {
		maxMan = 4 << 20
	}
	cacheBytes := opts.ManifestCacheBytes
	if cacheBytes <= 0 {
		cacheBytes = 64 << 20
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		ups:       ups,
		policy:    opts.Policy,
		trans:     &transports{base: base},
		trustCli:  tc,
		maxMan:    maxMan,
		manifests: newMemCache(cacheBytes, func(m cachedManifest) int64 { return int64(len(m.body)) }),
		blobMem:   newMemCache(cacheBytes, func(b []byte) int64 { return int64(len(b)) }),
		store:     opts.Store,
		allowed:   newAllowedSet(100000),
		log:       logger,
		metrics:   m,
	}
	p.refresher = &verify.Refresher{
		Interval: opts.RefreshInterval,
		Now:      opts.Now,
		Logger:   logger,
		OnRefresh: func(d time.Duration, err error) {
			p.metrics.refresh.WithLabelValues(outcome(err)).Observe(d.Seconds())
			p.metrics.refreshes.WithLabelValues(refreshResult(err)).Inc()
		},
	}
	p.metrics.watchStale(func() float64 { return float64(len(p.refresher.Stale())) })
	if p.store != nil {
		if err := p.metrics.watchStore(p.store); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Handler returns the proxy with its health, readiness and metrics
// endpoints. The distribution API goes to the proxy as the client sent
// it: a ServeMux would redirect "/v2/a/../b" to "/v2/b" where the proxy
// answers that the name is invalid.
func (p *Proxy) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	mux.Handle("/metrics", p.metrics.handler)
	mux.HandleFunc("/_signet/status", p.serveStatus)
	mux.Handle("/", p)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
			p.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// ServeHTTP answers the distribution API for pulls. The steps, in order:
// parse and check the request (request.go), route it to an upstream and
// a rule (route.go), then serve it by kind under the rule's mode: the
// trust data (trust.go) decides (decide.go) what is fetched from the
// upstream (fetch.go) and served (serve.go, blob.go).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	kind := "other"
	defer func() { p.metrics.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds()) }()
	// Every answer names the API, whatever the upstream sent.
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		kind = "ping"
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	}
	req, ok := parseRequest(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "no distribution API at "+r.URL.Path)
		return
	}
	kind = req.kind
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		p.metrics.decisions.WithLabelValues("deny", "push").Inc()
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "signet proxy serves pulls only: push to the registry itself")
		return
	}
	// The name and reference are checked before any rule is matched.
	bad := p.checkRequest(r, req)
	if bad == nil && req.kind == "tags" {
		req.page, bad = parsePage(r.URL.Query())
	}
	if bad != nil {
		p.metrics.decisions.WithLabelValues("deny", strings.ToLower(bad.code)).Inc()
		p.audit(r, req, "deny", bad.msg, "", "")
		writeError(w, http.StatusBadRequest, bad.code, bad.msg)
		return
	}
	ctx, cancel := withTimeout(r.Context())
	defer cancel()
	rr, err := p.resolve(req)
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	switch {
	case req.kind == "tags":
		p.serveTags(ctx, w, r, req, rr)
	case req.kind == "referrers":
		p.serveReferrers(ctx, w, r, req, rr)
	case rr.rule.Mode == ModeAllow:
		p.passThrough(w, r, req, rr, req.kind, "allow-listed repository")
	case req.kind == "manifests":
		p.serveManifest(ctx, w, r, req, rr)
	case req.kind == "blobs":
		p.serveBlob(ctx, w, r, req, rr)
	}
}

// withTimeout bounds upstream and trust calls of one request.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 2*time.Minute)
}
