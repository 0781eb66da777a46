package proxy

import (
	"net/http"
	"path"
	"strings"
	"testing"

	"github.com/signet-project/signet/trust/verify"
)

func TestPolicyMatch(t *testing.T) {
	pin := verify.Pin{TOFU: true}
	p := Policy{Rules: []Rule{
		{Name: "all", Match: "reg:5000/*", TrustServer: "https://t", Pin: pin},
		{Name: "team", Match: "reg:5000/team/*", TrustServer: "https://t", Pin: pin},
		{Name: "exact", Match: "reg:5000/team/special", TrustServer: "https://t", Pin: pin},
		{Name: "hub", Match: "docker.io/library/*", Mode: ModeAllow},
	}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"reg:5000/app":            "all",
		"reg:5000/team/app":       "team",
		"reg:5000/team/deep/app":  "team",
		"reg:5000/team/special":   "exact",
		"docker.io/library/nginx": "hub",
		"docker.io/other/nginx":   "",
		"other:5000/app":          "",
		"reg:5000":                "",
		// Only clean names match: these would pass a prefix test.
		"reg:5000/team/../special": "",
		"reg:5000/team//app":       "",
		"reg:5000/team/./app":      "",
		"reg:5000/team/app/":       "",
		"reg:5000/team/App":        "",
	}
	for gun, want := range tests {
		r, ok := p.match(gun)
		got := ""
		if ok {
			got = r.Name
		}
		if got != want {
			t.Errorf("match(%q) = %q, want %q", gun, got, want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		rule Rule
		want string
	}{
		{Rule{Match: "a/*", TrustServer: "https://t"}, "no root pin"},
		{Rule{Match: "a/*", Pin: verify.Pin{TOFU: true}}, "no trust server"},
		{Rule{Match: "a/*", TrustServer: "https://t", Pin: verify.Pin{TOFU: true}, Mode: "audit"}, `mode "audit"`},
		{Rule{Match: "a/*", TrustServer: "https://t", Pin: verify.Pin{TOFU: true}, Signers: []string{"releases"}}, "is not targets"},
		{Rule{Match: "[", TrustServer: "https://t", Pin: verify.Pin{TOFU: true}}, "bad pattern"},
		{Rule{}, "empty match"},
	}
	for _, tc := range tests {
		err := Policy{Rules: []Rule{tc.rule}}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.rule, err, tc.want)
		}
	}
	if err := (Policy{}).Validate(); err == nil {
		t.Error("empty policy accepted")
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"/v2/a/manifests/v1", "/v2/a/b/blobs/sha256:00", "/v2/a/tags/list", "/v2/manifests/x", "/v2//manifests/"} {
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
		case "manifests", "blobs", "tags":
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
