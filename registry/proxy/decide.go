package proxy

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/signet-project/signet/trust/verify"
)

// repoRef is a request resolved to an upstream, a policy rule and a GUN.
type repoRef struct {
	up   *upstream
	repo string // repository in the upstream
	gun  string
	rule Rule
}

func (p *Proxy) resolve(req request) (repoRef, error) {
	up, repo, gun, ok := p.ups.route(req.name)
	if !ok {
		return repoRef{}, &denial{image: req.name, reason: "no upstream serves this name"}
	}
	rule, ok := p.policy.match(gun)
	if !ok {
		return repoRef{}, &denial{image: gun, reason: "no policy rule matches this repository"}
	}
	return repoRef{up: up, repo: repo, gun: gun, rule: rule}, nil
}

// signedTargets returns the verified targets of the roles the rule reads.
func (p *Proxy) trustResult(ctx context.Context, rr repoRef) (*verify.Result, error) {
	roles := rr.rule.Signers
	if len(roles) == 0 {
		roles = []string{"targets/releases"}
	}
	src := verify.Source{
		Key:     rr.rule.TrustServer + "|" + rr.gun,
		GUN:     rr.gun,
		Fetcher: verify.HTTPFetcher{Server: rr.rule.TrustServer, GUN: rr.gun, Client: p.trustCli},
		Pin:     rr.rule.Pin,
		Roles:   roles,
	}
	res, cached, err := p.refresher.Get(ctx, src)
	if cached {
		p.metrics.cache.WithLabelValues("trust", "hit").Inc()
	} else {
		p.metrics.cache.WithLabelValues("trust", "miss").Inc()
	}
	if err != nil {
		var ve *verify.Error
		if errors.As(err, &ve) {
			if ve.Reason == verify.ReasonMissing && ve.Role == "root" {
				return nil, &denial{image: rr.gun, reason: "no trust data for this repository", rule: rr.rule.name()}
			}
			return nil, &denial{image: rr.gun, reason: "trust data rejected: " + ve.Error(), rule: rr.rule.name()}
		}
		// Unreachable and nothing verified still valid: deny, since
		// policy cannot be checked (fail closed).
		return nil, &denial{image: rr.gun, reason: "trust server unreachable and no unexpired verified trust data: " + err.Error(), rule: rr.rule.name()}
	}
	return res, nil
}

// signedTag applies the rule to a tag: docker's rule (targets/releases,
// else targets) or every named signer agreeing on one digest.
func signedTag(res *verify.Result, rule Rule, gun, tag string) (verify.Target, string, error) {
	image := gun + ":" + tag
	if len(rule.Signers) == 0 {
		for _, role := range []string{"targets/releases", "targets"} {
			if t, ok := res.Targets[role][tag]; ok {
				return t, role, nil
			}
		}
		return verify.Target{}, "", &denial{image: image, reason: "tag not signed in targets/releases or targets", rule: rule.name()}
	}
	var first verify.Target
	for i, role := range rule.Signers {
		t, ok := res.Targets[role][tag]
		if !ok {
			return verify.Target{}, "", &denial{image: image, reason: fmt.Sprintf("tag not signed by required signer %s", role), rule: rule.name()}
		}
		if i == 0 {
			first = t
			continue
		}
		if string(t.SHA256) != string(first.SHA256) || t.Length != first.Length {
			return verify.Target{}, "", &denial{image: image, reason: fmt.Sprintf("signers disagree: %s signed sha256:%s, %s signed sha256:%s", rule.Signers[0], first.HexSHA256(), role, t.HexSHA256()), rule: rule.name()}
		}
	}
	return first, strings.Join(rule.Signers, "+"), nil
}

// signedDigests lists every digest the rule's roles sign, with lengths.
func signedDigests(res *verify.Result, rule Rule) map[string]int64 {
	roles := rule.Signers
	if len(roles) == 0 {
		roles = []string{"targets/releases", "targets"}
	}
	out := map[string]int64{}
	if len(rule.Signers) == 0 {
		for _, role := range roles {
			for _, t := range res.Targets[role] {
				out["sha256:"+hex.EncodeToString(t.SHA256)] = t.Length
			}
		}
		return out
	}
	// With named signers, a digest counts only for tags all agree on.
	tags := map[string]bool{}
	for tag := range res.Targets[roles[0]] {
		tags[tag] = true
	}
	for tag := range tags {
		if t, _, err := signedTag(res, rule, "", tag); err == nil {
			out["sha256:"+hex.EncodeToString(t.SHA256)] = t.Length
		}
	}
	return out
}

// signedTagNames lists the tags the rule accepts, sorted.
func signedTagNames(res *verify.Result, rule Rule) []string {
	var out []string
	seen := map[string]bool{}
	roles := rule.Signers
	if len(roles) == 0 {
		roles = []string{"targets/releases", "targets"}
	}
	for _, role := range roles {
		for tag := range res.Targets[role] {
			if seen[tag] {
				continue
			}
			seen[tag] = true
			if _, _, err := signedTag(res, rule, "", tag); err == nil {
				out = append(out, tag)
			}
		}
	}
	sort.Strings(out)
	return out
}
