package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

func (p *Proxy) serveBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	if !digestRe.MatchString(req.ref) {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("blob reference %q is not sha256:<64 hex>", req.ref))
		return
	}
	// Every request is decided against the current trust data (cached
	// by the refresher): a digest learned from older data is forgotten
	// once the data changes.
	res, err := p.trustResult(ctx, rr)
	if err == nil {
		p.allowed.observe(rr.gun, res.TimestampVersion)
	}
	if err == nil && !p.allowed.has(rr.gun, req.ref) {
		var ok bool
		ok, err = p.reachable(ctx, rr, res, req.ref)
		if err == nil && !ok {
			err = &denial{image: rr.gun + "@" + req.ref, reason: "blob not referenced by a signed manifest", rule: rr.rule.name()}
		}
	}
	if err != nil {
		if rr.rule.Mode == ModeWarn && isDenial(err) {
			p.passThrough(w, r, req, rr, "blobs", err.Error())
			return
		}
		p.fail(w, r, req, err)
		return
	}
	// The blob body may take longer than the request's lookup deadline:
	// it is bounded by the client staying connected.
	resp, err := p.upstreamGet(r.Context(), rr, r.Method, "blobs", req.ref, "")
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		status := http.StatusBadGateway
		if resp.StatusCode == http.StatusNotFound {
			status = http.StatusNotFound
		}
		p.fail(w, r, req, &upstreamError{status: status, msg: fmt.Sprintf("upstream %s answered %s for blob %s of %s", rr.up.URL, resp.Status, req.ref, rr.gun)})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", req.ref)
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method == http.MethodHead {
		if v := resp.Header.Get("Content-Length"); v != "" {
			h.Set("Content-Length", v)
		}
		p.metrics.decisions.WithLabelValues("allow", "referenced").Inc()
		return
	}
	if resp.ContentLength >= 0 && resp.ContentLength <= smallBlob {
		p.serveSmallBlob(w, r, req, rr, resp)
		return
	}
	p.metrics.decisions.WithLabelValues("allow", "referenced").Inc()
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	hw, n, sum, err := streamHashed(w, resp.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if "sha256:"+hex.EncodeToString(sum) != req.ref {
		// The last byte is still held back: the client never sees a
		// complete body and discards what it got.
		p.metrics.decisions.WithLabelValues("deny", "blob_hash").Inc()
		p.audit(r, req, "deny", fmt.Sprintf("upstream blob (%d bytes) does not hash to its digest; response cut before its last byte", n), rr.rule.name(), req.ref)
		panic(http.ErrAbortHandler)
	}
	if err := hw.release(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// smallBlob is the size up to which a blob is read whole and checked
// before the first byte is sent (configs, small layers).
const smallBlob = 1 << 20

func (p *Proxy) serveSmallBlob(w http.ResponseWriter, r *http.Request, req request, rr repoRef, resp *http.Response) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, smallBlob+1))
	if err != nil || int64(len(body)) != resp.ContentLength {
		p.fail(w, r, req, &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("read blob %s from %s: %v", req.ref, rr.up.URL, err)})
		return
	}
	sum := sha256.Sum256(body)
	if "sha256:"+hex.EncodeToString(sum[:]) != req.ref {
		p.fail(w, r, req, &denial{image: rr.gun + "@" + req.ref, reason: "upstream served blob bytes that do not hash to the digest", rule: rr.rule.name()})
		return
	}
	p.metrics.decisions.WithLabelValues("allow", "referenced").Inc()
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body) //nolint:errcheck // client went away
}

func (p *Proxy) serveTags(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	res, err := p.trustResult(ctx, rr)
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	// Only signed tags are listed: the proxy serves nothing else.
	tags := signedTagNames(res, rr.rule)
	if tags == nil {
		tags = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"name": req.name, "tags": tags}) //nolint:errcheck
}
