package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// manifestAccept lists the manifest types the proxy asks upstreams for.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

var digestRe = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// upstreamGet sends an authenticated request to the upstream.
func (p *Proxy) upstreamGet(ctx context.Context, rr repoRef, method, kind, ref, accept string) (*http.Response, error) {
	return p.upstreamRequest(ctx, rr, method, kind, ref, nil, accept)
}

// upstreamPath is the path of a request in the upstream repository.
func upstreamPath(rr repoRef, kind, ref string) string {
	return strings.TrimSuffix(rr.up.base.Path, "/") + "/v2/" + rr.repo + "/" + kind + "/" + ref
}

// upstreamRequest is upstreamGet with a query.
func (p *Proxy) upstreamRequest(ctx context.Context, rr repoRef, method, kind, ref string, query url.Values, accept string) (*http.Response, error) {
	rt, err := p.trans.get(ctx, rr.up, rr.repo)
	if err != nil {
		if unreachableStatus(err) == http.StatusServiceUnavailable {
			cause := errors.Unwrap(err) // without "connect to upstream URL"
			if cause == nil {
				cause = err
			}
			return nil, &upstreamError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("upstream %s unreachable: %v", rr.up.URL, cause)}
		}
		return nil, &upstreamError{status: http.StatusBadGateway, msg: err.Error()}
	}
	u := *rr.up.base
	u.Path = upstreamPath(rr, kind, ref)
	u.RawQuery = query.Encode()
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
		if unreachableStatus(err) == http.StatusServiceUnavailable {
			return nil, &upstreamError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("upstream %s unreachable: %v", rr.up.URL, err)}
		}
		return nil, &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s: %v", rr.up.URL, err)}
	}
	return resp, nil
}

// unreachableStatus is 503 for an upstream that cannot be reached (a
// refused or reset connection, a name that does not resolve, a
// timeout), 502 for other failures (TLS, protocol, auth).
func unreachableStatus(err error) int {
	var op *net.OpError
	var ne net.Error
	if errors.As(err, &op) || errors.As(err, &ne) && ne.Timeout() {
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// Bounds of a list read from an upstream (a tags list, a referrers
// index), over all its pages.
const (
	maxListBytes = 16 << 20
	maxListPages = 1000
)

// upstreamList reads a list from the upstream (kind "tags" with ref
// "list", or "referrers" with a digest) and hands each page's body to
// each. It follows the upstream's pages (Link: <...>; rel="next") only on
// the path it asked for. An upstream 404 is answered 404 NAME_UNKNOWN.
func (p *Proxy) upstreamList(ctx context.Context, rr repoRef, kind, ref string, query url.Values, accept string, each func(body []byte, h http.Header) error) error {
	what := kind + " list of " + rr.gun
	budget := int64(maxListBytes)
	for range maxListPages {
		resp, err := p.upstreamRequest(ctx, rr, http.MethodGet, kind, ref, query, accept)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, budget+1))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return &upstreamError{status: http.StatusNotFound, code: "NAME_UNKNOWN", msg: fmt.Sprintf("upstream %s answered %s for the %s", rr.up.URL, resp.Status, what)}
		case resp.StatusCode != http.StatusOK:
			return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s answered %s for the %s", rr.up.URL, resp.Status, what)}
		case err != nil:
			return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("read the %s from %s: %v", what, rr.up.URL, err)}
		case int64(len(body)) > budget:
			return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s sent more than %d bytes for the %s", rr.up.URL, maxListBytes, what)}
		}
		budget -= int64(len(body))
		if err := each(body, resp.Header); err != nil {
			return err
		}
		next, ok, err := nextPage(resp, rr.up.base, upstreamPath(rr, kind, ref))
		if err != nil {
			return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s, %s: %v", rr.up.URL, what, err)}
		}
		if !ok {
			return nil
		}
		query = next
	}
	return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s sent more than %d pages for the %s", rr.up.URL, maxListPages, what)}
}

// nextPage returns the query of the next page a list links to (RFC 8288,
// rel="next"). The link must stay on the upstream's host and on the path
// asked for: the proxy asks its upstream for nothing else.
func nextPage(resp *http.Response, base *url.URL, path string) (url.Values, bool, error) {
	for _, header := range resp.Header.Values("Link") {
		for _, link := range strings.Split(header, ",") {
			target, params, _ := strings.Cut(strings.TrimSpace(link), ";")
			if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") || !relNext(params) {
				continue
			}
			u, err := resp.Request.URL.Parse(target[1 : len(target)-1])
			if err != nil || !sameHost(u, base) || u.Path != path || u.RawPath != "" {
				if len(target) > 200 {
					target = strings.ToValidUTF8(target[:200], "") + "..."
				}
				return nil, false, fmt.Errorf("next page %q is not on %s: refused", target, path)
			}
			return u.Query(), true, nil
		}
	}
	return nil, false, nil
}

func relNext(params string) bool {
	for _, p := range strings.Split(params, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "rel="); ok && strings.Trim(v, `"`) == "next" {
			return true
		}
	}
	return false
}

// upstreamTags lists the upstream's tags of the repository, sorted; names
// outside the tag grammar are dropped.
func (p *Proxy) upstreamTags(ctx context.Context, rr repoRef) ([]string, error) {
	var tags []string
	err := p.upstreamList(ctx, rr, "tags", "list", nil, "application/json", func(body []byte, _ http.Header) error {
		var tl struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(body, &tl); err != nil {
			return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s sent a tags list of %s that is not JSON: %v", rr.up.URL, rr.gun, err)}
		}
		for _, t := range tl.Tags {
			if tagRe.MatchString(t) {
				tags = append(tags, t)
			}
		}
		return nil
	})
	slices.Sort(tags)
	return slices.Compact(tags), err
}

// ociIndex is the media type of a referrers list.
const ociIndex = "application/vnd.oci.image.index.v1+json"

// upstreamReferrers lists the upstream's referrers of a digest (the
// descriptors, as the upstream wrote them) and whether it applied the
// artifactType filter asked for.
func (p *Proxy) upstreamReferrers(ctx context.Context, rr repoRef, digest, artifactType string) ([]json.RawMessage, bool, error) {
	var query url.Values
	if artifactType != "" {
		query = url.Values{"artifactType": {artifactType}}
	}
	var descs []json.RawMessage
	filtered := artifactType != ""
	err := p.upstreamList(ctx, rr, "referrers", digest, query, ociIndex, func(body []byte, h http.Header) error {
		var idx struct {
			Manifests []json.RawMessage `json:"manifests"`
		}
		if err := json.Unmarshal(body, &idx); err != nil {
			return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s sent referrers of %s@%s that are not an index: %v", rr.up.URL, rr.gun, digest, err)}
		}
		descs = append(descs, idx.Manifests...)
		filtered = filtered && slices.Contains(strings.Split(strings.ReplaceAll(h.Get("OCI-Filters-Applied"), " ", ""), ","), "artifactType")
		return nil
	})
	return descs, filtered, err
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
	if m, ok := p.storedManifest(digest, length); ok {
		p.manifests.put(m.digest, m)
		p.allowChildren(rr.gun, m)
		return m, nil
	}
	max := p.maxMan
	if length > max {
		return cachedManifest{}, &denial{image: rr.gun + "@" + digest, reason: fmt.Sprintf("signed manifest is %d bytes, over the %d byte limit", length, max), rule: rr.rule.name()}
	}
	if length >= 0 {
		max = length
	}
	resp, err := p.upstreamGet(ctx, rr, http.MethodGet, "manifests", digest, manifestAccept)
	if err != nil {
		// Unreachable: another replica may have kept it in the shared
		// cache.
		if m, ok := p.sharedManifest(ctx, digest, length); ok {
			p.manifests.put(m.digest, m)
			p.allowChildren(rr.gun, m)
			return m, nil
		}
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
	p.manifests.put(m.digest, m)
	p.keepManifest(ctx, m)
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
	switch {
	case m.mediaType != "":
	case len(refs.Manifests) > 0: // read back from the blob cache, which keeps no type
		m.mediaType = ociIndex
	default:
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

// cachedManifest is a verified manifest, kept in memory (memCache) by
// digest.
type cachedManifest struct {
	digest    string
	mediaType string
	body      []byte
	// refs are the digests it references (index children, config,
	// layers), parsed once.
	refs     []string
	children []string
}
