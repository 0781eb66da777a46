package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// serveBlob answers a blob the trust data reaches (decideBlob): from the
// blob cache when the proxy has one (blobstore.go), else hashed as it
// streams from the upstream; in warn mode a denied one is passed
// through, with a Warning. The decision always comes first: the cache is
// asked only for what is allowed now.
func (p *Proxy) serveBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	if err := p.decideBlob(ctx, rr, req.ref); err != nil {
		if rr.rule.Mode == ModeWarn && isDenial(err) {
			p.passThrough(w, r, req, rr, "blobs", err.Error())
			return
		}
		p.fail(w, r, req, err)
		return
	}
	if p.store != nil {
		p.serveBlobCached(w, r, req, rr)
		return
	}
	p.streamBlob(w, r, req, rr)
}

// blobStatusError is the error for an upstream answer to a blob request
// other than 200: 404 BLOB_UNKNOWN for what the upstream does not have,
// else 502.
func blobStatusError(rr repoRef, digest string, resp *http.Response) error {
	status, code := http.StatusBadGateway, ""
	if resp.StatusCode == http.StatusNotFound {
		status, code = http.StatusNotFound, "BLOB_UNKNOWN"
	}
	return &upstreamError{status: status, code: code, msg: fmt.Sprintf("upstream %s answered %s for blob %s of %s", rr.up.URL, resp.Status, digest, rr.gun)}
}

// setBlobHeaders sets the headers of a verified blob answer.
func setBlobHeaders(h http.Header, digest string) {
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", digest)
	h.Set("ETag", `"`+digest+`"`)
}

// streamBlob answers an allowed blob from the upstream without a cache
// (and HEAD on a blob the cache does not hold): hashed as it streams,
// its last byte held back until the hash matched. Range is ignored: the
// whole blob is answered.
func (p *Proxy) streamBlob(w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	// The blob body may take longer than the request's lookup deadline:
	// it is bounded by the client staying connected.
	resp, err := p.upstreamGet(r.Context(), rr, r.Method, "blobs", req.ref, "")
	if err != nil {
		p.fail(w, r, req, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.fail(w, r, req, blobStatusError(rr, req.ref, resp))
		return
	}
	h := w.Header()
	setBlobHeaders(h, req.ref)
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
		p.blobMismatch(r, req, rr, fmt.Sprintf("upstream blob (%d bytes) does not hash to its digest; response cut before its last byte", n))
		panic(http.ErrAbortHandler)
	}
	if err := hw.release(); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// blobMismatch records upstream blob bytes that do not match their
// digest, found after the answer started.
func (p *Proxy) blobMismatch(r *http.Request, req request, rr repoRef, why string) {
	p.metrics.decisions.WithLabelValues("deny", "blob_hash").Inc()
	p.audit(r, req, "deny", why, rr.rule.name(), req.ref)
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
		p.fail(w, r, req, blobHashDenial(rr, req.ref))
		return
	}
	p.writeSmallBlob(w, body)
}

// blobHashDenial refuses upstream bytes that do not hash to the digest,
// found before any byte was sent.
func blobHashDenial(rr repoRef, digest string) error {
	return &denial{image: rr.gun + "@" + digest, reason: "upstream served blob bytes that do not hash to the digest", rule: rr.rule.name()}
}

// writeSmallBlob answers a checked small blob whole.
func (p *Proxy) writeSmallBlob(w http.ResponseWriter, body []byte) {
	p.metrics.decisions.WithLabelValues("allow", "referenced").Inc()
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body) //nolint:errcheck // client went away
}
