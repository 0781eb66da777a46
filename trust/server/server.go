// Package server is signet's trust server: the Notary v1 server HTTP API
// (the one the notary and docker clients speak) over an SQLite or
// PostgreSQL store. It validates every update itself with notary's tuf
// builder and signs timestamps (and snapshots, when it holds that key)
// with keys kept encrypted in the database.
package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/tuf/data"
)

// Authorizer decides whether a request may perform actions ("pull",
// "push", "*") on a repository. gun "" is registry-wide: with no action
// (ping) any valid credentials will do; with actions, they are asked of
// the registry catalog (the global changefeed asks for "*", which a token
// grants with the scope "registry:catalog:*"). It returns nil to allow. An error that has a Header() string method is a
// challenge, answered 401 with that WWW-Authenticate value; any other
// error is answered 403.
type Authorizer interface {
	Authorize(r *http.Request, gun string, actions ...string) error
}

// Limits caps what the server reads from a client. Zero fields take the
// defaults.
type Limits struct {
	// MaxRequestBytes caps a whole update request (default 32 MiB).
	MaxRequestBytes int64
	// MaxMetadataBytes caps one metadata file in an update (default 16 MiB,
	// enough for some 50,000 targets).
	MaxMetadataBytes int64
	// MaxParts caps the files in one update (default 100).
	MaxParts int
	// MaxImportParts caps the files in one import (default 2000): an
	// import carries every delegation and every older root version.
	MaxImportParts int
	// MaxChangefeedRecords caps one changefeed page (default 1000).
	MaxChangefeedRecords int
	// MaxBytesInFlight caps the bytes of the update requests all clients
	// have in flight together (default 256 MiB, and never below
	// MaxRequestBytes). An update past it is answered 503 with
	// Retry-After. The server's peak memory is about 2.5 times this.
	MaxBytesInFlight int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = 32 << 20
	}
	if l.MaxMetadataBytes <= 0 {
		l.MaxMetadataBytes = 16 << 20
	}
	if l.MaxParts <= 0 {
		l.MaxParts = 100
	}
	if l.MaxImportParts <= 0 {
		l.MaxImportParts = 2000
	}
	if l.MaxChangefeedRecords <= 0 {
		l.MaxChangefeedRecords = 1000
	}
	if l.MaxBytesInFlight <= 0 {
		l.MaxBytesInFlight = 256 << 20
	}
	l.MaxBytesInFlight = max(l.MaxBytesInFlight, l.MaxRequestBytes)
	return l
}

// Options configure a Server. Store and KeyPassphrase are required.
type Options struct {
	// Store holds metadata and server keys.
	Store *Store
	// KeyPassphrase encrypts server-managed keys at rest (at least
	// MinKeyPassphraseLen characters). Restarting with another passphrase
	// fails at New.
	KeyPassphrase string
	// KeyAlgorithm for new server keys: "ecdsa" (default) or "ed25519".
	KeyAlgorithm string
	// Auth guards every request; nil allows everything.
	Auth Authorizer
	// GUNPrefixes, when not empty, is the allow-list of repository
	// prefixes the server accepts (for example "registry.example.com/").
	GUNPrefixes []string
	// Limits caps inputs; the zero value takes defaults.
	Limits Limits
	// ReadCacheBytes caps the memory of the read cache, which keeps
	// metadata answers (current roles, the server-signed timestamp and
	// snapshot, files by version or checksum, "not found") and serves
	// them again while the repository's change counter in the database
	// is unchanged (see readcache.go and docs/server.md). Zero takes
	// DefaultReadCacheBytes; negative turns the cache off, so every read
	// goes to the database.
	ReadCacheBytes int64
	// AllowImport turns on POST /v2/<gun>/_trust/import, which stores a
	// repository's trust data from another server as it is (see
	// docs/server.md). Off, the route answers 404.
	AllowImport bool
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics; nil uses a registry of
	// the server's own, served on /metrics.
	Registerer prometheus.Registerer
	// Gatherer serves /metrics; nil uses the server's own registry.
	Gatherer prometheus.Gatherer
}

// Server is the trust server's HTTP handler.
type Server struct {
	store    *Store
	keys     *keyStore
	crypto   *cryptoservice.CryptoService
	algo     string
	auth     Authorizer
	prefixes []string
	limits   Limits
	log      *slog.Logger
	metrics  *metrics
	inflight *byteBudget
	cache    *readCache      // nil: off
	locks    [256]sync.Mutex // publishes serialised per GUN stripe

	allowImport bool
	now         func() time.Time
	// asStored has the GUNs whose imported timestamp was served as
	// stored, to log that once per GUN.
	asStored sync.Map
}

// notaryExpiries sets notary's default expiries to notary-server's
// (timestamp 14 days, snapshot and targets 3 years, root 10 years). notary's
// tuf builder reads them from process-wide state with no other hook, and
// its defaults (timestamp 1 day) are not the server's; notary-server sets
// them the same way at start.
var notaryExpiries sync.Once

// New builds a server. It fails if the key passphrase cannot decrypt the
// keys already in the store.
func New(ctx context.Context, opts Options) (*Server, error) {
	notaryExpiries.Do(func() { data.SetDefaultExpiryTimes(data.NotaryDefaultExpiries) })
	if opts.Store == nil {
		return nil, errors.New("new trust server: no store")
	}
	ks, err := newKeyStore(ctx, opts.Store, opts.KeyPassphrase)
	if err != nil {
		return nil, fmt.Errorf("new trust server: %w", err)
	}
	algo := opts.KeyAlgorithm
	switch algo {
	case "":
		algo = data.ECDSAKey
	case data.ECDSAKey, data.ED25519Key:
	default:
		return nil, fmt.Errorf("new trust server: key algorithm %q: use ecdsa or ed25519", algo)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for _, c := range opts.Store.tightened {
		logger.Warn("database file was open to other users; made it 0600", "path", c.path, "was", c.was.String())
	}
	for _, p := range opts.GUNPrefixes {
		if p == "" {
			return nil, errors.New("new trust server: empty GUN prefix in allow-list")
		}
	}
	s := &Server{
		store:    opts.Store,
		keys:     ks,
		crypto:   cryptoservice.NewCryptoService(ks),
		algo:     algo,
		auth:     opts.Auth,
		prefixes: opts.GUNPrefixes,
		limits:   opts.Limits.withDefaults(),
		log:      logger,

		allowImport: opts.AllowImport,
		now:         opts.Store.now,
	}
	s.inflight = &byteBudget{max: s.limits.MaxBytesInFlight}
	switch {
	case opts.ReadCacheBytes == 0:
		s.cache = newReadCache(DefaultReadCacheBytes)
	case opts.ReadCacheBytes > 0:
		s.cache = newReadCache(opts.ReadCacheBytes)
	}
	s.metrics, err = newMetrics(opts.Registerer, opts.Gatherer, s.inflight.inFlight, s.cache)
	if err != nil {
		return nil, fmt.Errorf("new trust server: %w", err)
	}
	return s, nil
}

func (s *Server) lockGUN(gun string) func() {
	h := fnv.New32a()
	io.WriteString(h, gun) //nolint:errcheck // hash writes never fail
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

func (s *Server) gunAllowed(gun string) bool {
	if len(s.prefixes) == 0 {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(gun, p) {
			return true
		}
	}
	return false
}

// statusWriter records the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP answers the Notary v1 server API, /_notary_server/health,
// /healthz, /readyz and /metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	name := s.serve(sw, r)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	d := time.Since(start)
	s.metrics.observe(name, r.Method, sw.code, d)
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", sw.code), slog.Duration("duration", d))
}

// serve dispatches and returns the route's name for metrics.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) string {
	switch r.URL.Path {
	case "/_notary_server/health", "/healthz", "/readyz":
		s.health(w, r)
		return "health"
	case "/metrics":
		s.metrics.handler.ServeHTTP(w, r)
		return "metrics"
	}
	rt, err := parseRoute(r.URL.Path)
	if err != nil {
		writeError(w, errInvalidName.WithMessage(err.Error()))
		return "invalid"
	}
	if rt.gun != "" && !s.gunAllowed(rt.gun) {
		writeError(w, errGUNNotAllowed.WithMessage(fmt.Sprintf("repository %q is not served here: its name must start with one of %q", rt.gun, s.prefixes)))
		return "denied"
	}
	name, actions, handler := s.dispatch(rt, r.Method)
	if handler == nil {
		writeError(w, errMethod.WithMessage(fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)))
		return name
	}
	if !s.authorize(w, r, rt.gun, actions) {
		return name
	}
	handler(w, r, rt)
	return name
}

type handlerFunc func(http.ResponseWriter, *http.Request, route)

// dispatch maps a route and method to a handler and the actions it needs,
// as notary-server does: reads need pull, publishing (and importing) push
// and pull,
// deletion and key rotation "*", and the global changefeed, which lists
// every repository, "*" on the registry catalog (gun "").
func (s *Server) dispatch(rt route, method string) (string, []string, handlerFunc) {
	get := method == http.MethodGet || method == http.MethodHead
	switch rt.kind {
	case routePing:
		if get {
			return "ping", nil, s.ping
		}
		return "ping", nil, nil
	case routeTUF:
		switch method {
		case http.MethodPost:
			return "update", []string{"push", "pull"}, s.update
		case http.MethodDelete:
			return "delete", []string{"*"}, s.deleteGUN
		}
		return "update", nil, nil
	case routeMeta:
		if get {
			return "get_" + metricRole(rt.role), []string{"pull"}, s.getMeta
		}
		return "get_meta", nil, nil
	case routeKey:
		switch {
		case get:
			return "get_key", []string{"push", "pull"}, s.getKey
		case method == http.MethodPost:
			return "rotate_key", []string{"*"}, s.rotateKey
		}
		return "key", nil, nil
	case routeImport:
		if method != http.MethodPost {
			return "import", nil, nil
		}
		if !s.allowImport {
			return "import", nil, s.importDisabled
		}
		return "import", []string{"push", "pull"}, s.importGUN
	case routeChangefeed:
		if !get {
			return "changefeed", nil, nil
		}
		if rt.gun == "" {
			return "changefeed", []string{"*"}, s.changefeed
		}
		return "changefeed", []string{"pull"}, s.changefeed
	}
	return "not_found", nil, func(w http.ResponseWriter, r *http.Request, _ route) {
		writeError(w, errNotFound.WithMessage("no trust API at "+r.URL.Path))
	}
}

func metricRole(role string) string {
	if strings.HasPrefix(role, "targets/") {
		return "delegation"
	}
	return role
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request, gun string, actions []string) bool {
	if s.auth == nil {
		return true
	}
	err := s.auth.Authorize(r, gun, actions...)
	if err == nil {
		return true
	}
	var ch interface{ Header() string }
	if errors.As(err, &ch) {
		w.Header().Set("WWW-Authenticate", ch.Header())
		writeError(w, errUnauthorized.WithMessage(err.Error()))
		return false
	}
	writeError(w, errDenied.WithMessage(err.Error()))
	return false
}

func (s *Server) ping(w http.ResponseWriter, _ *http.Request, _ route) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}") //nolint:errcheck
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	if err := s.store.CheckHealth(ctx); err != nil {
		s.log.Error("health check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "{\"storage\":%q}\n", "unavailable")
		return
	}
	io.WriteString(w, "{}\n") //nolint:errcheck
}
