// Package tokenserver is a small Docker registry token issuer for tests and
// demos: the service a registry or trust server sends clients to in its
// Bearer challenge (https://distribution.github.io/distribution/spec/auth/token/).
//
// It makes its own ECDSA P-256 certificate authority and a signing
// certificate under it, checks Basic credentials against plain-text
// passwords, and answers GET /token with an ES256 JSON Web Token whose x5c
// header holds the signing certificate. A verifier trusts the tokens by
// trusting the authority, RootBundlePEM. Keys live only in memory.
//
// It is not meant for production: passwords are plain text and nothing
// limits the rate of guesses.
package tokenserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Path is the path the server answers token requests on.
const Path = "/token"

// DefaultTTL is the lifetime of tokens when Options.TTL is zero.
const DefaultTTL = 5 * time.Minute

// certValidity is how long the generated certificates are valid for, from
// an hour before New.
const certValidity = 365 * 24 * time.Hour

// Options configures a Server. Issuer and Service are required.
type Options struct {
	// Issuer is the iss claim of the tokens, which verifiers check, and the
	// realm of the server's own Basic challenge.
	Issuer string
	// Service is the name of the service the tokens are for: their aud
	// claim. A request naming another service is refused; a request naming
	// none gets a token for Service.
	Service string
	// Users maps user names to plain-text passwords (tests only). A request
	// with Basic credentials that do not match is refused with 401; a
	// request without credentials is anonymous (user ""). nil means no user.
	Users map[string]string
	// RequireLogin refuses requests without credentials with 401 instead of
	// serving them as anonymous.
	RequireLogin bool
	// Grant returns the actions user (or "" for anonymous) gets on the
	// repository gun when asking for requested. Actions not asked for are
	// dropped from its answer, and "*" in its answer grants every action
	// asked for. nil means that users get what they ask for and anonymous
	// requests get pull only.
	Grant func(user, gun string, requested []string) []string
	// TTL is the lifetime of the tokens; zero means DefaultTTL. The
	// expires_in field of the answer holds it in whole seconds.
	TTL time.Duration
	// Now returns the current time, for the tokens' times and the
	// certificates' validity; nil means time.Now.
	Now func() time.Time
	// Logger receives a line per request: user, scopes and outcome, never
	// passwords or tokens. nil discards.
	Logger *slog.Logger
}

// Server issues tokens. It is an http.Handler, safe for concurrent use.
type Server struct {
	issuer, service string
	users           map[string]string
	requireLogin    bool
	grant           func(user, gun string, requested []string) []string
	ttl             time.Duration
	now             func() time.Time
	log             *slog.Logger

	rootPEM []byte
	leaf    *x509.Certificate
	key     *ecdsa.PrivateKey
}

// New returns a Server with a fresh certificate authority and signing key.
func New(opts Options) (*Server, error) {
	if opts.Issuer == "" || opts.Service == "" {
		return nil, errors.New("configure token server: issuer and service are required")
	}
	if opts.TTL < 0 || (opts.TTL > 0 && opts.TTL < time.Second) || opts.TTL > certValidity/2 {
		return nil, fmt.Errorf("configure token server: TTL %v out of range [1s, %v]", opts.TTL, certValidity/2)
	}
	s := &Server{
		issuer:       opts.Issuer,
		service:      opts.Service,
		users:        opts.Users,
		requireLogin: opts.RequireLogin,
		grant:        opts.Grant,
		ttl:          opts.TTL,
		now:          opts.Now,
		log:          opts.Logger,
	}
	if s.grant == nil {
		s.grant = defaultGrant
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.makeCerts(); err != nil {
		return nil, fmt.Errorf("configure token server %q: %w", opts.Issuer, err)
	}
	return s, nil
}

// defaultGrant gives users what they ask for and anonymous requests pull.
func defaultGrant(user, _ string, requested []string) []string {
	if user == "" {
		return []string{"pull"}
	}
	return requested
}

// makeCerts makes the certificate authority and the signing certificate.
func (s *Server) makeCerts() error {
	from := s.now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: s.issuer + " token CA"},
		NotBefore:             from,
		NotAfter:              from.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := createCert(ca, ca, caKey, caKey)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return fmt.Errorf("parse CA certificate: %w", err)
	}
	s.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	leaf := &x509.Certificate{
		Subject:               pkix.Name{CommonName: s.issuer + " token signer"},
		NotBefore:             from,
		NotAfter:              from.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	leafDER, err := createCert(leaf, ca, s.key, caKey)
	if err != nil {
		return fmt.Errorf("create signing certificate: %w", err)
	}
	if s.leaf, err = x509.ParseCertificate(leafDER); err != nil {
		return fmt.Errorf("parse signing certificate: %w", err)
	}
	s.rootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return nil
}

// createCert gives tmpl a random serial number and signs it with parentKey.
func createCert(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
}

// RootBundlePEM returns the PEM certificate of the server's certificate
// authority: the root bundle verifiers must trust.
func (s *Server) RootBundlePEM() []byte {
	return bytes.Clone(s.rootPEM)
}

// WriteRootBundle writes RootBundlePEM to the file at path.
func (s *Server) WriteRootBundle(path string) error {
	if err := os.WriteFile(path, s.rootPEM, 0o644); err != nil {
		return fmt.Errorf("write token root bundle %q: %w", path, err)
	}
	return nil
}

// tokenResponse is the answer to a token request. token and access_token
// hold the same token, for old and OAuth 2 clients.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeHTTP answers GET /token?service=...&scope=...&account=... .
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "only GET is supported")
		return
	}
	q := r.URL.Query()
	user, ok := s.authenticate(r)
	if !ok || (user == "" && s.requireLogin) {
		msg := "invalid username or password"
		if ok {
			msg = "anonymous token requests are not allowed"
		}
		s.log.Info("token request refused: "+msg, "user", user)
		w.Header().Set("WWW-Authenticate", `Basic realm="`+basicRealm(s.issuer)+`"`)
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
		return
	}
	if account := q.Get("account"); user != "" && account != "" && account != user {
		s.log.Info("token request refused: account does not match user", "user", user)
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", "account does not match the credentials")
		return
	}
	if service := q.Get("service"); service != "" && service != s.service {
		s.log.Info("token request refused: unknown service", "user", user, "service", service)
		writeError(w, http.StatusBadRequest, "INVALID_REQUEST", fmt.Sprintf("unknown service %q", service))
		return
	}
	requested, err := parseScopes(q["scope"])
	if err != nil {
		s.log.Info("token request refused: bad scope", "user", user, "err", err)
		writeError(w, http.StatusBadRequest, "INVALID_SCOPE", err.Error())
		return
	}
	access := s.authorize(user, requested)
	now := s.now()
	tok, err := s.sign(user, access, now)
	if err != nil {
		s.log.Error("sign token", "err", err)
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "cannot sign token")
		return
	}
	s.log.Info("issued token", "user", user, "requested", requested, "granted", access)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(tokenResponse{
		Token:       tok,
		AccessToken: tok,
		ExpiresIn:   int64(s.ttl / time.Second),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	})
}

// authenticate returns the user of the request's Basic credentials, "" for
// a request without an Authorization header, and false for credentials that
// are malformed, of another scheme or wrong.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	if r.Header.Get("Authorization") == "" {
		return "", true
	}
	user, password, ok := r.BasicAuth()
	if !ok || user == "" {
		return "", false
	}
	want, known := s.users[user]
	return user, known && subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
}

// authorize returns the access granted to user on the requested resources,
// leaving out resources on which nothing is granted.
func (s *Server) authorize(user string, requested []Access) []Access {
	access := []Access{}
	for _, req := range requested {
		given := s.grant(user, req.Name, slices.Clone(req.Actions))
		var actions []string
		for _, a := range req.Actions {
			if slices.Contains(given, a) || slices.Contains(given, "*") {
				actions = append(actions, a)
			}
		}
		if len(actions) > 0 {
			access = append(access, Access{Type: req.Type, Name: req.Name, Actions: actions})
		}
	}
	return access
}

// claims are the claims of an issued token. aud is a single string, as
// docker/distribution v2 verifiers (notary-server's) require.
type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	Expiry    int64    `json:"exp"`
	NotBefore int64    `json:"nbf"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	Access    []Access `json:"access"`
}

// sign returns an ES256 JWT (RFC 7519) granting access to user, issued at
// now, with the signing certificate in its x5c header (RFC 7515 section
// 4.1.6).
func (s *Server) sign(user string, access []Access, now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("make token ID: %w", err)
	}
	header, err := json.Marshal(map[string]any{
		"typ": "JWT",
		"alg": jwt.SigningMethodES256.Alg(),
		"x5c": []string{base64.StdEncoding.EncodeToString(s.leaf.Raw)},
	})
	if err != nil {
		return "", fmt.Errorf("encode token header: %w", err)
	}
	payload, err := json.Marshal(claims{
		Issuer:    s.issuer,
		Subject:   user,
		Audience:  s.service,
		Expiry:    now.Add(s.ttl).Unix(),
		NotBefore: now.Unix(),
		IssuedAt:  now.Unix(),
		ID:        hex.EncodeToString(jti),
		Access:    access,
	})
	if err != nil {
		return "", fmt.Errorf("encode token claims: %w", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sig, err := jwt.SigningMethodES256.Sign(input, s.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// writeError answers with a docker registry style error body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"code": code, "message": message}},
	})
}

// basicRealm makes s safe inside a quoted realm.
func basicRealm(s string) string {
	b := []byte(s)
	b = slices.DeleteFunc(b, func(c byte) bool { return c < 0x20 || c == 0x7f || c == '"' || c == '\\' })
	return string(b)
}
