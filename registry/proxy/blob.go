package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func (p *Proxy) serveBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	if !digestRe.MatchString(req.ref) {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("blob reference %q is not sha256:<64 hex>", req.ref))
		return
	}
	if !p.allowed.has(rr.gun, req.ref) {
		res, err := p.trustResult(ctx, rr)
		if err == nil {
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
	}
	resp, err := p.upstreamGet(ctx, rr, r.Method, "blobs", req.ref, "")
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
	p.metrics.decisions.WithLabelValues("allow", "referenced").Inc()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if v := resp.Header.Get("Content-Length"); v != "" {
		h.Set("Content-Length", v)
	}
	h.Set("Docker-Content-Digest", req.ref)
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method == http.MethodHead {
		return
	}
	// Stream, hashing on the way; a blob that does not hash to its digest
	// is cut off before its end, so the client never completes it.
	hash := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(w, io.TeeReader(resp.Body, hash), *buf)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if "sha256:"+hex.EncodeToString(hash.Sum(nil)) != req.ref {
		p.metrics.decisions.WithLabelValues("deny", "blob_hash").Inc()
		p.audit(r, req, "deny", fmt.Sprintf("upstream blob (%d bytes) does not hash to its digest; connection cut", n), rr.rule.name(), req.ref)
		panic(http.ErrAbortHandler)
	}
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
