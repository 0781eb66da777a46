package proxy

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/signet-project/signet/trust/verify"
)

// manifestByTag decides a tag: only a signed one, fetched by its signed
// digest.
func (p *Proxy) manifestByTag(ctx context.Context, rr repoRef, tag string) (cachedManifest, error) {
	res, err := p.trustResult(ctx, rr)
	if err != nil {
		return cachedManifest{}, err
	}
	p.allowed.observe(rr.gun, res.TimestampVersion)
	t, _, err := signedTag(res, rr.rule, rr.gun, tag)
	if err != nil {
		return cachedManifest{}, err
	}
	// Fetched by the signed digest, never by the tag: a tag moved
	// upstream is still served as what was signed.
	return p.fetchVerified(ctx, rr, "sha256:"+hex.EncodeToString(t.SHA256), t.Length)
}

// manifestByDigest decides a manifest digest: signed, or reached from a
// signed manifest (a child of a signed index).
func (p *Proxy) manifestByDigest(ctx context.Context, rr repoRef, digest string) (cachedManifest, error) {
	if !digestRe.MatchString(digest) {
		return cachedManifest{}, notSHA256(rr, digest)
	}
	// Decided against the current trust data: what older data allowed
	// is forgotten once it changes (see allowedSet.observe).
	res, err := p.trustResult(ctx, rr)
	if err != nil {
		return cachedManifest{}, err
	}
	p.allowed.observe(rr.gun, res.TimestampVersion)
	if !p.allowed.has(rr.gun, digest) {
		ok, err := p.reachable(ctx, rr, res, digest)
		if err != nil {
			return cachedManifest{}, err
		}
		if !ok {
			return cachedManifest{}, &denial{image: rr.gun + "@" + digest, reason: "digest not signed and not referenced by a signed index", rule: rr.rule.name()}
		}
	}
	return p.fetchVerified(ctx, rr, digest, -1)
}

// decideBlob allows a blob only if the current trust data reaches it: a
// blob of a signed manifest, or of a manifest in a signed index.
func (p *Proxy) decideBlob(ctx context.Context, rr repoRef, digest string) error {
	if !digestRe.MatchString(digest) {
		return notSHA256(rr, digest)
	}
	// Every request is decided against the current trust data (cached
	// by the refresher): a digest learned from older data is forgotten
	// once the data changes.
	res, err := p.trustResult(ctx, rr)
	if err != nil {
		return err
	}
	p.allowed.observe(rr.gun, res.TimestampVersion)
	if p.allowed.has(rr.gun, digest) {
		return nil
	}
	ok, err := p.reachable(ctx, rr, res, digest)
	if err != nil {
		return err
	}
	if !ok {
		return &denial{image: rr.gun + "@" + digest, reason: "blob not referenced by a signed manifest", rule: rr.rule.name()}
	}
	return nil
}

func isDenial(err error) bool {
	_, ok := err.(*denial)
	return ok
}

// maxWalk bounds the manifests fetched to decide whether a digest is
// reachable from the signed targets.
const maxWalk = 512

// reachable reports whether digest is a signed target, a manifest in a
// signed index, or a blob of one of those, fetching (and verifying) the
// signed manifests to find out. What it learns is remembered.
func (p *Proxy) reachable(ctx context.Context, rr repoRef, res *verify.Result, digest string) (bool, error) {
	signed := signedDigests(res, rr.rule)
	if _, ok := signed[digest]; ok {
		p.allowed.add(rr.gun, digest)
		return true, nil
	}
	if p.allowed.wasWalked(rr.gun, res.TimestampVersion) {
		return false, nil // everything reachable is already in the set
	}
	fetched, complete := 0, true
	var unavailable error // the upstream could not be reached for a signed manifest
	var queue []string
	for d := range signed {
		queue = append(queue, d)
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		if fetched++; fetched > maxWalk {
			return false, &denial{image: rr.gun + "@" + digest, reason: fmt.Sprintf("not found among the first %d signed manifests", maxWalk), rule: rr.rule.name()}
		}
		length := int64(-1)
		if l, ok := signed[d]; ok {
			length = l
		}
		m, err := p.fetchVerified(ctx, rr, d, length)
		if err != nil {
			// A signed tag whose manifest is gone upstream does not make
			// other digests reachable; keep looking, but do not call the
			// walk complete.
			complete = false
			var ue *upstreamError
			if errors.As(err, &ue) && ue.status == http.StatusServiceUnavailable {
				unavailable = err
			}
			continue
		}
		if p.allowed.has(rr.gun, digest) {
			return true, nil
		}
		queue = append(queue, m.children...)
	}
	if complete {
		p.allowed.markWalked(rr.gun, res.TimestampVersion)
	}
	if unavailable != nil {
		// Not found among what could be read: with the upstream down,
		// say so (503) rather than deny what may well be signed.
		return false, unavailable
	}
	return false, nil
}

// allowChildren records what a verified manifest references: child
// manifests of an index, config and layers of an image.
func (p *Proxy) allowChildren(gun string, m cachedManifest) {
	if !p.allowed.has(gun, m.digest) || len(m.refs) > 1 && !p.allowed.has(gun, m.refs[len(m.refs)-1]) {
		p.allowed.add(gun, m.refs...)
	}
}

// notSHA256 denies a well-formed digest of another algorithm than sha256:
// trust data signs sha256 digests only, and the proxy checks content
// with sha256.
func notSHA256(rr repoRef, digest string) error {
	return &denial{image: rr.gun + "@" + digest, reason: "digest not signed: only sha256 content is verified", rule: rr.rule.name()}
}

// listedTags decides a tags list: what the proxy serves under the rule.
// Enforce lists the signed tags (the upstream is not asked); allow lists
// the upstream's tags; warn lists both, and says why (for a Warning) when
// some are not signed.
func (p *Proxy) listedTags(ctx context.Context, rr repoRef) ([]string, string, error) {
	if rr.rule.Mode == ModeEnforce || rr.rule.Mode == "" {
		res, err := p.trustResult(ctx, rr)
		if err != nil {
			return nil, "", err
		}
		return signedTagNames(res, rr.rule), "", nil
	}
	tags, err := p.upstreamTags(ctx, rr)
	if err != nil {
		return nil, "", err
	}
	if rr.rule.Mode == ModeAllow {
		return tags, "allow-listed repository", nil
	}
	res, err := p.trustResult(ctx, rr)
	if err != nil {
		return tags, "tags listed unverified: " + err.Error(), nil
	}
	signed := signedTagNames(res, rr.rule)
	unsigned := 0
	for _, t := range tags {
		if _, ok := slices.BinarySearch(signed, t); !ok {
			unsigned++
		}
	}
	all := append(slices.Clone(signed), tags...)
	slices.Sort(all)
	all = slices.Compact(all)
	if unsigned == 0 {
		return all, "", nil
	}
	return all, fmt.Sprintf("%d of the %d tags listed are not signed", unsigned, len(all)), nil
}

// listedReferrers decides a referrers list (the upstream's, filtered by
// artifactType if asked). Enforce keeps the referrers the trust data
// reaches, which the proxy would serve by digest; the trust data is
// looked up before the upstream is asked. Allow keeps them all; warn
// keeps them all, and says why (for a Warning) when some are not reached.
// It also reports whether the artifactType filter was applied.
func (p *Proxy) listedReferrers(ctx context.Context, rr repoRef, subject, artifactType string) ([]json.RawMessage, bool, string, error) {
	var res *verify.Result
	var terr error
	if rr.rule.Mode != ModeAllow {
		res, terr = p.trustResult(ctx, rr)
		if terr != nil && rr.rule.Mode != ModeWarn {
			return nil, false, "", terr
		}
	}
	descs, filtered, err := p.upstreamReferrers(ctx, rr, subject, artifactType)
	switch {
	case err != nil:
		return nil, false, "", err
	case rr.rule.Mode == ModeAllow:
		return descs, filtered, "allow-listed repository", nil
	case terr != nil:
		return descs, filtered, "referrers listed unverified: " + terr.Error(), nil
	}
	p.allowed.observe(rr.gun, res.TimestampVersion)
	var kept []json.RawMessage
	walked := false // a walk that found nothing leaves nothing more to find
	for _, d := range descs {
		var desc struct {
			Digest string `json:"digest"`
		}
		_ = json.Unmarshal(d, &desc) // a descriptor without a digest is never reached
		ok := digestRe.MatchString(desc.Digest) && p.allowed.has(rr.gun, desc.Digest)
		if !ok && !walked && digestRe.MatchString(desc.Digest) {
			found, err := p.reachable(ctx, rr, res, desc.Digest)
			ok = err == nil && found
			walked = !ok
		}
		if ok {
			kept = append(kept, d)
		}
	}
	if len(kept) == len(descs) || rr.rule.Mode != ModeWarn {
		return kept, filtered, "", nil
	}
	return descs, filtered, fmt.Sprintf("%d of the %d referrers listed are not signed", len(descs)-len(kept), len(descs)), nil
}
