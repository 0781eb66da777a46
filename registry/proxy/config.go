package proxy

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/signet-project/signet/trust/verify"
)

// File is the policy file (YAML):
//
//	upstreams:
//	  - url: http://127.0.0.1:5000        # default upstream (no prefix)
//	  - prefix: docker.io                 # proxy/docker.io/library/nginx
//	    url: https://registry-1.docker.io
//	    host: docker.io                   # registry name in GUNs
//	    credentials: basic                # anonymous (default) | docker | basic
//	    username: puller
//	    password_file: /run/secrets/hub-password
//	rules:
//	  - name: team
//	    match: "127.0.0.1:5000/team/*"    # glob over the GUN
//	    trust_server: https://trust.example.com:4443
//	    pin:
//	      root_cert_ids: [3f6c...]        # or ca: /etc/signet/root-ca.pem, or tofu: true
//	    signers: [targets/releases]       # all must agree; default docker's rule
//	    mode: enforce                     # enforce | warn | allow
//	    archive:                          # optional: see Rule.ArchiveSnapshot
//	      snapshot_sha256: 9f2c...        # printed by signet mirror
type File struct {
	Upstreams []struct {
		Prefix       string `yaml:"prefix"`
		URL          string `yaml:"url"`
		Host         string `yaml:"host"`
		Credentials  string `yaml:"credentials"`
		Username     string `yaml:"username"`
		PasswordFile string `yaml:"password_file"`
	} `yaml:"upstreams"`
	Rules []struct {
		Name        string   `yaml:"name"`
		Match       string   `yaml:"match"`
		TrustServer string   `yaml:"trust_server"`
		Signers     []string `yaml:"signers"`
		Mode        string   `yaml:"mode"`
		Pin         struct {
			RootCertIDs []string `yaml:"root_cert_ids"`
			CA          string   `yaml:"ca"`
			TOFU        bool     `yaml:"tofu"`
		} `yaml:"pin"`
		Archive *struct {
			SnapshotSHA256 string `yaml:"snapshot_sha256"`
		} `yaml:"archive"`
	} `yaml:"rules"`
}

// maxPolicyBytes caps the policy file.
const maxPolicyBytes = 1 << 20

// LoadFile reads a policy file into upstreams and a policy, refusing
// unknown keys so a typo cannot silently weaken the policy.
func LoadFile(path string) ([]Upstream, Policy, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, Policy{}, fmt.Errorf("read policy %q: %w", path, err)
	}
	if len(raw) > maxPolicyBytes {
		return nil, Policy{}, fmt.Errorf("policy %q is over %d bytes", path, maxPolicyBytes)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, Policy{}, fmt.Errorf("parse policy %q: %w", path, err)
	}
	var ups []Upstream
	for _, u := range f.Upstreams {
		up := Upstream{Prefix: u.Prefix, URL: u.URL, Host: u.Host, Credentials: u.Credentials, Username: u.Username, PasswordFile: u.PasswordFile}
		if err := checkCredentials(up); err != nil {
			return nil, Policy{}, fmt.Errorf("policy %q: %w", path, err)
		}
		ups = append(ups, up)
	}
	var pol Policy
	for i, r := range f.Rules {
		rule := Rule{
			Name: r.Name, Match: r.Match, TrustServer: r.TrustServer, Signers: r.Signers, Mode: r.Mode,
			Pin: verify.Pin{CertIDs: r.Pin.RootCertIDs, CAFile: r.Pin.CA, TOFU: r.Pin.TOFU},
		}
		if r.Archive != nil {
			sum, err := hex.DecodeString(strings.TrimPrefix(r.Archive.SnapshotSHA256, "sha256:"))
			if err != nil || len(sum) != 32 {
				return nil, Policy{}, fmt.Errorf("policy %q: rule %d: archive.snapshot_sha256 %q: want 64 hex digits, as signet mirror prints it", path, i+1, r.Archive.SnapshotSHA256)
			}
			rule.ArchiveSnapshot = sum
		}
		pol.Rules = append(pol.Rules, rule)
	}
	if err := pol.Validate(); err != nil {
		return nil, Policy{}, fmt.Errorf("policy %q: %w", path, err)
	}
	return ups, pol, nil
}

// QuickStart builds the policy of `signet proxy --upstream URL
// --trust-server URL --tofu`: every repository of the upstream, docker's
// rule, roots trusted as pinned (or on first use).
func QuickStart(upstreamURL, trustServer string, pin verify.Pin, signers []string, mode string) ([]Upstream, Policy, error) {
	up, err := newUpstream(Upstream{URL: upstreamURL})
	if err != nil {
		return nil, Policy{}, err
	}
	pol := Policy{Rules: []Rule{{Name: "quick-start", Match: up.gunHost + "/*", TrustServer: trustServer, Pin: pin, Signers: signers, Mode: mode}}}
	if err := pol.Validate(); err != nil {
		return nil, Policy{}, err
	}
	return []Upstream{{URL: upstreamURL}}, pol, nil
}
