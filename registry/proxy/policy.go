package proxy

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/signet-project/signet/trust/verify"
)

// Modes of a rule.
const (
	// ModeEnforce serves only signed images (the default).
	ModeEnforce = "enforce"
	// ModeWarn serves unsigned images too, with a Warning header and a
	// log line: for rolling out a policy.
	ModeWarn = "warn"
	// ModeAllow serves the repositories without verification: an
	// explicit allow-list.
	ModeAllow = "allow"
)

// Rule is one policy entry: which repositories it covers and how their
// images are trusted.
type Rule struct {
	// Name names the rule in denials and logs (default: Match).
	Name string
	// Match is a glob over the GUN ("registry.example.com/team/*",
	// "docker.io/library/nginx"); the most specific matching rule wins:
	// the longest pattern before its first wildcard, then the longest.
	Match string
	// TrustServer is the trust server URL for these repositories.
	TrustServer string
	// Pin is how roots are trusted.
	Pin verify.Pin
	// Signers, if set, are the delegations that must all have signed a
	// tag with the same digest (for example targets/releases and
	// targets/qa). Empty applies docker's rule: targets/releases, else
	// targets.
	Signers []string
	// Mode is ModeEnforce (default), ModeWarn or ModeAllow.
	Mode string
	// ArchiveSnapshot, if set, is archive mode for a repository whose
	// timestamp can no longer be renewed (its old trust server is gone
	// and nobody holds its root key): the trust data is accepted only if
	// its snapshot hashes to this sha256 (recorded by signet mirror), and
	// then the expiry of timestamp and snapshot is waived; every
	// signature, hash and the targets' expiry are still checked. Every
	// allow is logged as "archive".
	ArchiveSnapshot []byte
}

func (r Rule) name() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Match
}

// Policy is the ordered set of rules; no match means deny.
type Policy struct {
	Rules []Rule
}

// Validate checks the policy once, at start.
func (p Policy) Validate() error {
	if len(p.Rules) == 0 {
		return errors.New("policy has no rules: every pull would be denied")
	}
	for i, r := range p.Rules {
		if r.Match == "" {
			return fmt.Errorf("policy rule %d: empty match", i+1)
		}
		if _, err := path.Match(r.Match, "x"); err != nil {
			return fmt.Errorf("policy rule %q: bad pattern: %w", r.name(), err)
		}
		switch r.Mode {
		case "", ModeEnforce, ModeWarn:
			if r.TrustServer == "" {
				return fmt.Errorf("policy rule %q: no trust server", r.name())
			}
			if !r.Pin.TOFU && len(r.Pin.CertIDs) == 0 && r.Pin.CAFile == "" {
				return fmt.Errorf("policy rule %q: no root pin (root certificate IDs or a CA) and TOFU not enabled", r.name())
			}
			if r.Pin.TOFU && (len(r.Pin.CertIDs) > 0 || r.Pin.CAFile != "") {
				return fmt.Errorf("policy rule %q: TOFU cannot be combined with pinned certificates or a CA", r.name())
			}
			if r.ArchiveSnapshot != nil && len(r.ArchiveSnapshot) != 32 {
				return fmt.Errorf("policy rule %q: archive snapshot_sha256 must be 64 hex digits (signet mirror prints it)", r.name())
			}
			for _, s := range r.Signers {
				if s != "targets" && !strings.HasPrefix(s, "targets/") {
					return fmt.Errorf("policy rule %q: signer %q is not targets or targets/<name>", r.name(), s)
				}
			}
		case ModeAllow:
		default:
			return fmt.Errorf("policy rule %q: mode %q: use enforce, warn or allow", r.name(), r.Mode)
		}
	}
	return nil
}

// match returns the most specific rule matching gun. Only a name of the
// reference grammar matches anything: "team/../other" or "team//x" would
// pass a prefix test while naming another repository.
func (p Policy) match(gun string) (Rule, bool) {
	if !validGUN(gun) {
		return Rule{}, false
	}
	best, found := Rule{}, false
	bestLit, bestLen := -1, -1
	for _, r := range p.Rules {
		ok, err := path.Match(r.Match, gun)
		if err != nil || !ok {
			// "registry/team/*" should also cover deeper paths.
			if !(strings.HasSuffix(r.Match, "/*") && strings.HasPrefix(gun, strings.TrimSuffix(r.Match, "*"))) {
				continue
			}
		}
		lit := strings.IndexAny(r.Match, "*?[")
		if lit < 0 {
			lit = len(r.Match) + 1 // exact names beat every pattern
		}
		if lit > bestLit || (lit == bestLit && len(r.Match) > bestLen) {
			best, found, bestLit, bestLen = r, true, lit, len(r.Match)
		}
	}
	return best, found
}
