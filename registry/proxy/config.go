package proxy

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

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
//	cache:                                # optional: the blob cache (see CacheConfig)
//	  dir: /var/cache/signet/blobs
//	  size: 20GiB
//	  scrub_interval: 24h
//	  shared: s3://bucket?region=eu-west-1   # optional: shared by replicas
//	  disabled: false
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
	Cache struct {
		Dir           string `yaml:"dir"`
		Size          string `yaml:"size"`
		ScrubInterval string `yaml:"scrub_interval"`
		Shared        string `yaml:"shared"`
		Disabled      bool   `yaml:"disabled"`
	} `yaml:"cache"`
}

// Config is what a policy file configures.
type Config struct {
	Upstreams []Upstream
	Policy    Policy
	Cache     CacheConfig
}

// CacheConfig is the blob cache section of a policy file. Zero values
// are unset: the command's flags or defaults apply.
type CacheConfig struct {
	// Dir is the cache folder.
	Dir string
	// MaxBytes bounds the cached bytes (size: 20GiB, 500MB, 1073741824).
	MaxBytes int64
	// ScrubInterval is how often every cached file is hashed again
	// (scrub_interval: 24h; 0 turns it off); nil is unset.
	ScrubInterval *time.Duration
	// Shared is the URL of a bucket the proxy's replicas share
	// (shared: s3://BUCKET?region=..., file:///FOLDER); see package
	// registry/blobcache/bucket.
	Shared string
	// Disabled turns the cache off.
	Disabled bool
}

// maxPolicyBytes caps the policy file.
const maxPolicyBytes = 1 << 20

// LoadFile reads a policy file into upstreams and a policy, refusing
// unknown keys so a typo cannot silently weaken the policy.
func LoadFile(path string) ([]Upstream, Policy, error) {
	c, err := LoadConfig(path)
	return c.Upstreams, c.Policy, err
}

// LoadConfig reads a policy file: upstreams, the policy and the blob
// cache settings. Unknown keys are refused, so a typo cannot silently
// weaken the policy.
func LoadConfig(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read policy %q: %w", path, err)
	}
	if len(raw) > maxPolicyBytes {
		return Config{}, fmt.Errorf("policy %q is over %d bytes", path, maxPolicyBytes)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return Config{}, fmt.Errorf("parse policy %q: %w", path, err)
	}
	ups, pol, err := f.policy()
	if err != nil {
		return Config{}, fmt.Errorf("policy %q: %w", path, err)
	}
	cache, err := f.cache()
	if err != nil {
		return Config{}, fmt.Errorf("policy %q: %w", path, err)
	}
	return Config{Upstreams: ups, Policy: pol, Cache: cache}, nil
}

// cache checks the cache section.
func (f *File) cache() (CacheConfig, error) {
	c := CacheConfig{Dir: f.Cache.Dir, Shared: f.Cache.Shared, Disabled: f.Cache.Disabled}
	if f.Cache.Size != "" {
		n, err := ParseSize(f.Cache.Size)
		if err != nil || n <= 0 {
			return CacheConfig{}, fmt.Errorf("cache.size %q: give a number of bytes above 0, with a unit if you like (20GiB, 500MB)", f.Cache.Size)
		}
		c.MaxBytes = n
	}
	if f.Cache.ScrubInterval != "" {
		d, err := time.ParseDuration(f.Cache.ScrubInterval)
		if err != nil || d < 0 {
			return CacheConfig{}, fmt.Errorf("cache.scrub_interval %q: give a duration (24h, 90m; 0 turns scrubbing off)", f.Cache.ScrubInterval)
		}
		c.ScrubInterval = &d
	}
	return c, nil
}

// policy checks the upstreams and rules.
func (f *File) policy() ([]Upstream, Policy, error) {
	var ups []Upstream
	for _, u := range f.Upstreams {
		up := Upstream{Prefix: u.Prefix, URL: u.URL, Host: u.Host, Credentials: u.Credentials, Username: u.Username, PasswordFile: u.PasswordFile}
		if err := checkCredentials(up); err != nil {
			return nil, Policy{}, err
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
				return nil, Policy{}, fmt.Errorf("rule %d: archive.snapshot_sha256 %q: want 64 hex digits, as signet mirror prints it", i+1, r.Archive.SnapshotSHA256)
			}
			rule.ArchiveSnapshot = sum
		}
		pol.Rules = append(pol.Rules, rule)
	}
	if err := pol.Validate(); err != nil {
		return nil, Policy{}, err
	}
	return ups, pol, nil
}

// sizeUnits are the units ParseSize reads, lower case: SI (powers of
// 1000) with a B, binary (powers of 1024) with iB or a bare letter.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// ParseSize reads a size in bytes: a number, optionally with a fraction,
// and a unit: B, KiB, MiB, GiB, TiB (powers of 1024; K, M, G, T too) or
// KB, MB, GB, TB (powers of 1000), case-insensitive ("20GiB", "1.5 TB",
// "1073741824").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok || num == "" || strings.Count(num, ".") > 1 || num == "." {
		return 0, fmt.Errorf("size %q: give bytes, or a number and a unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	whole, frac, _ := strings.Cut(num, ".")
	w, err := strconv.ParseInt("0"+whole, 10, 64)
	if err != nil || w > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	n := w * mult
	if frac != "" {
		f, err := strconv.ParseFloat("0."+frac, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q: %w", s, err)
		}
		add := int64(f * float64(mult))
		if n > math.MaxInt64-add {
			return 0, fmt.Errorf("size %q: too large", s)
		}
		n += add
	}
	return n, nil
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
