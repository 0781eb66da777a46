package proxy

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signet-project/signet/trust/verify"
)

const (
	upUser     = "puller"
	upPassword = "upstream secret"
)

// seen is one request an upstream or storage host received.
type seen struct {
	host, path, auth string
}

// gate puts the upstream registry behind basic auth (once locked) and
// lets a test make it redirect paths; it records every request with the
// credentials it carried.
type gate struct {
	locked    atomic.Bool
	redirects sync.Map // path -> Location
	mu        sync.Mutex
	seen      []seen
}

func (g *gate) record(r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, seen{host: r.Host, path: r.URL.Path, auth: r.Header.Get("Authorization")})
}

func (g *gate) requests() []seen {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seen(nil), g.seen...)
}

func (g *gate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.record(r)
		if g.locked.Load() {
			if u, p, ok := r.BasicAuth(); !ok || u != upUser || p != upPassword {
				w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if loc, ok := g.redirects.Load(r.URL.Path); ok {
			http.Redirect(w, r, loc.(string), http.StatusTemporaryRedirect)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// storageHost is an object store a blob redirect points at: it records
// requests and serves the bytes it holds.
type storageHost struct {
	url  string
	gate *gate
	mu   sync.Mutex
	objs map[string][]byte
}

func newStorageHost(t *testing.T) *storageHost {
	s := &storageHost{gate: &gate{}, objs: map[string][]byte{}}
	srv := httptest.NewServer(s.gate.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b, ok := s.objs[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func passwordFile(t *testing.T, password string) string {
	f := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(f, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func basicHeader(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// TestUpstreamRedirectToAnotherRepository: an upstream that redirects a
// manifest or tags request to another repository's path (on its own host
// or another) is refused, and the redirect target never receives the
// proxy's upstream credentials. A blob redirected to a storage host is
// followed, without credentials.
func TestUpstreamRedirectToAnotherRepository(t *testing.T) {
	g := &gate{}
	pw := passwordFile(t, upPassword)
	e := newEnvWrapped(t, g.wrap, func(o *Options) {
		o.Upstreams[0].Credentials = CredentialsBasic
		o.Upstreams[0].Username, o.Upstreams[0].PasswordFile = upUser, pw
		o.Policy.Rules = append(o.Policy.Rules, Rule{Name: "public", Match: strings.TrimPrefix(o.Upstreams[0].URL, "http://") + "/public/*", Mode: ModeAllow})
	})
	signed := e.push("team/app:v1")
	e.sign("team/app:v1")
	e.push("public/app:v1")
	e.push("team/secret:v1")
	g.locked.Store(true)
	other := newStorageHost(t)
	upURL := "http://" + e.upstream
	signedDigest := digestOf(t, signed)

	tests := []struct {
		name, get, from, to string
	}{
		{"allow-listed manifest to another repository", "/v2/public/app/manifests/v1", "/v2/public/app/manifests/v1", upURL + "/v2/team/secret/manifests/v1"},
		{"allow-listed manifest by dot-dot", "/v2/public/app/manifests/v1", "/v2/public/app/manifests/v1", upURL + "/v2/public/app/../../team/secret/manifests/v1"},
		{"allow-listed tags list", "/v2/public/app/tags/list", "/v2/public/app/tags/list", upURL + "/v2/team/secret/tags/list"},
		{"signed manifest to another repository", "/v2/team/app/manifests/v1", "/v2/team/app/manifests/" + signedDigest, upURL + "/v2/team/secret/manifests/" + signedDigest},
		{"allow-listed manifest to another host", "/v2/public/app/manifests/v1", "/v2/public/app/manifests/v1", other.url + "/v2/team/secret/manifests/v1"},
		{"signed manifest to another host", "/v2/team/app/manifests/v1", "/v2/team/app/manifests/" + signedDigest, other.url + "/v2/team/app/manifests/" + signedDigest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g.redirects.Store(tc.from, tc.to)
			defer g.redirects.Delete(tc.from)
			before, beforeOther := len(g.requests()), len(other.gate.requests())
			p := e.newReplica() // nothing cached
			resp, err := http.Get("http://" + p + tc.get)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "redirected") {
				t.Fatalf("%d %s, want 502 naming the redirect", resp.StatusCode, body)
			}
			for _, s := range g.requests()[before:] {
				if !strings.HasPrefix(s.path, "/v2/team/app/") && !strings.HasPrefix(s.path, "/v2/public/app/") && s.path != "/v2/" {
					t.Errorf("the upstream was asked for another repository: %+v", s)
				}
			}
			if n := len(other.gate.requests()) - beforeOther; n != 0 {
				t.Errorf("the other host was asked %d times: %+v", n, other.gate.requests()[beforeOther:])
			}
		})
	}

	// The checks above can fail: the upstream does answer with the
	// credentials, and without a redirect the same requests succeed.
	p := e.newReplica()
	for _, path := range []string{"/v2/public/app/manifests/v1", "/v2/team/app/manifests/v1", "/v2/public/app/tags/list"} {
		resp, err := http.Get("http://" + p + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s without a redirect: %d", path, resp.StatusCode)
		}
	}

	// A blob redirected to a storage host is followed, and the storage
	// host gets no credentials.
	layers, _ := signed.Layers()
	ld, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	blob, _ := io.ReadAll(rc)
	rc.Close()
	other.mu.Lock()
	other.objs["/blobs/"+ld.Hex] = blob
	other.mu.Unlock()
	g.redirects.Store("/v2/team/app/blobs/"+ld.String(), other.url+"/blobs/"+ld.Hex+"?signature=x")
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatalf("pull with a blob in storage: %v", err)
	}
	var stored int
	for _, s := range other.gate.requests() {
		if s.path == "/blobs/"+ld.Hex {
			stored++
		}
		if s.auth != "" {
			t.Errorf("the storage host got credentials: %+v", s)
		}
	}
	if stored == 0 {
		t.Fatal("the blob was not fetched from the storage host")
	}
}

// TestUpstreamCredentials: the proxy presents to an upstream only what
// its configuration grants: nothing by default, even when the docker
// config of the user running it holds credentials for the upstream.
func TestUpstreamCredentials(t *testing.T) {
	g := &gate{}
	e := newEnvWrapped(t, g.wrap, nil)
	e.push("team/app:v1")
	e.sign("team/app:v1")
	g.locked.Store(true)

	// A docker config with the right credentials for the upstream.
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(upUser + ":" + upPassword))
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+e.upstream+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)

	tests := []struct {
		name     string
		up       Upstream
		ok       bool
		wantAuth string // Authorization the upstream must have seen ("" none at all)
	}{
		{"default is anonymous", Upstream{}, false, ""},
		{"anonymous", Upstream{Credentials: CredentialsAnonymous}, false, ""},
		{"docker config, opted in", Upstream{Credentials: CredentialsDocker}, true, basicHeader(upUser, upPassword)},
		{"basic", Upstream{Credentials: CredentialsBasic, Username: upUser, PasswordFile: passwordFile(t, upPassword)}, true, basicHeader(upUser, upPassword)},
		{"username implies basic", Upstream{Username: upUser, PasswordFile: passwordFile(t, upPassword)}, true, basicHeader(upUser, upPassword)},
		{"basic, wrong password", Upstream{Credentials: CredentialsBasic, Username: upUser, PasswordFile: passwordFile(t, "wrong")}, false, basicHeader(upUser, "wrong")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := tc.up
			up.URL = "http://" + e.upstream
			e.opts.Upstreams = []Upstream{up}
			before := len(g.requests())
			e.proxy = e.newReplica()
			_, err := e.pull("team/app:v1")
			if tc.ok != (err == nil) {
				t.Fatalf("pull: %v, want success %v", err, tc.ok)
			}
			reqs := g.requests()[before:]
			if len(reqs) == 0 {
				t.Fatal("the upstream was not asked")
			}
			for _, s := range reqs {
				if s.auth != tc.wantAuth && !(s.auth == "" && s.path == "/v2/") {
					t.Errorf("upstream got Authorization %q for %s, want %q", s.auth, s.path, tc.wantAuth)
				}
			}
		})
	}
}

func TestUpstreamCredentialsConfig(t *testing.T) {
	pw := passwordFile(t, "x")
	tests := []struct {
		up   Upstream
		want string
	}{
		{Upstream{Credentials: "token"}, `credentials "token": use anonymous, docker or basic`},
		{Upstream{Credentials: CredentialsDocker, Username: "u"}, `go with credentials "basic", not "docker"`},
		{Upstream{Credentials: CredentialsBasic, Username: "u"}, "need a username and a password file"},
		{Upstream{Credentials: CredentialsBasic, PasswordFile: pw}, "need a username and a password file"},
		{Upstream{Credentials: CredentialsBasic, Username: "u", PasswordFile: filepath.Join(t.TempDir(), "missing")}, "read the password file"},
		{Upstream{Credentials: CredentialsBasic, Username: "u", PasswordFile: passwordFile(t, "")}, "is empty"},
		{Upstream{Prefix: "Docker.io"}, `prefix "Docker.io" is not a repository path`},
		{Upstream{Prefix: "localhost:5000"}, `prefix "localhost:5000" is not a repository path`},
		{Upstream{Host: "bad host"}, `registry name "bad host" cannot start a repository name`},
	}
	for _, tc := range tests {
		up := tc.up
		up.URL = "http://127.0.0.1:5000"
		_, err := New(Options{Upstreams: []Upstream{up}, Policy: Policy{Rules: []Rule{{Match: "x/*", Mode: ModeAllow}}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.up, err, tc.want)
		}
	}
}

// TestPolicyFileCredentials: credentials are set per upstream in the
// policy file; an unknown kind is refused at load.
func TestPolicyFileCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `
upstreams:
  - url: http://127.0.0.1:5000
  - prefix: hub
    url: https://registry-1.docker.io
    credentials: docker
  - prefix: corp
    url: https://corp.example.com
    username: puller
    password_file: /run/secrets/corp
rules:
  - match: "x/*"
    mode: allow
`)
	ups, _, err := LoadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{ups[0].Presents(), ups[1].Presents(), ups[2].Presents()}
	want := []string{"anonymous", "docker credentials of the user running the proxy", "basic auth as puller"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("credentials %q, want %q", got, want)
	}
	bad := write("bad.yaml", `
upstreams:
  - url: http://127.0.0.1:5000
    credentials: keychain
rules:
  - match: "x/*"
    mode: allow
`)
	if _, _, err := LoadFile(bad); err == nil || !strings.Contains(err.Error(), `credentials "keychain"`) {
		t.Fatalf("bad credentials: %v", err)
	}
}

// TestTrustServerRefusesName: a trust server that answers 400 with an
// invalid-name code makes a denial that says the name is invalid, not
// that the trust server is unreachable.
func TestTrustServerRefusesName(t *testing.T) {
	var asked atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"errors":[{"code":"NAME_INVALID","message":"refused by the server's naming rules"}]}`)
	}))
	t.Cleanup(ts.Close)
	e := newEnv(t, func(o *Options) {
		o.Policy.Rules[0].TrustServer = ts.URL
		o.Policy.Rules[0].Pin = verify.Pin{TOFU: true}
	})
	e.push("team/app:v1")
	_, err := e.pull("team/app:v1")
	denied(t, err, "invalid repository name")
	if strings.Contains(err.Error(), "unreachable") || asked.Load() == 0 {
		t.Fatalf("trust server asked %d times; denial %v", asked.Load(), err)
	}
}
