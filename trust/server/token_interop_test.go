package server

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/signet-project/signet/internal/tokenserver"
	"github.com/signet-project/signet/trust/server/auth"
)

// tokenFetch is a token request as the token server saw it.
type tokenFetch struct {
	user   string // Basic user, "" for anonymous
	scopes string // the scope parameters, space-joined
}

// tokenLog records the token requests made to a handler.
type tokenLog struct {
	mu      sync.Mutex
	fetches []tokenFetch
	next    http.Handler
}

func (l *tokenLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, _, _ := r.BasicAuth()
	l.mu.Lock()
	l.fetches = append(l.fetches, tokenFetch{user: user, scopes: strings.Join(r.URL.Query()["scope"], " ")})
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

// take returns the requests recorded since the last call and forgets them.
func (l *tokenLog) take() []tokenFetch {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fetches
	l.fetches = nil
	return f
}

// notaryAuth is the NOTARY_AUTH setting for user and password.
func notaryAuth(user, password string) string {
	return "NOTARY_AUTH=" + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// listed parses the table `notary list` prints into rows by target name:
// digest, size, role.
func listed(out string) map[string][3]string {
	rows := make(map[string][3]string)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] != "NAME" && f[0] != "----" {
			rows[f[0]] = [3]string{f[1], f[2], f[3]}
		}
	}
	return rows
}

// TestNotaryCLIWithTokenAuth runs the real notary CLI against signet's
// trust server protected by Docker registry token auth, with a real token
// issuer: ci may do anything, viewer may only pull, and anonymous requests
// get pull only where the token server grants it.
//
// What notary v0.7.0 does, as this test pins down:
//   - Every command pings /v2/ first; a Bearer challenge there makes it
//     fetch a token for every request, even where reads are public.
//   - Write commands (init, publish, -p) ask for "push,pull" with the
//     NOTARY_AUTH credentials; without NOTARY_AUTH they prompt on stdin and,
//     at EOF, fetch a token anonymously.
//   - Read commands (list) ask for "pull" anonymously, ignoring NOTARY_AUTH;
//     only when the trust server still answers 401 do they retry with a
//     token fetched with the NOTARY_AUTH credentials.
//   - A token server that refuses an anonymous token request makes reads
//     fail outright, even public reads and even with NOTARY_AUTH set: the
//     failed fetch is an error, not a 401, so there is no retry. A client
//     with cached metadata takes it for an offline server and lists from
//     its cache, with a warning.
func TestNotaryCLIWithTokenAuth(t *testing.T) {
	const (
		gun     = "registry.example.com/team/app"
		service = "signet-trust"
		issuer  = "signet-test-token-issuer"
	)
	users := map[string]string{"ci": "ci-s3cret", "viewer": "viewer-s3cret"}
	v1 := strings.Repeat("ab", 32)
	v2 := strings.Repeat("cd", 32)
	pullScope := "repository:" + gun + ":pull"
	pushScope := "repository:" + gun + ":push,pull"
	anonFetch := tokenFetch{user: "", scopes: pullScope}
	viewerFetch := tokenFetch{user: "viewer", scopes: pullScope}
	// What notary prints when the trust server, or the token server,
	// refuses it.
	const (
		notAuthorized = "you are not authorized to perform this operation: server returned 401"
		wrongPassword = "unauthorized: invalid username or password"
		loginRefused  = "unauthorized: anonymous token requests are not allowed"
	)
	tests := []struct {
		name         string
		readOpen     bool // the trust server lets anyone read (auth.ReadOpen)
		anonPull     bool // the token server grants pull to anonymous requests
		requireLogin bool // the token server refuses anonymous requests

		anonList      string       // "" if an anonymous `notary list` works, else its error
		viewerList    string       // "" if `notary list` with viewer's NOTARY_AUTH works, else its error
		viewerFetches []tokenFetch // the token requests of viewer's list
	}{
		{name: "public reads, anonymous pull", readOpen: true, anonPull: true,
			viewerFetches: []tokenFetch{anonFetch}},
		{name: "public reads, no anonymous pull", readOpen: true,
			viewerFetches: []tokenFetch{anonFetch}},
		{name: "public reads, login required", readOpen: true, requireLogin: true,
			anonList: loginRefused, viewerList: loginRefused, viewerFetches: []tokenFetch{anonFetch}},
		{name: "token reads, anonymous pull", anonPull: true,
			viewerFetches: []tokenFetch{anonFetch}},
		{name: "token reads, no anonymous pull",
			anonList: notAuthorized, viewerFetches: []tokenFetch{anonFetch, viewerFetch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			issuerSrv, err := tokenserver.New(tokenserver.Options{
				Issuer:       issuer,
				Service:      service,
				Users:        users,
				RequireLogin: tt.requireLogin,
				Grant: func(user, _ string, requested []string) []string {
					switch {
					case user == "ci":
						return requested
					case user == "viewer", user == "" && tt.anonPull:
						return []string{auth.ActionPull}
					}
					return nil
				},
				Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			bundle := filepath.Join(dir, "token-roots.pem")
			if err := issuerSrv.WriteRootBundle(bundle); err != nil {
				t.Fatal(err)
			}
			fetches := &tokenLog{next: issuerSrv}
			tokenSrv := httptest.NewServer(fetches)
			t.Cleanup(tokenSrv.Close)

			tok, err := auth.NewToken(auth.TokenOptions{
				Realm:          tokenSrv.URL + tokenserver.Path,
				Service:        service,
				Issuer:         issuer,
				RootCertBundle: bundle,
				Leeway:         auth.DefaultLeeway,
			})
			if err != nil {
				t.Fatal(err)
			}
			var a auth.Authorizer = tok
			if tt.readOpen {
				a = auth.ReadOpen(tok)
			}
			ts, _ := startServer(t, filepath.Join(dir, "server.db"), Options{Auth: a})

			// fails runs notary and wants it to fail with want in its output.
			fails := func(n *notaryCLI, want string, args ...string) {
				t.Helper()
				out, err := n.run(ts.URL, args...)
				if err == nil || !strings.Contains(out, want) {
					t.Fatalf("notary %s: err %v, want failure with %q:\n%s", strings.Join(args, " "), err, want, out)
				}
			}
			as := func(user, password string) *notaryCLI {
				n := newNotaryCLI(t)
				if user != "" {
					n.env = []string{notaryAuth(user, password)}
				}
				return n
			}

			// Only ci can create the repository.
			anonInit := notAuthorized
			if tt.requireLogin {
				anonInit = loginRefused
			}
			fails(as("", ""), anonInit, "init", gun, "-p")
			fails(as("ci", "nope"), wrongPassword, "init", gun, "-p")
			fails(as("viewer", users["viewer"]), notAuthorized, "init", gun, "-p")
			if got, want := fetches.take(), []tokenFetch{{"", pushScope}, {"ci", pushScope}, {"viewer", pushScope}}; !slices.Equal(got, want) {
				t.Fatalf("token requests of the refused inits: %+v, want %+v", got, want)
			}

			ci := as("ci", users["ci"])
			ci.must(ts.URL, "init", gun, "-p")
			ci.must(ts.URL, "addhash", gun, "v1", "10", "--sha256", v1, "-p")
			for _, f := range fetches.take() {
				if f != (tokenFetch{"ci", pushScope}) {
					t.Fatalf("token request of ci's publish: %+v", f)
				}
			}

			// With ci's keys but without ci's credentials, publishing v2 is
			// refused by the trust server.
			for _, user := range []string{"viewer", ""} {
				n := &notaryCLI{t: t, bin: ci.bin, trustDir: ci.trustDir, home: ci.home}
				if user != "" {
					n.env = []string{notaryAuth(user, users[user])}
				}
				want := notAuthorized
				if user == "" && tt.requireLogin {
					want = loginRefused
				}
				fails(n, want, "addhash", gun, "v2", "20", "--sha256", v2, "-p")
			}
			fetches.take()

			// ci's list shows v1 only. Where the token server refuses
			// anonymous requests, the refused token fetch counts as the
			// server being unreachable: notary falls back to ci's cache.
			wantRows := map[string][3]string{"v1": {v1, "10", "targets"}}
			out := ci.must(ts.URL, "list", gun)
			if !reflect.DeepEqual(listed(out), wantRows) {
				t.Fatalf("ci's list = %v, want %v:\n%s", listed(out), wantRows, out)
			}
			if cached := strings.Contains(out, "using cached timestamp"); cached != tt.requireLogin {
				t.Fatalf("ci's list from the cache: %v, want %v:\n%s", cached, tt.requireLogin, out)
			}
			fetches.take()

			// lists runs `notary list` with a fresh cache and wants it to
			// show v1 only (so v2 was never published), or to fail with
			// wantErr.
			lists := func(n *notaryCLI, who, wantErr string) {
				t.Helper()
				out, err := n.run(ts.URL, "list", gun)
				switch {
				case wantErr == "" && (err != nil || !reflect.DeepEqual(listed(out), wantRows)):
					t.Fatalf("%s list: err %v, rows %v, want %v:\n%s", who, err, listed(out), wantRows, out)
				case wantErr != "" && (err == nil || !strings.Contains(out, wantErr)):
					t.Fatalf("%s list: err %v, want failure with %q:\n%s", who, err, wantErr, out)
				}
			}
			lists(as("", ""), "anonymous", tt.anonList)
			for _, f := range fetches.take() {
				if f != anonFetch {
					t.Fatalf("token request of the anonymous list: %+v, want %+v", f, anonFetch)
				}
			}
			lists(as("viewer", users["viewer"]), "viewer's", tt.viewerList)
			if got := fetches.take(); !slices.Equal(got, tt.viewerFetches) {
				t.Fatalf("token requests of viewer's list: %+v, want %+v", got, tt.viewerFetches)
			}
		})
	}
}
