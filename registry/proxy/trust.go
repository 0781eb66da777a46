package proxy

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/signet-project/signet/trust/verify"
)

// trustResult returns the verified trust data of the repository, loading
// the delegations the rule reads.
func (p *Proxy) trustResult(ctx context.Context, rr repoRef) (*verify.Result, error) {
	key := rr.rule.TrustServer + "|" + rr.gun
	if rr.rule.ArchiveSnapshot != nil {
		key += "|archive:" + hex.EncodeToString(rr.rule.ArchiveSnapshot)
	}
	src := verify.Source{
		Key:     key,
		GUN:     rr.gun,
		Fetcher: verify.HTTPFetcher{Server: rr.rule.TrustServer, GUN: rr.gun, Client: p.trustCli},
		Pin:     rr.rule.Pin,
		Roles:   rr.rule.verifyRule().Roles(),
		Archive: rr.rule.ArchiveSnapshot,
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
		var se *verify.StatusError
		if errors.As(err, &se) && se.InvalidName() {
			return nil, &denial{image: rr.gun, reason: fmt.Sprintf("invalid repository name: the trust server refuses it (%s: %s)", se.Code, se.Message), rule: rr.rule.name()}
		}
		// Unreachable and nothing verified still valid: deny, since
		// policy cannot be checked (fail closed).
		return nil, &denial{image: rr.gun, reason: "trust server unreachable and no unexpired verified trust data: " + err.Error(), rule: rr.rule.name()}
	}
	return res, nil
}

// verifyRule is the engine's rule for a policy rule.
func (r Rule) verifyRule() verify.Rule { return verify.Rule{Signers: r.Signers} }

// signedTag decides a tag with the engine (trust/verify): docker's rule
// (targets/releases, else targets, passing over a keyless releases and
// stopping at a failed one) or every named signer agreeing on one digest.
func signedTag(res *verify.Result, rule Rule, gun, tag string) (verify.Target, string, error) {
	t, role, err := res.Decide(gun, tag, rule.verifyRule())
	if err != nil {
		return verify.Target{}, "", decisionDenial(err, gun+":"+tag, rule)
	}
	return t, role, nil
}

// decisionDenial turns an engine error into the proxy's denial.
func decisionDenial(err error, image string, rule Rule) error {
	var ns *verify.NotSignedError
	if errors.As(err, &ns) {
		return &denial{image: image, reason: "tag " + ns.Detail, rule: rule.name()}
	}
	var ve *verify.Error
	if errors.As(err, &ve) {
		return &denial{image: image, reason: "trust data rejected: " + ve.Error(), rule: rule.name()}
	}
	return &denial{image: image, reason: err.Error(), rule: rule.name()}
}

// signedDigests lists every digest the rule accepts for some tag, with
// its length.
func signedDigests(res *verify.Result, rule Rule) map[string]int64 {
	_, targets, _ := res.Signed("", rule.verifyRule())
	out := map[string]int64{}
	for _, t := range targets {
		out["sha256:"+hex.EncodeToString(t.SHA256)] = t.Length
	}
	return out
}

// signedTagNames lists the tags the rule accepts, sorted.
func signedTagNames(res *verify.Result, rule Rule) []string {
	tags, _, _ := res.Signed("", rule.verifyRule())
	return tags
}
