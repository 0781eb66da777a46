package auth

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer  x", "Basic YTpi", "Bearer", "Bearer a b", "", "BEARER \tx\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearerToken(h)
		if !ok {
			if tok != "" {
				t.Fatalf("bearerToken(%q) = %q, false", h, tok)
			}
			return
		}
		if tok == "" || len(tok) > maxTokenSize || strings.ContainsAny(tok, " \t") || !strings.Contains(h, tok) {
			t.Fatalf("bearerToken(%q) = %q", h, tok)
		}
	})
}

// FuzzChallengeHeader checks that a challenge always parses back, as a
// client would read it, to the values it was made of, less control
// characters: no value can add a parameter or break the header.
func FuzzChallengeHeader(f *testing.F) {
	f.Add("https://auth.example.com/token", "signet", "repository:docker.io/library/alpine:push,pull", "invalid_token")
	f.Add(`a"b\c`, "s,error=\"x\"", "", "")
	f.Add("r\r\nSet-Cookie: a=b", "", "repository:g:*", "insufficient_scope")
	f.Fuzz(func(t *testing.T, realm, service, scope, code string) {
		e := &ChallengeError{Scheme: "Bearer", Realm: realm, Service: service, Scope: scope, Code: code}
		h := e.Header()
		if strings.ContainsAny(h, "\r\n\x00") {
			t.Fatalf("header %q has control characters", h)
		}
		scheme, params, err := parseChallenge(h)
		if err != nil {
			t.Fatalf("parse %q: %v", h, err)
		}
		if scheme != "Bearer" {
			t.Fatalf("scheme %q", scheme)
		}
		want := map[string]string{"realm": stripControls(realm)}
		for k, v := range map[string]string{"service": service, "scope": scope, "error": code} {
			if v != "" {
				want[k] = stripControls(v)
			}
		}
		if len(params) != len(want) {
			t.Fatalf("parse %q = %q, want %q", h, params, want)
		}
		for k, v := range want {
			if params[k] != v {
				t.Fatalf("parse %q: %s = %q, want %q", h, k, params[k], v)
			}
		}
	})
}

func stripControls(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// FuzzParseChallenge checks that the test client's challenge parser does
// not panic on what a server may send.
func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://a/t",service="s",scope="repository:g:push,pull",error="invalid_token"`)
	f.Add(`Basic realm=signet`)
	f.Add(`Bearer realm="unterminated`)
	f.Fuzz(func(t *testing.T, h string) {
		parseChallenge(h)
	})
}

// FuzzTokenAuthorize feeds arbitrary tokens, seeded with valid and
// invalid ones, to a Token authorizer: it must never panic, always answer
// with a challenge when refusing, and never accept a token not signed by a
// trusted key for the access asked for.
func FuzzTokenAuthorize(f *testing.F) {
	p := testPKI()
	ecKid := map[string]any{"kid": kidOf(p.rootEC.key.Public())}
	good := goodClaims(gun)
	seeds := []string{
		sign(f, jwt.SigningMethodES256, p.rootEC.key, ecKid, good),
		sign(f, jwt.SigningMethodES384, p.leafES384.key, map[string]any{"x5c": x5c(p.leafES384, p.inter)}, good),
		sign(f, jwt.SigningMethodRS256, p.leafRSA.key, map[string]any{"x5c": x5c(p.leafRSA)}, good),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ecKid, good),
		"e30.e30.", "..", "a.b.c", "",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	a := newTestToken(f)
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+raw)
		err := a.Authorize(r, gun, "push", "pull")
		if err == nil {
			// Only a token verified with a trusted key is accepted; check
			// again independently of Authorize.
			c, verr := a.verify(strings.TrimSpace(raw))
			if verr != nil || !c.grants("repository", gun, []string{"push", "pull"}) {
				t.Fatalf("accepted %q but verify says %v", raw, verr)
			}
			return
		}
		var ce *ChallengeError
		if !errors.As(err, &ce) {
			t.Fatalf("Authorize: %T %v, want *ChallengeError", err, err)
		}
		if len(raw) > 16 && strings.Contains(err.Error(), raw) {
			t.Fatalf("error contains the token")
		}
	})
}

// FuzzParseHtpasswd checks that parsing never panics and that what it
// accepts is well formed.
func FuzzParseHtpasswd(f *testing.F) {
	f.Add([]byte("alice:$2y$04$" + dummyHashBody + "\n# comment\n\nbob:$2a$05$" + dummyHashBody + "\r\n"))
	f.Add([]byte("bob:$apr1$x$y\n"))
	f.Add([]byte(":\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, costs, err := parseHtpasswd(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if len(costs) != max(1, len(users)) {
			t.Fatalf("%d costs for %d users", len(costs), len(users))
		}
		for _, cost := range costs {
			if cost < 4 || cost > 31 {
				t.Fatalf("cost %d", cost)
			}
		}
		for u, h := range users {
			if u == "" || strings.ContainsAny(u, ":\n") || !isBcrypt(string(h)) {
				t.Fatalf("accepted user %q hash %q", u, h)
			}
		}
	})
}
