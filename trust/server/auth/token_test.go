package auth

import (
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const gun = "registry.example.com/team/app"

func newTestToken(t testing.TB) *Token {
	t.Helper()
	p := testPKI()
	tok, err := NewToken(TokenOptions{
		Realm:          "https://auth.example.com/token",
		Service:        "signet-trust",
		Issuer:         "test-issuer",
		RootCertBundle: writeBundle(t, p.rootEC, p.rootRSA),
		Now:            func() time.Time { return t0 },
		Leeway:         DefaultLeeway,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestToken(t *testing.T) {
	p := testPKI()
	ecKid := map[string]any{"kid": kidOf(p.rootEC.key.Public())}
	rsaKid := map[string]any{"kid": kidOf(p.rootRSA.key.Public())}
	chain := func(c ...keyPair) map[string]any { return map[string]any{"x5c": x5c(c...)} }
	good := goodClaims(gun)
	with := func(f func(c *testClaims)) testClaims {
		c := goodClaims(gun)
		f(&c)
		return c
	}

	tests := []struct {
		name    string
		header  string // Authorization header; see token
		token   func(t *testing.T) string
		gun     string
		actions []string
		want    error  // nil, ErrNoCredentials, ErrInvalidCredentials or ErrInsufficientScope
		code    string // expected error code in the challenge
	}{
		// Accepted.
		{name: "ES256 kid", token: func(t *testing.T) string { return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, good) }},
		{name: "ES384 x5c via intermediate", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES384, p.leafES384.key, chain(p.leafES384, p.inter), good)
		}},
		{name: "ES512 x5c", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES512, p.leafES512.key, chain(p.leafES512), good)
		}},
		{name: "RS256 x5c", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, p.leafRSA.key, chain(p.leafRSA), good)
		}},
		{name: "RS512 kid", token: func(t *testing.T) string { return sign(t, jwt.SigningMethodRS512, p.rootRSA.key, rsaKid, good) }},
		{name: "PS256 kid", token: func(t *testing.T) string { return sign(t, jwt.SigningMethodPS256, p.rootRSA.key, rsaKid, good) }},
		{name: "lower-case scheme", header: "bearer ", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, good)
		}},
		{name: "audience list", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) {
				c.Audience = jwt.ClaimStrings{"other", "signet-trust"}
			}))
		}},
		{name: "star grants all", actions: []string{"*"}, token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) {
				c.Access[0].Actions = []string{"*"}
			}))
		}},
		{name: "actions split over entries", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) {
				c.Access = []resourceActions{
					{Type: "repository", Name: gun, Actions: []string{"pull"}},
					{Type: "repository", Name: gun, Actions: []string{"push"}},
				}
			}))
		}},
		{name: "pull only for pull", actions: []string{"pull"}, token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) {
				c.Access[0].Actions = []string{"pull"}
			}))
		}},
		{name: "ping with no access", gun: "-", actions: []string{}, token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) { c.Access = nil }))
		}},
		{name: "expired within leeway", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) {
				c.ExpiresAt = jwt.NewNumericDate(t0.Add(-30 * time.Second))
			}))
		}},

		// No credentials.
		{name: "no Authorization", header: "-", want: ErrNoCredentials},
		{name: "Basic credentials", header: "Basic YWxpY2U6c2VjcmV0", want: ErrNoCredentials},
		{name: "empty bearer", header: "Bearer ", want: ErrNoCredentials},

		// Invalid tokens.
		{name: "malformed", header: "Bearer not.a.jwt", want: ErrInvalidCredentials, code: "invalid_token"},
		{name: "two segments", header: "Bearer abc.def", want: ErrInvalidCredentials, code: "invalid_token"},
		{name: "expired", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) {
				c.ExpiresAt = jwt.NewNumericDate(t0.Add(-2 * time.Minute))
			}))
		}},
		{name: "no expiry", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) { c.ExpiresAt = nil }))
		}},
		{name: "not yet valid", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) {
				c.NotBefore = jwt.NewNumericDate(t0.Add(2 * time.Minute))
			}))
		}},
		{name: "wrong issuer", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) { c.Issuer = "evil" }))
		}},
		{name: "no issuer", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) { c.Issuer = "" }))
		}},
		{name: "wrong audience", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) {
				c.Audience = jwt.ClaimStrings{"registry"}
			}))
		}},
		{name: "alg none", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ecKid, good)
		}},
		{name: "HS256 keyed with the root public key", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			der, err := x509.MarshalPKIXPublicKey(p.rootEC.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			return sign(t, jwt.SigningMethodHS256, der, ecKid, good)
		}},
		{name: "HS256 keyed with the root certificate", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, p.rootEC.cert.Raw, chain(p.rootEC), good)
		}},
		{name: "x5c chain not to the root", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.leafOther.key, chain(p.leafOther, p.otherCA), good)
		}},
		{name: "x5c leaf without its intermediate", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES384, p.leafES384.key, chain(p.leafES384), good)
		}},
		{name: "x5c leaf expired", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.leafExpired.key, chain(p.leafExpired), good)
		}},
		{name: "x5c names another key than the signer", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.leafOther.key, chain(p.rootEC), good)
		}},
		{name: "x5c not a list", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, map[string]any{"x5c": "abc", "kid": kidOf(p.rootEC.key.Public())}, good)
		}},
		{name: "unknown kid", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.otherCA.key, map[string]any{"kid": kidOf(p.otherCA.key.Public())}, good)
		}},
		{name: "kid of an intermediate", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES384, p.inter.key, map[string]any{"kid": kidOf(p.inter.key.Public())}, good)
		}},
		{name: "no key named", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, nil, good)
		}},
		{name: "ES256 alg with RSA kid", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, rsaKid, good)
		}},
		{name: "ES384 alg with P-256 key", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			return retag(t, sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, good), "ES384")
		}},
		{name: "tampered signature", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			s := sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, good)
			i := strings.LastIndexByte(s, '.') + 5
			c := byte('A')
			if s[i] == 'A' {
				c = 'B'
			}
			return s[:i] + string(c) + s[i+1:]
		}},
		{name: "tampered claims", want: ErrInvalidCredentials, code: "invalid_token", token: func(t *testing.T) string {
			s := sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) { c.Access[0].Actions = []string{"pull"} }))
			forged := sign(t, jwt.SigningMethodES256, p.otherCA.key, ecKid, with(func(c *testClaims) { c.Access[0].Actions = []string{"*"} }))
			sp, fp := strings.Split(s, "."), strings.Split(forged, ".")
			return sp[0] + "." + fp[1] + "." + sp[2]
		}},

		// Valid tokens without the access asked for.
		{name: "wrong gun", want: ErrInsufficientScope, code: "insufficient_scope", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, goodClaims("registry.example.com/team/other"))
		}},
		{name: "insufficient actions", want: ErrInsufficientScope, code: "insufficient_scope", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) { c.Access[0].Actions = []string{"pull"} }))
		}},
		{name: "push and pull do not grant star", actions: []string{"*"}, want: ErrInsufficientScope, code: "insufficient_scope", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, good)
		}},
		{name: "access of another type", want: ErrInsufficientScope, code: "insufficient_scope", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, with(func(c *testClaims) { c.Access[0].Type = "registry" }))
		}},
	}

	a := newTestToken(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v2/"+gun+"/_trust/tuf/root.json", nil)
			var tok string
			if tt.token != nil {
				tok = tt.token(t)
			}
			switch {
			case tt.header == "-":
			case tt.header == "" || strings.HasSuffix(tt.header, " "):
				prefix := tt.header
				if prefix == "" {
					prefix = "Bearer "
				}
				r.Header.Set("Authorization", prefix+tok)
			default:
				r.Header.Set("Authorization", tt.header)
			}
			g, actions := gun, []string{"push", "pull"}
			if tt.gun == "-" {
				g = ""
			}
			if tt.actions != nil {
				actions = tt.actions
			}

			err := a.Authorize(r, g, actions...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Authorize: %v, want nil", err)
				}
				return
			}
			t.Logf("Authorize: %v", err)
			var ce *ChallengeError
			if !errors.As(err, &ce) {
				t.Fatalf("Authorize: %v (%T), want *ChallengeError", err, err)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Authorize: %v, want it to wrap %v", err, tt.want)
			}
			if ce.Code != tt.code {
				t.Errorf("Code = %q, want %q", ce.Code, tt.code)
			}
			wantScope := "repository:" + gun + ":" + strings.Join(actions, ",")
			if ce.Scheme != "Bearer" || ce.Realm != "https://auth.example.com/token" || ce.Service != "signet-trust" || ce.Scope != wantScope {
				t.Errorf("challenge = %+v", ce)
			}
			if tok != "" && strings.Contains(err.Error(), tok) {
				t.Errorf("error contains the token: %v", err)
			}
		})
	}
}

// retag replaces the alg of a signed token's header, keeping the rest.
func retag(t *testing.T, tok, alg string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	hdr, err := jwt.NewParser().DecodeSegment(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	hdr = []byte(strings.Replace(string(hdr), `"alg":"ES256"`, `"alg":"`+alg+`"`, 1))
	return strings.Join([]string{new(jwt.Token).EncodeSegment(hdr), parts[1], parts[2]}, ".")
}

func TestChallengeHeader(t *testing.T) {
	tests := []struct {
		name string
		err  ChallengeError
		want string
	}{
		{
			"bearer without token",
			ChallengeError{Scheme: "Bearer", Realm: "https://auth.example.com/token", Service: "signet", Scope: "repository:docker.io/library/alpine:push,pull"},
			`Bearer realm="https://auth.example.com/token",service="signet",scope="repository:docker.io/library/alpine:push,pull"`,
		},
		{
			"bearer invalid token",
			ChallengeError{Scheme: "Bearer", Realm: "https://a/t", Service: "s", Scope: "repository:g:*", Code: "invalid_token"},
			`Bearer realm="https://a/t",service="s",scope="repository:g:*",error="invalid_token"`,
		},
		{
			"ping",
			ChallengeError{Scheme: "Bearer", Realm: "https://a/t", Service: "s"},
			`Bearer realm="https://a/t",service="s"`,
		},
		{
			"basic",
			ChallengeError{Scheme: "Basic", Realm: "signet"},
			`Basic realm="signet"`,
		},
		{
			"quotes and control characters",
			ChallengeError{Scheme: "Basic", Realm: "a\"b\\c\r\nSet-Cookie: x"},
			`Basic realm="a\"b\\cSet-Cookie: x"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Header(); got != tt.want {
				t.Errorf("Header() = %s\nwant       %s", got, tt.want)
			}
		})
	}
}

func TestTokenChallengeScope(t *testing.T) {
	a := newTestToken(t)
	r := httptest.NewRequest("POST", "/v2/"+gun+"/_trust/tuf/", nil)
	err := a.Authorize(r, gun, "push", "pull")
	var ce *ChallengeError
	if !errors.As(err, &ce) {
		t.Fatalf("Authorize: %v, want *ChallengeError", err)
	}
	want := `Bearer realm="https://auth.example.com/token",service="signet-trust",scope="repository:registry.example.com/team/app:push,pull"`
	if got := ce.Header(); got != want {
		t.Errorf("Header() = %s\nwant       %s", got, want)
	}
}

func TestLibtrustKeyID(t *testing.T) {
	p := testPKI()
	format := regexp.MustCompile(`^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$`)
	for _, kp := range []keyPair{p.rootEC, p.rootRSA, p.leafES512} {
		got, err := libtrustKeyID(kp.key.Public())
		if err != nil {
			t.Fatal(err)
		}
		if want := kidOf(kp.key.Public()); got != want {
			t.Errorf("%s: libtrustKeyID = %s, want %s", kp.cert.Subject.CommonName, got, want)
		}
		if !format.MatchString(got) {
			t.Errorf("%s: key ID %s is not 12 groups of 4 base32 characters", kp.cert.Subject.CommonName, got)
		}
	}
}

func TestNewTokenErrors(t *testing.T) {
	dir := t.TempDir()
	noCerts := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(noCerts, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := writeBundle(t, testPKI().rootEC)
	base := TokenOptions{Realm: "https://a/t", Service: "s", Issuer: "i", RootCertBundle: good}
	tests := []struct {
		name string
		edit func(o *TokenOptions)
		want string
	}{
		{"ok", func(o *TokenOptions) {}, ""},
		{"no realm", func(o *TokenOptions) { o.Realm = "" }, "no realm"},
		{"no service", func(o *TokenOptions) { o.Service = "" }, "no service"},
		{"no issuer", func(o *TokenOptions) { o.Issuer = "" }, "no issuer"},
		{"no bundle", func(o *TokenOptions) { o.RootCertBundle = "" }, "no root certificate bundle"},
		{"missing bundle", func(o *TokenOptions) { o.RootCertBundle = filepath.Join(dir, "missing.pem") }, "no such file"},
		{"bundle without certificates", func(o *TokenOptions) { o.RootCertBundle = noCerts }, "no certificate"},
		{"bad certificate", func(o *TokenOptions) { o.RootCertBundle = bad }, "bad.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.edit(&o)
			_, err := NewToken(o)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewToken: %v, want error containing %q", err, tt.want)
			}
		})
	}
}
