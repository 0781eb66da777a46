package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/signet-project/signet/trust/verify"
)

var digestRe = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// manifestAccept lists the manifest types the proxy asks upstreams for.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

func (p *Proxy) serveManifest(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	var err error
	var m cachedManifest
	if digestRe.MatchString(req.ref) {
		m, err = p.manifestByDigest(ctx, rr, req.ref)
	} else {
		m, err = p.manifestByTag(ctx, rr, req.ref)
	}
	if err != nil {
		if rr.rule.Mode == ModeWarn && isDenial(err) {
			p.passThrough(w, r, req, rr, "manifests", err.Error())
			return
		}
		p.fail(w, r, req, err)
		return
	}
	decision, label, why := "allow", "signed", "signed"
	if rr.rule.ArchiveSnapshot != nil {
		// Archive mode: signed, but the timestamp may be frozen.
		decision, label, why = "archive", "archived", "signed in the archived trust data (snapshot pinned, freshness waived)"
	}
	p.metrics.decisions.WithLabelValues(decision, label).Inc()
	p.audit(r, req, decision, why, rr.rule.name(), m.digest)
	h := w.Header()
	h.Set("Content-Type", m.mediaType)
	h.Set("Docker-Content-Digest", m.digest)
	h.Set("Content-Length", strconv.Itoa(len(m.body)))
	h.Set("ETag", `"`+m.digest+`"`)
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method == http.MethodHead {
		return
	}
	w.Write(m.body) //nolint:errcheck // client went away
}

func isDenial(err error) bool {
	_, ok := err.(*denial)
	return ok
}

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

func (p *Proxy) manifestByDigest(ctx context.Context, rr repoRef, digest string) (cachedManifest, error) {
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
	return false, nil
}

// fetchVerified returns the manifest with this digest, fetched from the
// upstream by digest and checked: its bytes must hash to the digest and,
// when the signed length is known, have that length. Nothing unverified
// is returned. The children it references become allowed.
func (p *Proxy) fetchVerified(ctx context.Context, rr repoRef, digest string, length int64) (cachedManifest, error) {
	if m, ok := p.manifests.get(digest); ok {
		p.metrics.cache.WithLabelValues("manifest", "hit").Inc()
		if length >= 0 && int64(len(m.body)) != length {
			return cachedManifest{}, &denial{image: rr.gun + "@" + digest, reason: fmt.Sprintf("manifest has %d bytes, the signature says %d", len(m.body), length), rule: rr.rule.name()}
		}
		p.allowChildren(rr.gun, m)
		return m, nil
	}
	p.metrics.cache.WithLabelValues("manifest", "miss").Inc()
	max := p.maxMan
	if length > max {
		return cachedManifest{}, &denial{image: rr.gun + "@" + digest, reason: fmt.Sprintf("signed manifest is %d bytes, over the %d byte limit", length, max), rule: rr.rule.name()}
	}
	if length >= 0 {
		max = length
	}
	resp, err := p.upstreamGet(ctx, rr, http.MethodGet, "manifests", digest, manifestAccept)
	if err != nil {
		return cachedManifest{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cachedManifest{}, &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s answered %s for the signed manifest %s of %s", rr.up.URL, resp.Status, digest, rr.gun)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return cachedManifest{}, &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("read manifest %s from %s: %v", digest, rr.up.URL, err)}
	}
	if int64(len(body)) > max {
		return cachedManifest{}, &denial{image: rr.gun + "@" + digest, reason: fmt.Sprintf("upstream served more than %d bytes for the signed manifest", max), rule: rr.rule.name()}
	}
	if length >= 0 && int64(len(body)) != length {
		return cachedManifest{}, &denial{image: rr.gun + "@" + digest, reason: fmt.Sprintf("upstream served %d bytes, the signature says %d", len(body), length), rule: rr.rule.name()}
	}
	sum := sha256.Sum256(body)
	if "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return cachedManifest{}, &denial{image: rr.gun + "@" + digest, reason: "upstream served bytes that do not hash to the signed digest (sha256:" + hex.EncodeToString(sum[:]) + ")", rule: rr.rule.name()}
	}
	m := newCachedManifest(digest, body, resp.Header.Get("Content-Type"))
	p.manifests.put(m)
	p.allowChildren(rr.gun, m)
	return m, nil
}

// manifestRefs is the part of a manifest or index that names others.
type manifestRefs struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
	Manifests []struct {
		Digest string `json:"digest"`
	} `json:"manifests"`
}

// newCachedManifest parses what verified manifest bytes reference, once.
func newCachedManifest(digest string, body []byte, contentType string) cachedManifest {
	var refs manifestRefs
	_ = json.Unmarshal(body, &refs) // verified bytes; a manifest we cannot parse references nothing
	m := cachedManifest{digest: digest, body: body, mediaType: refs.MediaType}
	if m.mediaType == "" {
		m.mediaType = contentType
	}
	if m.mediaType == "" {
		m.mediaType = "application/vnd.oci.image.manifest.v1+json"
	}
	m.refs = []string{digest}
	for _, c := range refs.Manifests {
		if digestRe.MatchString(c.Digest) {
			m.children = append(m.children, c.Digest)
			m.refs = append(m.refs, c.Digest)
		}
	}
	if digestRe.MatchString(refs.Config.Digest) {
		m.refs = append(m.refs, refs.Config.Digest)
	}
	for _, l := range refs.Layers {
		if digestRe.MatchString(l.Digest) {
			m.refs = append(m.refs, l.Digest)
		}
	}
	return m
}

// allowChildren records what a verified manifest references: child
// manifests of an index, config and layers of an image.
func (p *Proxy) allowChildren(gun string, m cachedManifest) {
	if !p.allowed.has(gun, m.digest) || len(m.refs) > 1 && !p.allowed.has(gun, m.refs[len(m.refs)-1]) {
		p.allowed.add(gun, m.refs...)
	}
}

// upstreamGet sends an authenticated request to the upstream.
func (p *Proxy) upstreamGet(ctx context.Context, rr repoRef, method, kind, ref, accept string) (*http.Response, error) {
	rt, err := p.trans.get(ctx, rr.up, rr.repo)
	if err != nil {
		return nil, &upstreamError{status: http.StatusBadGateway, msg: err.Error()}
	}
	u := *rr.up.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v2/" + rr.repo + "/" + kind + "/" + ref
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	client := &http.Client{Transport: rt, CheckRedirect: func(next *http.Request, via []*http.Request) error {
		return checkRedirect(rr, kind, next, via)
	}}
	resp, err := client.Do(req)
	if err != nil {
		var refused *redirectError
		if errors.As(err, &refused) {
			return nil, &upstreamError{status: http.StatusBadGateway, msg: refused.Error()}
		}
		return nil, &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s: %v", rr.up.URL, err)}
	}
	return resp, nil
}

// passThrough serves from the upstream without verification: for
// allow-listed repositories, and in warn mode (with a Warning header).
func (p *Proxy) passThrough(w http.ResponseWriter, r *http.Request, req request, rr repoRef, kind, why string) {
	decision := "allow-listed"
	if rr.rule.Mode == ModeWarn {
		decision = "warn"
		w.Header().Set("Warning", fmt.Sprintf(`299 - "signet: served unverified: %s"`, strings.ReplaceAll(why, `"`, `'`)))
	}
	p.metrics.decisions.WithLabelValues(decision, short(why)).Inc()
	p.audit(r, req, decision, why, rr.rule.name(), "")
	accept := r.Header.Get("Accept")
	if kind == "manifests" && accept == "" {
		accept = manifestAccept
	}
	ref := req.ref
	if kind == "tags" {
		ref = "list"
	}
	resp, err := p.upstreamGet(r.Context(), rr, r.Method, kind, ref, accept)
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "ETag"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		io.Copy(w, resp.Body) //nolint:errcheck
	}
}
