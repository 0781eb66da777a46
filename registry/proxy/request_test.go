package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testlog"
	"github.com/signet-project/signet/trust/verify"
)

// rawGet sends requestURI exactly as given (no client-side cleaning or
// escaping) and returns the status and body.
func rawGet(t *testing.T, hostport, requestURI string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostport, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", requestURI, hostport)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", requestURI, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// upstreamRecorder records the paths an upstream was asked for.
type upstreamRecorder struct {
	mu    sync.Mutex
	paths []string
}

func (u *upstreamRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.paths = append(u.paths, r.URL.RawPath+" "+r.URL.Path)
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (u *upstreamRecorder) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.paths)
}

// TestNamesCannotWalkOutOfARule: with an enforce rule for HOST/* and a
// rule for HOST/public/* in each mode, a name that leaves public/ by an
// encoding trick, or any other name outside the reference grammar, is
// refused with 400 before any rule is matched: the upstream and the trust
// server are not asked, and the audit log shows no allow.
func TestNamesCannotWalkOutOfARule(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	attacks := []struct{ name, uri, code string }{
		{"dot-dot", "/v2/public/../team/unsigned/manifests/v1", "NAME_INVALID"},
		{"encoded slash", "/v2/public/..%2Fteam/unsigned/manifests/v1", "NAME_INVALID"},
		{"encoded slash lower case", "/v2/public/..%2fteam/unsigned/manifests/v1", "NAME_INVALID"},
		{"encoded dots", "/v2/public/%2e%2e/team/unsigned/manifests/v1", "NAME_INVALID"},
		{"encoded dots and slash", "/v2/public/%2E%2E%2Fteam/unsigned/manifests/v1", "NAME_INVALID"},
		{"double-encoded slash", "/v2/public/..%252Fteam/unsigned/manifests/v1", "NAME_INVALID"},
		{"backslash", `/v2/public/..\team/unsigned/manifests/v1`, "NAME_INVALID"},
		{"encoded backslash", "/v2/public/..%5Cteam/unsigned/manifests/v1", "NAME_INVALID"},
		{"doubled slash", "/v2/public//team/unsigned/manifests/v1", "NAME_INVALID"},
		{"trailing slash in name", "/v2/public/app//manifests/v1", "NAME_INVALID"},
		{"trailing slash in reference", "/v2/public/app/manifests/v1/", "MANIFEST_INVALID"},
		{"dot segment", "/v2/public/./app/manifests/v1", "NAME_INVALID"},
		{"upper case", "/v2/public/App/manifests/v1", "NAME_INVALID"},
		{"upper case first component", "/v2/Public/app/manifests/v1", "NAME_INVALID"},
		{"encoded slash, clean name", "/v2/public%2Fapp/manifests/v1", "NAME_INVALID"},
		{"encoded letter", "/v2/public/%61pp/manifests/v1", "NAME_INVALID"},
		{"reference walks back", "/v2/public/app/manifests/..%2F..%2Fteam%2Funsigned%2Fmanifests%2Fv1", "NAME_INVALID"},
		{"reference with a slash", "/v2/public/app/manifests/v1%2F..", "MANIFEST_INVALID"},
		{"blob reference walks back", "/v2/public/app/blobs/..%2F..%2Fteam%2Funsigned%2Fblobs%2F" + d, "NAME_INVALID"},
		{"blob reference not a digest", "/v2/public/app/blobs/latest", "DIGEST_INVALID"},
		{"blobs", "/v2/public/..%2Fteam/unsigned/blobs/" + d, "NAME_INVALID"},
		{"tags list", "/v2/public/..%2Fteam/unsigned/tags/list", "NAME_INVALID"},
		{"too long", "/v2/public/" + strings.Repeat("a", 250) + "/manifests/v1", "NAME_INVALID"},
		// A reference that is not a tag nor a digest is refused before
		// any trust decision; one with a colon is never read as a tag.
		{"malformed digest", "/v2/public/app/manifests/sha256:totallywrong", "DIGEST_INVALID"},
		{"short digest", "/v2/public/app/manifests/sha256:" + strings.Repeat("a", 40), "DIGEST_INVALID"},
		{"upper-case digest", "/v2/public/app/manifests/sha256:" + strings.Repeat("A", 64), "DIGEST_INVALID"},
		{"unknown algorithm", "/v2/public/app/manifests/md5:" + strings.Repeat("a", 32), "DIGEST_INVALID"},
		{"tag starting with a dot", "/v2/public/app/manifests/.INVALID", "MANIFEST_INVALID"},
		{"tag too long", "/v2/public/app/manifests/" + strings.Repeat("a", 129), "MANIFEST_INVALID"},
		{"blob digest malformed", "/v2/public/app/blobs/sha256:totallywrong", "DIGEST_INVALID"},
		{"referrers of a tag", "/v2/public/app/referrers/v1", "DIGEST_INVALID"},
		{"tags page size not a number", "/v2/public/app/tags/list?n=two", "UNSUPPORTED"},
		{"tags page size negative", "/v2/public/app/tags/list?n=-1", "UNSUPPORTED"},
	}
	for _, mode := range []string{ModeAllow, ModeWarn, ModeEnforce} {
		t.Run(mode, func(t *testing.T) {
			rec := &upstreamRecorder{}
			logs := &testlog.Buffer{}
			e := newEnvWrapped(t, rec.wrap, func(o *Options) {
				o.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			e.opts.Policy.Rules = append(e.opts.Policy.Rules, Rule{
				Name: "public", Match: e.upstream + "/public/*", Mode: mode, TrustServer: e.trust, Pin: verify.Pin{TOFU: true},
			})
			e.proxy = e.newReplica()
			e.push("team/unsigned:v1")
			e.push("public/app:v1")
			upBefore, trustBefore := rec.count(), e.trustRequests.Load()
			for _, a := range attacks {
				status, body := rawGet(t, e.proxy, a.uri)
				if status != http.StatusBadRequest || !strings.Contains(body, `"code":"`+a.code+`"`) {
					t.Errorf("%s: GET %s: %d %s, want 400 %s", a.name, a.uri, status, strings.TrimSpace(body), a.code)
				}
			}
			if n := rec.count() - upBefore; n != 0 {
				t.Errorf("the upstream was asked %d times for refused names: %q", n, rec.paths[upBefore:])
			}
			if n := e.trustRequests.Load() - trustBefore; n != 0 {
				t.Errorf("the trust server was asked %d times for refused names", n)
			}
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "msg=decision") && !strings.Contains(line, "decision=deny") {
					t.Errorf("audit log of a refused name: %s", line)
				}
			}

			// The same names, spelled plainly, are decided by their rules.
			if status, body := rawGet(t, e.proxy, "/v2/team/unsigned/manifests/v1"); status != http.StatusForbidden {
				t.Errorf("team/unsigned under the enforce rule: %d %s", status, body)
			}
			want := map[string]int{ModeAllow: 200, ModeWarn: 200, ModeEnforce: 403}[mode]
			if status, body := rawGet(t, e.proxy, "/v2/public/app/manifests/v1"); status != want {
				t.Errorf("public/app under the %s rule: %d %s, want %d", mode, status, body, want)
			}
		})
	}
}

// TestInvalidNameMessage: the refusal names the repository and says how
// to spell one.
func TestInvalidNameMessage(t *testing.T) {
	e := newEnv(t, nil)
	status, body := rawGet(t, e.proxy, "/v2/team/App/manifests/v1")
	if status != http.StatusBadRequest || !strings.Contains(body, `invalid repository name \"team/App\"`) || !strings.Contains(body, "lower-case") {
		t.Fatalf("%d %s", status, body)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"/v2/a/manifests/v1", "/v2/a/b/blobs/sha256:00", "/v2/a/tags/list", "/v2/manifests/x", "/v2//manifests/", "/v2/a/referrers/sha256:00", "/v2/a/manifests/b/blobs/sha256:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		req, ok := parseRequest(path)
		if !ok {
			return
		}
		if req.name == "" && req.kind != "tags" {
			t.Fatalf("%q parsed with an empty name: %+v", path, req)
		}
		switch req.kind {
		case "manifests", "blobs", "tags", "referrers":
		default:
			t.Fatalf("%q: kind %q", path, req.kind)
		}
	})
}

// FuzzCheckRequest: whatever path a client sends, a request that passes
// the name check names one clean repository, spelled as it was sent.
func FuzzCheckRequest(f *testing.F) {
	for _, s := range []string{"/v2/a/manifests/v1", "/v2/public/..%2Fteam/x/manifests/v1", "/v2/a//b/blobs/sha256:00", "/v2/p/%2e%2e/tags/list", "/v2/a%2Fb/manifests/v1"} {
		f.Add(s)
	}
	p := &Proxy{ups: upstreams{fallback: &upstream{gunHost: "reg:5000"}}}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := http.NewRequest(http.MethodGet, "http://proxy"+raw, nil)
		if err != nil {
			return
		}
		req, ok := parseRequest(r.URL.Path)
		if !ok || p.checkRequest(r, req) != nil {
			return
		}
		if path.Clean("/"+req.name) != "/"+req.name || strings.Contains(req.name, "..") || strings.ToLower(req.name) != req.name {
			t.Fatalf("%q accepted with name %q", raw, req.name)
		}
		if !strings.HasPrefix(r.URL.EscapedPath(), "/v2/"+req.name+"/") {
			t.Fatalf("%q accepted with name %q, not as sent", raw, req.name)
		}
	})
}
