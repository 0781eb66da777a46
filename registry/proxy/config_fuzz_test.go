package proxy

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadFile: the policy parser never panics, and a policy it accepts
// is one New accepts too, with every rule in a known mode and matching
// something (a typo must not load as a weaker policy), and a cache
// section within bounds.
func FuzzLoadFile(f *testing.F) {
	f.Add([]byte(`upstreams:
  - url: http://127.0.0.1:5000
rules:
  - name: team
    match: "127.0.0.1:5000/team/*"
    trust_server: https://trust.example.com:4443
    pin:
      root_cert_ids: [3f6c]
    signers: [targets/releases]
    mode: enforce
`))
	f.Add([]byte("rules:\n  - match: \"*\"\n    mode: allow\nupstreams:\n  - url: http://x\n"))
	f.Add([]byte("rules:\n  - match: a/*\n    mode: enforse\n"))
	f.Add([]byte("upstreams: [{url: 'http://r', credentials: basic, username: u, password_file: /nope}]\n"))
	f.Add([]byte("rules:\n  - match: a/*\n    mode: allow\ncache:\n  dir: /c\n  size: 1.5GiB\n  scrub_interval: 12h\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(p)
		if err != nil {
			return
		}
		ups, pol := c.Upstreams, c.Policy
		if c.Cache.MaxBytes < 0 || c.Cache.ScrubInterval != nil && *c.Cache.ScrubInterval < 0 {
			t.Fatalf("cache section loaded out of bounds: %+v", c.Cache)
		}
		if err := pol.Validate(); err != nil {
			t.Fatalf("LoadFile accepted a policy Validate refuses: %v", err)
		}
		for _, r := range pol.Rules {
			if r.Mode != "" && r.Mode != ModeEnforce && r.Mode != ModeWarn && r.Mode != ModeAllow { // "" is enforce
				t.Fatalf("rule %q loaded with mode %q", r.Name, r.Mode)
			}
			if r.Match == "" {
				t.Fatalf("rule %q loaded without a match", r.Name)
			}
		}
		_ = ups
	})
}
