package auth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	trustserver "github.com/signet-project/signet/trust/server"
)

// startTrustServer runs signet's trust server, over SQLite in a temporary
// folder, guarded by a.
func startTrustServer(t *testing.T, a Authorizer) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	st, err := trustserver.OpenStore(ctx, filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := trustserver.New(ctx, trustserver.Options{Store: st, KeyPassphrase: "correct horse battery staple", Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

// errorMessage returns the message of a notary error answer, failing
// unless the answer holds exactly one error.
func errorMessage(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
		t.Fatalf("body %s is not one notary error", body)
	}
	return e.Errors[0].Message
}

// TestChangefeedScopes checks what the changefeeds ask of a token, with
// the real trust server: the global changefeed lists every repository
// name, so it needs the registry catalog scope (registry:catalog:*, as
// notary-server asks); a repository's changefeed needs pull on it; ping
// needs only a valid token.
func TestChangefeedScopes(t *testing.T) {
	p := testPKI()
	ecKid := map[string]any{"kid": kidOf(p.rootEC.key.Public())}
	token := func(access ...resourceActions) string {
		c := goodClaims(gun)
		c.Access = access
		return sign(t, jwt.SigningMethodES256, p.rootEC.key, ecKid, c)
	}
	repoPull := resourceActions{Type: "repository", Name: gun, Actions: []string{"pull"}}
	repoAll := resourceActions{Type: "repository", Name: gun, Actions: []string{"*"}}
	catalog := resourceActions{Type: "registry", Name: "catalog", Actions: []string{"*"}}
	catalogPull := resourceActions{Type: "registry", Name: "catalog", Actions: []string{"pull"}}
	catalogOfOther := resourceActions{Type: "repository", Name: "catalog", Actions: []string{"*"}}

	ts := startTrustServer(t, newTestToken(t))
	global, perGUN := "/v2/_trust/changefeed", "/v2/"+gun+"/_trust/changefeed"
	tests := []struct {
		name      string
		path      string
		token     string
		want      int
		wantScope string // of the challenge, for 401
	}{
		{"global, token with no access", global, token(), 401, "registry:catalog:*"},
		{"global, pull on a repository", global, token(repoPull), 401, "registry:catalog:*"},
		{"global, every action on a repository", global, token(repoAll), 401, "registry:catalog:*"},
		{"global, catalog pull only", global, token(catalogPull), 401, "registry:catalog:*"},
		{"global, repository named catalog", global, token(catalogOfOther), 401, "registry:catalog:*"},
		{"global, catalog", global, token(catalog), 200, ""},
		{"global, no token", global, "", 401, "registry:catalog:*"},
		{"repository, pull", perGUN, token(repoPull), 200, ""},
		{"repository, catalog only", perGUN, token(catalog), 401, "repository:" + gun + ":pull"},
		{"repository, no access", perGUN, token(), 401, "repository:" + gun + ":pull"},
		{"ping, no access", "/v2/", token(), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s: %d %s, want %d", tt.path, resp.StatusCode, body, tt.want)
			}
			if tt.want != 401 {
				return
			}
			_, params, err := parseChallenge(resp.Header.Get("WWW-Authenticate"))
			if err != nil || params["scope"] != tt.wantScope {
				t.Errorf("challenge %q (%v), want scope %q", resp.Header.Get("WWW-Authenticate"), err, tt.wantScope)
			}
			msg := errorMessage(t, body)
			if strings.Contains(msg, "\n") {
				t.Errorf("message %q is not one line", msg)
			}
			if tt.token == "" {
				return
			}
			if params["error"] != "insufficient_scope" || !strings.Contains(msg, tt.wantScope) {
				t.Errorf("challenge error %q, message %q: want insufficient_scope and a message naming the scope needed", params["error"], msg)
			}
		})
	}
}
