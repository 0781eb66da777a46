package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/tokenserver"
)

// parseChallenge parses a WWW-Authenticate value holding one challenge,
// `Scheme k1="v1",k2=v2`, as the docker client does. Quoted values may use
// backslash escapes.
func parseChallenge(h string) (scheme string, params map[string]string, err error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if scheme == "" || strings.ContainsAny(scheme, "=,\"") {
		return "", nil, fmt.Errorf("parse challenge %q: no scheme", h)
	}
	params = make(map[string]string)
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return scheme, params, nil
		}
		name, after, ok := strings.Cut(rest, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" || strings.ContainsAny(name, " \t,\"") {
			return "", nil, fmt.Errorf("parse challenge %q: malformed parameter", h)
		}
		var value strings.Builder
		if strings.HasPrefix(after, `"`) {
			i, closed := 1, false
			for ; i < len(after); i++ {
				c := after[i]
				if c == '\\' && i+1 < len(after) {
					i++
					value.WriteByte(after[i])
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				value.WriteByte(c)
			}
			if !closed {
				return "", nil, fmt.Errorf("parse challenge %q: unterminated quoted string", h)
			}
			rest = after[i+1:]
		} else {
			v, r, _ := strings.Cut(after, ",")
			value.WriteString(strings.TrimSpace(v))
			rest = r
		}
		if _, dup := params[name]; dup {
			return "", nil, fmt.Errorf("parse challenge %q: parameter %q twice", h, name)
		}
		params[name] = value.String()
	}
}

// countFetches counts the requests made to a token service.
type countFetches struct {
	n    atomic.Int64
	next http.Handler
}

func (c *countFetches) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.next.ServeHTTP(w, r)
}

// trustServer stands for the trust server: it maps requests to actions as
// notary-server does and answers 401 or 403 from the authorizer's errors.
func trustServer(a Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var gun string
		var actions []string
		if r.URL.Path != "/v2/" {
			g, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/_trust/tuf/")
			if !ok {
				http.NotFound(w, r)
				return
			}
			gun = g
			switch r.Method {
			case http.MethodGet, http.MethodHead:
				actions = []string{"pull"}
			case http.MethodPost:
				actions = []string{"push", "pull"}
			case http.MethodDelete:
				actions = []string{"*"}
			}
		}
		err := a.Authorize(r, gun, actions...)
		var ce *ChallengeError
		var de *DeniedError
		switch {
		case err == nil:
			io.WriteString(w, "ok")
		case errors.As(err, &ce):
			w.Header().Set("WWW-Authenticate", ce.Header())
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case errors.As(err, &de):
			http.Error(w, "denied", http.StatusForbidden)
		default:
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	})
}

// dockerDo sends a request as the docker client does: on a 401 with a
// Bearer challenge, it fetches a token from the realm for the service and
// scope, with the user's Basic credentials if any, and retries once.
func dockerDo(t *testing.T, c *http.Client, method, u, user, password string) (int, string) {
	t.Helper()
	do := func(bearer string) *http.Response {
		req, err := http.NewRequest(method, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do("")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return resp.StatusCode, ""
	}
	scheme, params, err := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(scheme, "Bearer") {
		t.Fatalf("challenge scheme %q, want Bearer", scheme)
	}
	realm, err := url.Parse(params["realm"])
	if err != nil {
		t.Fatal(err)
	}
	q := realm.Query()
	q.Set("service", params["service"])
	if params["scope"] != "" {
		q.Set("scope", params["scope"])
	}
	realm.RawQuery = q.Encode()
	treq, err := http.NewRequest("GET", realm.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		treq.SetBasicAuth(user, password)
	}
	tresp, err := c.Do(treq)
	if err != nil {
		t.Fatal(err)
	}
	defer tresp.Body.Close()
	if tresp.StatusCode != http.StatusOK {
		return tresp.StatusCode, "token service"
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(tresp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	retry := do(body.Token)
	defer retry.Body.Close()
	_, params, _ = parseChallenge(retry.Header.Get("WWW-Authenticate"))
	return retry.StatusCode, params["error"]
}

func TestEndToEndTokenFlow(t *testing.T) {
	now := func() time.Time { return t0 }
	grants := map[string]map[string][]string{
		"alice": {gun: {"push", "pull", "*"}},
		"bob":   {gun: {"pull"}},
	}
	// A docker/distribution-style token service: the access it grants is
	// the intersection of the scope asked for and the user's grants.
	// Anonymous users get no access.
	issuer, err := tokenserver.New(tokenserver.Options{
		Issuer:  "test-issuer",
		Service: "signet-trust",
		Users:   map[string]string{"alice": "alice-pw", "bob": "bob-pw"},
		Grant:   func(user, gun string, _ []string) []string { return grants[user][gun] },
		Now:     now,
	})
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "roots.pem")
	if err := issuer.WriteRootBundle(bundle); err != nil {
		t.Fatal(err)
	}
	ts := &countFetches{next: issuer}
	tokenSrv := httptest.NewServer(ts)
	defer tokenSrv.Close()

	tok, err := NewToken(TokenOptions{
		Realm:          tokenSrv.URL + tokenserver.Path,
		Service:        "signet-trust",
		Issuer:         "test-issuer",
		RootCertBundle: bundle,
		Now:            now,
		Leeway:         DefaultLeeway,
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := httptest.NewServer(trustServer(tok))
	defer closed.Close()
	open := httptest.NewServer(trustServer(ReadOpen(tok)))
	defer open.Close()

	root := "/v2/" + gun + "/_trust/tuf/root.json"
	publish := "/v2/" + gun + "/_trust/tuf/"
	tests := []struct {
		name        string
		srv         *httptest.Server
		method      string
		path        string
		user        string
		wantStatus  int
		wantCode    string
		wantFetches int64
	}{
		{"ping alice", closed, "GET", "/v2/", "alice", 200, "", 1},
		{"ping anonymous", closed, "GET", "/v2/", "", 200, "", 1},
		{"publish alice", closed, "POST", publish, "alice", 200, "", 1},
		{"delete alice", closed, "DELETE", publish, "alice", 200, "", 1},
		{"read bob", closed, "GET", root, "bob", 200, "", 1},
		{"publish bob", closed, "POST", publish, "bob", 401, "insufficient_scope", 1},
		{"delete bob", closed, "DELETE", publish, "bob", 401, "insufficient_scope", 1},
		{"read anonymous", closed, "GET", root, "", 401, "insufficient_scope", 1},
		{"read other gun alice", closed, "GET", "/v2/docker.io/library/alpine/_trust/tuf/root.json", "alice", 401, "insufficient_scope", 1},
		{"public read anonymous", open, "GET", root, "", 200, "", 0},
		{"public publish anonymous", open, "POST", publish, "", 401, "insufficient_scope", 1},
		{"public publish alice", open, "POST", publish, "alice", 200, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.n.Store(0)
			pw := map[string]string{"alice": "alice-pw", "bob": "bob-pw"}[tt.user]
			status, code := dockerDo(t, tt.srv.Client(), tt.method, tt.srv.URL+tt.path, tt.user, pw)
			if status != tt.wantStatus || code != tt.wantCode {
				t.Errorf("status %d %q, want %d %q", status, code, tt.wantStatus, tt.wantCode)
			}
			if got := ts.n.Load(); got != tt.wantFetches {
				t.Errorf("token fetches = %d, want %d", got, tt.wantFetches)
			}
		})
	}
}

func TestEndToEndBasic(t *testing.T) {
	path := t.TempDir() + "/htpasswd"
	writeFile(t, path, "alice:"+hash(t, "alice-pw", "$2y$")+"\n")
	h, err := NewHtpasswd(path, "signet")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(trustServer(h))
	defer srv.Close()
	tests := []struct {
		name, user, password string
		want                 int
	}{
		{"alice", "alice", "alice-pw", 200},
		{"wrong password", "alice", "nope", 401},
		{"anonymous", "", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/v2/"+gun+"/_trust/tuf/", nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.password)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 401 {
				if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="signet"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			}
		})
	}
}
