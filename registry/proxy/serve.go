package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// serveManifest answers a manifest by tag or digest: decided by the trust
// data, fetched from the upstream by digest and checked; in warn mode a
// denied one is passed through, with a Warning.
func (p *Proxy) serveManifest(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	var err error
	var m cachedManifest
	if strings.Contains(req.ref, ":") { // a digest (checkRequest)
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
	if r.Method == http.MethodHead {
		return
	}
	w.Write(m.body) //nolint:errcheck // client went away
}

// serveTags answers a tags list (listedTags decides what is listed), one
// page at a time: n tags after last, and a Link to the next page.
func (p *Proxy) serveTags(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	tags, why, err := p.listedTags(ctx, rr)
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	if why != "" {
		p.unverified(w, r, req, rr, why)
	}
	tags, more := req.page.of(tags)
	if more {
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?n=%d&last=%s>; rel="next"`, req.name, req.page.n, url.QueryEscape(tags[len(tags)-1])))
	}
	if tags == nil {
		tags = []string{}
	}
	body, err := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{req.name, tags})
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	writeBody(w, r, "application/json", body)
}

// of returns the page asked for of sorted tags, and whether more follow.
func (pg page) of(tags []string) ([]string, bool) {
	if pg.last != "" {
		i, found := slices.BinarySearch(tags, pg.last)
		if found {
			i++
		}
		tags = tags[i:]
	}
	if pg.n >= 0 && pg.n < len(tags) {
		return tags[:pg.n], pg.n > 0
	}
	return tags, false
}

// serveReferrers answers the referrers of a digest as one OCI index
// (listedReferrers decides which are listed).
func (p *Proxy) serveReferrers(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	descs, filtered, why, err := p.listedReferrers(ctx, rr, req.ref, r.URL.Query().Get("artifactType"))
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	if why != "" {
		p.unverified(w, r, req, rr, why)
	}
	if descs == nil {
		descs = []json.RawMessage{}
	}
	body, err := json.Marshal(struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
	}{2, ociIndex, descs})
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	if filtered {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeBody(w, r, ociIndex, body)
}

// writeBody answers 200 with body (its headers only, to HEAD).
func writeBody(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body) //nolint:errcheck // client went away
}

// unverified records an answer served without verification: for an allow
// rule, or under a warn rule with a Warning header saying why.
func (p *Proxy) unverified(w http.ResponseWriter, r *http.Request, req request, rr repoRef, why string) {
	decision := "allow-listed"
	if rr.rule.Mode == ModeWarn {
		decision = "warn"
		w.Header().Set("Warning", warning("served unverified: "+why))
	}
	p.metrics.decisions.WithLabelValues(decision, short(why)).Inc()
	p.audit(r, req, decision, why, rr.rule.name(), "")
}

// maxWarning bounds the text of a Warning header (the distribution spec
// allows 4096 bytes of warnings in all).
const maxWarning = 1024

// warning is a Warning header value as the distribution spec has it:
// code 299, agent "-", no date.
func warning(msg string) string {
	msg = strings.ReplaceAll(msg, `"`, `'`)
	if len(msg) > maxWarning {
		msg = strings.ToValidUTF8(msg[:maxWarning], "") + "..."
	}
	return `299 - "signet: ` + msg + `"`
}

// passThrough serves a manifest or blob from the upstream without
// verification: for allow-listed repositories, and in warn mode (with a
// Warning header).
func (p *Proxy) passThrough(w http.ResponseWriter, r *http.Request, req request, rr repoRef, kind, why string) {
	p.unverified(w, r, req, rr, why)
	accept := r.Header.Get("Accept")
	if kind == "manifests" && accept == "" {
		accept = manifestAccept
	}
	resp, err := p.upstreamGet(r.Context(), rr, r.Method, kind, req.ref, accept)
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
