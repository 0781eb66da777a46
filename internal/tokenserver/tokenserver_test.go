package tokenserver_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/tokenserver"
	"github.com/signet-project/signet/trust/server/auth"
)

const (
	issuer  = "test-issuer"
	service = "signet-trust"
	gun     = "registry.example.com/team/app"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a token server and a trust-server-side verifier of its tokens.
type fixture struct {
	srv    *tokenserver.Server
	verify func(now time.Time) *auth.Token
}

func newFixture(t *testing.T, opts tokenserver.Options) fixture {
	t.Helper()
	opts.Issuer, opts.Service = issuer, service
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	if opts.Users == nil {
		opts.Users = map[string]string{"alice": "alice-pw", "viewer": "viewer-pw"}
	}
	srv, err := tokenserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "roots.pem")
	if err := srv.WriteRootBundle(bundle); err != nil {
		t.Fatal(err)
	}
	return fixture{srv: srv, verify: func(now time.Time) *auth.Token {
		tok, err := auth.NewToken(auth.TokenOptions{
			Realm: "http://token.example" + tokenserver.Path, Service: service, Issuer: issuer,
			RootCertBundle: bundle, Now: func() time.Time { return now },
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}}
}

// response is a token answer as clients read it.
type response struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// fetch asks the server for a token the way docker/distribution's client
// does: GET with service, scope and account, Basic credentials if any.
func fetch(t *testing.T, h http.Handler, user, password string, query url.Values) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, tokenserver.Path+"?"+query.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("token request: %d %s", rec.Code, rec.Body)
	}
	var r response
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("decode answer %q: %v", rec.Body, err)
	}
	return r
}

// bearer returns a request carrying tok.
func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestServeHTTP(t *testing.T) {
	scope := func(s ...string) url.Values { return url.Values{"service": {service}, "scope": s} }
	viewerOnly := func(user, _ string, requested []string) []string {
		switch user {
		case "alice":
			return []string{"*"}
		case "viewer":
			return []string{"pull"}
		}
		return nil
	}
	tests := []struct {
		name     string
		grant    func(user, gun string, requested []string) []string
		login    bool   // RequireLogin
		method   string // default GET
		path     string // default /token
		user     string
		password string
		query    url.Values
		header   string // Authorization header instead of user and password

		wantStatus int
		allowed    [][]string // action sets the token must grant on gun
		denied     [][]string // action sets it must not grant
		other      [][]string // action sets it must grant on "other/repo"
	}{
		{name: "user push and pull", user: "alice", password: "alice-pw", query: scope("repository:" + gun + ":push,pull"),
			wantStatus: 200, allowed: [][]string{{"pull"}, {"push", "pull"}}, denied: [][]string{{"*"}}},
		{name: "user star", user: "alice", password: "alice-pw", query: scope("repository:" + gun + ":*"),
			wantStatus: 200, allowed: [][]string{{"*"}, {"push", "pull"}}},
		{name: "account matches", user: "alice", password: "alice-pw",
			query:      url.Values{"service": {service}, "account": {"alice"}, "scope": {"repository:" + gun + ":push"}},
			wantStatus: 200, allowed: [][]string{{"push"}}, denied: [][]string{{"pull"}}},
		{name: "anonymous pull only", query: scope("repository:" + gun + ":push,pull"),
			wantStatus: 200, allowed: [][]string{{"pull"}}, denied: [][]string{{"push"}, {"push", "pull"}, {"*"}}},
		{name: "anonymous push", query: scope("repository:" + gun + ":push"),
			wantStatus: 200, denied: [][]string{{"push"}, {"pull"}}},
		{name: "anonymous account ignored", query: url.Values{"account": {"alice"}, "scope": {"repository:" + gun + ":pull,push"}},
			wantStatus: 200, allowed: [][]string{{"pull"}}, denied: [][]string{{"push"}}},
		{name: "no service asked", user: "alice", password: "alice-pw", query: url.Values{"scope": {"repository:" + gun + ":pull"}},
			wantStatus: 200, allowed: [][]string{{"pull"}}},
		{name: "no scope", user: "alice", password: "alice-pw", query: url.Values{"service": {service}},
			wantStatus: 200, denied: [][]string{{"pull"}}},
		{name: "several scopes", user: "alice", password: "alice-pw",
			query:      scope("repository:"+gun+":pull", "repository:other/repo:push", "repository:"+gun+":push"),
			wantStatus: 200, allowed: [][]string{{"push", "pull"}}, other: [][]string{{"push"}}},
		{name: "space separated scopes", user: "alice", password: "alice-pw",
			query:      scope("repository:" + gun + ":pull repository:other/repo:pull"),
			wantStatus: 200, allowed: [][]string{{"pull"}}, other: [][]string{{"pull"}}},
		{name: "grant star expands", grant: viewerOnly, user: "alice", password: "alice-pw", query: scope("repository:" + gun + ":push,pull"),
			wantStatus: 200, allowed: [][]string{{"push", "pull"}}, denied: [][]string{{"*"}}},
		{name: "grant pull only", grant: viewerOnly, user: "viewer", password: "viewer-pw", query: scope("repository:" + gun + ":push,pull"),
			wantStatus: 200, allowed: [][]string{{"pull"}}, denied: [][]string{{"push"}}},
		{name: "grant nothing to anonymous", grant: viewerOnly, query: scope("repository:" + gun + ":pull"),
			wantStatus: 200, denied: [][]string{{"pull"}}},
		{name: "grant beyond request dropped", grant: viewerOnly, user: "alice", password: "alice-pw", query: scope("repository:" + gun + ":pull"),
			wantStatus: 200, allowed: [][]string{{"pull"}}, denied: [][]string{{"push"}}},

		{name: "login required, user", login: true, user: "viewer", password: "viewer-pw", query: scope("repository:" + gun + ":pull"),
			wantStatus: 200, allowed: [][]string{{"pull"}}},
		{name: "login required, anonymous", login: true, query: scope("repository:" + gun + ":pull"), wantStatus: 401},

		{name: "wrong password", user: "alice", password: "nope", query: scope("repository:" + gun + ":pull"), wantStatus: 401},
		{name: "unknown user", user: "mallory", password: "alice-pw", query: scope("repository:" + gun + ":pull"), wantStatus: 401},
		{name: "empty password", user: "alice", password: "", query: scope("repository:" + gun + ":pull"), wantStatus: 401},
		{name: "bearer credentials", header: "Bearer abc", query: scope("repository:" + gun + ":pull"), wantStatus: 401},
		{name: "malformed basic", header: "Basic !!!", query: scope("repository:" + gun + ":pull"), wantStatus: 401},
		{name: "account mismatch", user: "alice", password: "alice-pw",
			query: url.Values{"account": {"viewer"}, "scope": {"repository:" + gun + ":pull"}}, wantStatus: 400},
		{name: "other service", query: url.Values{"service": {"registry"}, "scope": {"repository:" + gun + ":pull"}}, wantStatus: 400},
		{name: "bad scope", query: scope("repository:" + gun), wantStatus: 400},
		{name: "bad scope among good", query: scope("repository:"+gun+":pull", "registry:catalog:*"), wantStatus: 400},
		{name: "long scope", query: scope("repository:" + gun + ":" + strings.Repeat("pull,", 200) + "pull"), wantStatus: 400},
		{name: "too many scopes", query: scope(strings.Split(strings.Repeat("repository:a:pull ", 17), " ")...), wantStatus: 400},
		{name: "POST", method: http.MethodPost, query: scope("repository:" + gun + ":pull"), wantStatus: 405},
		{name: "other path", path: "/v2/token", query: scope("repository:" + gun + ":pull"), wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tokenserver.Options{Grant: tt.grant, RequireLogin: tt.login})
			method, path := tt.method, tt.path
			if method == "" {
				method = http.MethodGet
			}
			if path == "" {
				path = tokenserver.Path
			}
			req := httptest.NewRequest(method, path+"?"+tt.query.Encode(), nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.password)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			f.srv.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q", got)
			}
			if rec.Code != http.StatusOK {
				var body struct {
					Errors []struct{ Code, Message string }
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Message == "" {
					t.Errorf("error body %q: %v", rec.Body, err)
				}
				if strings.Contains(rec.Body.String(), tt.password) && tt.password != "" {
					t.Errorf("error body %q holds the password", rec.Body)
				}
				if got := rec.Header().Get("WWW-Authenticate"); (rec.Code == 401) != (got == `Basic realm="test-issuer"`) {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				return
			}
			var r response
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("decode answer %q: %v", rec.Body, err)
			}
			if r.Token == "" || r.AccessToken != r.Token || r.ExpiresIn != 300 || r.IssuedAt != "2026-03-01T12:00:00Z" {
				t.Errorf("answer %+v", r)
			}
			tok := f.verify(t0)
			if err := tok.Authorize(bearer(r.Token), ""); err != nil {
				t.Fatalf("token does not verify: %v", err)
			}
			for _, actions := range tt.allowed {
				if err := tok.Authorize(bearer(r.Token), gun, actions...); err != nil {
					t.Errorf("token does not grant %q: %v", actions, err)
				}
			}
			for _, actions := range tt.denied {
				if err := tok.Authorize(bearer(r.Token), gun, actions...); !errors.Is(err, auth.ErrInsufficientScope) {
					t.Errorf("token grants %q: %v", actions, err)
				}
			}
			for _, actions := range tt.other {
				if err := tok.Authorize(bearer(r.Token), "other/repo", actions...); err != nil {
					t.Errorf("token does not grant %q on other/repo: %v", actions, err)
				}
			}
		})
	}
}

// TestTokenContents checks the JWT itself: header, claims and certificate
// chain.
func TestTokenContents(t *testing.T) {
	f := newFixture(t, tokenserver.Options{TTL: 90 * time.Second})
	q := url.Values{"service": {service}, "scope": {"repository:" + gun + ":push,pull", "repository:" + gun + ":pull"}}
	r1 := fetch(t, f.srv, "alice", "alice-pw", q)
	r2 := fetch(t, f.srv, "alice", "alice-pw", q)
	if r1.ExpiresIn != 90 {
		t.Errorf("expires_in = %d, want 90", r1.ExpiresIn)
	}
	parts := strings.Split(r1.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var header struct {
		Typ, Alg string
		X5C      []string
	}
	var claims map[string]any
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if header.Typ != "JWT" || header.Alg != "ES256" || len(header.X5C) != 1 {
		t.Fatalf("header %+v", header)
	}
	want := map[string]any{
		"iss": issuer, "sub": "alice", "aud": service,
		"iat": float64(t0.Unix()), "nbf": float64(t0.Unix()), "exp": float64(t0.Unix() + 90),
		"access": []any{
			map[string]any{"type": "repository", "name": gun, "actions": []any{"push", "pull"}},
			map[string]any{"type": "repository", "name": gun, "actions": []any{"pull"}},
		},
	}
	jti, _ := claims["jti"].(string)
	delete(claims, "jti")
	if !reflect.DeepEqual(claims, want) {
		t.Errorf("claims %v\nwant %v", claims, want)
	}
	if len(jti) != 32 || strings.Split(r2.Token, ".")[1] == parts[1] {
		t.Errorf("jti %q: two tokens have the same claims", jti)
	}

	// The x5c leaf chains to the root bundle, which holds one CA.
	der, err := base64.StdEncoding.DecodeString(header.X5C[0])
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(f.srv.RootBundlePEM())
	if block == nil || len(rest) != 0 {
		t.Fatalf("root bundle is not one PEM block")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA || leaf.IsCA {
		t.Errorf("root IsCA %v, leaf IsCA %v", root.IsCA, leaf.IsCA)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0}); err != nil {
		t.Errorf("leaf does not chain to the root: %v", err)
	}
}

// TestTokenExpiry checks exp against the verifier's clock, and that tokens
// from another instance (another CA) are refused.
func TestTokenExpiry(t *testing.T) {
	f := newFixture(t, tokenserver.Options{})
	stranger := newFixture(t, tokenserver.Options{})
	q := url.Values{"scope": {"repository:" + gun + ":pull"}}
	r := fetch(t, f.srv, "alice", "alice-pw", q)
	rs := fetch(t, stranger.srv, "alice", "alice-pw", q)
	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error
	}{
		{"fresh", r.Token, t0, nil},
		{"just before expiry", r.Token, t0.Add(tokenserver.DefaultTTL - time.Second), nil},
		{"expired", r.Token, t0.Add(tokenserver.DefaultTTL + time.Second), auth.ErrInvalidCredentials},
		{"not yet valid", r.Token, t0.Add(-time.Minute), auth.ErrInvalidCredentials},
		{"other CA", rs.Token, t0, auth.ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.verify(tt.now).Authorize(bearer(tt.token), gun, "pull")
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Authorize = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		opts    tokenserver.Options
		wantErr bool
	}{
		{"minimal", tokenserver.Options{Issuer: "i", Service: "s"}, false},
		{"TTL", tokenserver.Options{Issuer: "i", Service: "s", TTL: time.Hour}, false},
		{"no issuer", tokenserver.Options{Service: "s"}, true},
		{"no service", tokenserver.Options{Issuer: "i"}, true},
		{"negative TTL", tokenserver.Options{Issuer: "i", Service: "s", TTL: -time.Second}, true},
		{"sub-second TTL", tokenserver.Options{Issuer: "i", Service: "s", TTL: time.Millisecond}, true},
		{"TTL beyond certificates", tokenserver.Options{Issuer: "i", Service: "s", TTL: 400 * 24 * time.Hour}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokenserver.New(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestWriteRootBundle(t *testing.T) {
	f := newFixture(t, tokenserver.Options{})
	if err := f.srv.WriteRootBundle(filepath.Join(t.TempDir(), "missing", "roots.pem")); err == nil {
		t.Fatal("WriteRootBundle into a missing directory succeeded")
	}
	a, b := f.srv.RootBundlePEM(), f.srv.RootBundlePEM()
	a[0] = 'x'
	if b[0] == 'x' {
		t.Fatal("RootBundlePEM returns shared memory")
	}
}
