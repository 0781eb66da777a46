// Package proxy is signet's verifying pull-through registry proxy. It
// speaks the OCI distribution API for pulls and answers a tag only with
// the manifest whose digest the trust data signs, fetched from the
// upstream by that digest and checked byte for byte; digests are served
// only if signed, or children of a signed index, or blobs of a served
// manifest. Every error path denies.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"

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
	// manifests (default 64 MiB).
	ManifestCacheBytes int64
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
	manifests *manifestCache
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
		manifests: newManifestCache(cacheBytes),
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

// request is a parsed distribution API request.
type request struct {
	name string // repository name as the client gave it
	kind string // "manifests", "blobs", "tags"
	ref  string // tag or digest
}

func parseRequest(p string) (request, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return request{}, false
	}
	if strings.HasSuffix(rest, "/tags/list") {
		return request{name: strings.TrimSuffix(rest, "/tags/list"), kind: "tags"}, true
	}
	for _, kind := range []string{"manifests", "blobs"} {
		if i := strings.LastIndex(rest, "/"+kind+"/"); i > 0 {
			return request{name: rest[:i], kind: kind, ref: rest[i+len(kind)+2:]}, true
		}
	}
	return request{}, false
}

// ServeHTTP answers the distribution API for pulls.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	kind := "other"
	defer func() { p.metrics.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds()) }()
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		kind = "ping"
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
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
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "signet proxy serves pulls only: push to the registry itself")
		return
	}
	// The name and reference are checked before any rule is matched.
	if bad := p.checkRequest(r, req); bad != nil {
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
	if rr.rule.Mode == ModeAllow {
		p.passThrough(w, r, req, rr, req.kind, "allow-listed repository")
		return
	}
	switch req.kind {
	case "manifests":
		p.serveManifest(ctx, w, r, req, rr)
	case "blobs":
		p.serveBlob(ctx, w, r, req, rr)
	case "tags":
		p.serveTags(ctx, w, r, req, rr)
	}
}

// denial is a decision not to serve.
type denial struct {
	image  string
	reason string
	rule   string
}

func (d *denial) Error() string {
	if d.rule != "" {
		return fmt.Sprintf("%s: %s (policy rule %q)", d.image, d.reason, d.rule)
	}
	return fmt.Sprintf("%s: %s", d.image, d.reason)
}

// upstreamError is an infrastructure failure (502/503).
type upstreamError struct {
	status int
	msg    string
}

func (e *upstreamError) Error() string { return e.msg }

// fail answers an error: denials 403 DENIED, infrastructure 502/503.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, req request, err error) {
	var d *denial
	var ue *upstreamError
	switch {
	case errors.As(err, &d):
		p.metrics.decisions.WithLabelValues("deny", short(d.reason)).Inc()
		p.audit(r, req, "deny", d.reason, d.rule, "")
		writeError(w, http.StatusForbidden, "DENIED", d.Error())
	case errors.As(err, &ue):
		p.metrics.decisions.WithLabelValues("error", "upstream").Inc()
		p.audit(r, req, "error", ue.msg, "", "")
		writeError(w, ue.status, "UNAVAILABLE", ue.msg)
	default:
		p.metrics.decisions.WithLabelValues("error", "internal").Inc()
		p.audit(r, req, "error", err.Error(), "", "")
		writeError(w, http.StatusBadGateway, "UNAVAILABLE", err.Error())
	}
}

// short maps a reason to a metric label.
func short(reason string) string {
	for _, k := range []string{"not signed", "no policy", "trust data", "does not match", "not referenced", "signers disagree", "expired", "unreachable", "invalid repository name"} {
		if strings.Contains(reason, k) {
			return strings.ReplaceAll(k, " ", "_")
		}
	}
	return "other"
}

func (p *Proxy) audit(r *http.Request, req request, decision, reason, rule, digest string) {
	p.log.LogAttrs(r.Context(), slog.LevelInfo, "decision",
		slog.String("decision", decision), slog.String("client", r.RemoteAddr),
		slog.String("method", r.Method), slog.String("name", req.name),
		slog.String("kind", req.kind), slog.String("ref", req.ref),
		slog.String("digest", digest), slog.String("rule", rule), slog.String("reason", reason))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"errors\":[{\"code\":%q,\"message\":%q}]}\n", code, msg)
}

// withTimeout bounds upstream and trust calls of one request.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 2*time.Minute)
}
