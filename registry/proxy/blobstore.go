package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/signet-project/signet/registry/blobcache"
)

// The blob cache (Options.Store) keeps what the proxy verified: blobs,
// checked against their digest by the store as they arrive, and manifest
// bytes checked against the signed digest (fetch.go). It never decides:
// serveBlob and fetchVerified ask it only for what the current trust
// data allows.

// memBlobMax is the size up to which a cached blob is also kept in
// memory (p.blobMem): image configs and small layers, asked for on every
// pull, are then answered without opening a file.
const memBlobMax = 64 << 10

// serveBlobCached answers an allowed blob from the cache: a small blob
// from memory, a cached file by Store.Serve (sendfile), both with Range
// (206), HEAD and If-None-Match. Otherwise a HEAD goes to the upstream
// as a HEAD, and a GET is fetched into the cache (fetchBlob).
func (p *Proxy) serveBlobCached(w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	if body, ok := p.blobMem.get(req.ref); ok {
		p.metrics.cache.WithLabelValues("blob", "hit").Inc()
		p.metrics.decisions.WithLabelValues("allow", "referenced").Inc()
		setBlobHeaders(w.Header(), req.ref)
		w.Header().Set("Accept-Ranges", "bytes")
		if r.Header.Get("Range") == "" && r.Header.Get("If-None-Match") == "" {
			writeBody(w, r, "application/octet-stream", body) // the common case, in one write
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		return
	}
	p.metrics.cache.WithLabelValues("blob", "miss").Inc()
	ok, err := p.store.Serve(w, r, req.ref, "")
	if err != nil {
		// The cache cannot be read (a disk error): serve from the
		// upstream, as without a cache.
		p.log.LogAttrs(r.Context(), slog.LevelWarn, "blob cache unreadable; streaming from the upstream", slog.String("digest", req.ref), slog.String("err", err.Error()))
		p.streamBlob(w, r, req, rr)
		return
	}
	if ok {
		p.metrics.decisions.WithLabelValues("allow", "referenced").Inc()
		if n, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && n <= memBlobMax && r.Method == http.MethodGet && r.Header.Get("Range") == "" {
			p.rememberBlob(req.ref)
		}
		return
	}
	if r.Method == http.MethodHead {
		p.streamBlob(w, r, req, rr)
		return
	}
	p.fetchBlob(w, r, req, rr)
}

// abandonedFetchTimeout bounds how long a fetch whose client went away
// is still read to its end (see finishAbandoned).
const abandonedFetchTimeout = 15 * time.Minute

// fetchBlob answers a blob that was not cached with Store.Fetch: one
// upstream GET however many clients ask meanwhile, each client reading
// the bytes as they arrive, the last byte held back until the whole blob
// matched its digest.
//
// Range: a request that started the fetch gets the whole blob (200; a
// server may ignore Range): serving a range from byte N would keep the
// client waiting, without a byte, for the upstream to deliver the N
// bytes before it. A request that joined a fetch already under way (the
// resume of a download cut short, whose fetch finishAbandoned keeps
// going) gets its range (206) as the fetch reaches it; so does one that
// finds the blob cached meanwhile.
func (p *Proxy) fetchBlob(w http.ResponseWriter, r *http.Request, req request, rr repoRef) {
	var started atomic.Bool
	fetch := func(ctx context.Context) (io.ReadCloser, int64, error) {
		started.Store(true)
		resp, err := p.upstreamGet(ctx, rr, http.MethodGet, "blobs", req.ref, "")
		if err != nil {
			return nil, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, 0, blobStatusError(rr, req.ref, resp)
		}
		return resp.Body, resp.ContentLength, nil
	}
	// The Reader outlives the client if it goes away mid-body
	// (finishAbandoned); the wait is bounded once it has gone.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	var timer atomic.Pointer[time.Timer]
	stop := context.AfterFunc(r.Context(), func() { timer.Store(time.AfterFunc(abandonedFetchTimeout, cancel)) })
	rd, err := p.store.Fetch(ctx, req.ref, -1, fetch)
	if err != nil {
		stop()
		cancel()
		p.fail(w, r, req, p.blobFetchError(rr, req.ref, err))
		return
	}
	done := func() {
		rd.Close()
		stop()
		if t := timer.Load(); t != nil {
			t.Stop()
		}
		cancel()
	}
	h := w.Header()
	setBlobHeaders(h, req.ref)
	size := rd.Size()
	if size >= 0 && size <= smallBlob {
		// Read whole and checked before the first byte, as without a
		// cache, so a mismatch is a clear 403.
		body, err := io.ReadAll(io.LimitReader(rd, size+1))
		done()
		if err != nil {
			p.fail(w, r, req, p.blobFetchError(rr, req.ref, err))
			return
		}
		if size <= memBlobMax {
			p.blobMem.put(req.ref, body) // matched its digest: the Reader said EOF
		}
		p.writeSmallBlob(w, body)
		return
	}
	p.metrics.decisions.WithLabelValues("allow", "referenced").Inc()
	start, end, status := int64(0), size-1, http.StatusOK
	if !started.Load() {
		start, end, status = blobRange(r, req.ref, size)
	}
	switch status {
	case http.StatusRequestedRangeNotSatisfiable:
		done()
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		writeError(w, status, "BLOB_UNKNOWN", fmt.Sprintf("range %q of blob %s (%d bytes) is not satisfiable", r.Header.Get("Range"), req.ref, size))
		return
	case http.StatusPartialContent:
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	}
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	}
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(status)
	cw := &clientWriter{w: w}
	var err2 error
	switch {
	case status == http.StatusPartialContent:
		err2 = copyRange(cw, rd, start, end)
	case rd.Cached():
		_, err2 = rd.WriteTo(w) // sendfile
	default:
		_, err2 = rd.WriteTo(cw)
	}
	switch {
	case err2 == nil:
		done()
	case rd.Cached():
		done() // the client went away, or the disk failed: nothing to finish
		panic(http.ErrAbortHandler)
	case cw.err != nil:
		stop()
		p.finishAbandoned(rd, cancel, &timer)
		panic(http.ErrAbortHandler)
	default:
		done()
		if errors.Is(err2, blobcache.ErrMismatch) {
			p.blobMismatch(r, req, rr, "upstream blob does not match its digest; response cut before its last byte: "+err2.Error())
		} else {
			p.metrics.decisions.WithLabelValues("error", "upstream").Inc()
			p.audit(r, req, "error", "blob fetch failed; response cut before its last byte: "+err2.Error(), rr.rule.name(), req.ref)
		}
		panic(http.ErrAbortHandler)
	}
}

// rememberBlob keeps a small cached blob in memory too, read from its
// file (found after a restart), hashed again.
func (p *Proxy) rememberBlob(digest string) {
	ent, ok, err := p.store.Get(digest)
	if err != nil || !ok {
		return
	}
	defer ent.Close()
	body, err := io.ReadAll(io.LimitReader(ent.File(), memBlobMax+1))
	if err == nil && int64(len(body)) == ent.Size && sha256Digest(body) == digest {
		p.blobMem.put(digest, body)
	}
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// blobFetchError is the answer to a failed fetch, found before any byte
// was sent: a mismatch (which a fetch that completed at once reports
// from Fetch) is denied, an upstream error answered as it is.
func (p *Proxy) blobFetchError(rr repoRef, digest string, err error) error {
	if errors.Is(err, blobcache.ErrMismatch) {
		return blobHashDenial(rr, digest)
	}
	var ue *upstreamError
	if errors.As(err, &ue) {
		return err
	}
	return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("read blob %s from %s: %v", digest, rr.up.URL, err)}
}

// finishAbandoned keeps reading, in the background, a fetch whose client
// went away mid-body, so that it completes into the cache (for the
// client's retry, a Range resume) rather than being cancelled as the
// store does once no reader is left. It gives up after
// abandonedFetchTimeout.
func (p *Proxy) finishAbandoned(rd *blobcache.Reader, cancel context.CancelFunc, timer *atomic.Pointer[time.Timer]) {
	if timer.Load() == nil {
		timer.Store(time.AfterFunc(abandonedFetchTimeout, cancel))
	}
	go func() {
		io.Copy(io.Discard, rd) //nolint:errcheck // the store logs a failed fetch
		rd.Close()
		if t := timer.Load(); t != nil {
			t.Stop()
		}
		cancel()
	}()
}

// clientWriter records a failed write to the client, to tell it from a
// failed read of the blob.
type clientWriter struct {
	w   io.Writer
	err error
}

func (c *clientWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if err != nil {
		c.err = err
	}
	return n, err
}

// copyRange writes bytes start to end (inclusive) of the blob rd reads,
// skipping those before start as the fetch delivers them. The byte at
// end is held back until rd reached the end of the blob, that is until
// the blob matched its digest: a client never gets a complete range of
// a wrong blob.
func copyRange(w io.Writer, rd io.Reader, start, end int64) error {
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	discard := struct{ io.Writer }{io.Discard} // hides ReadFrom, so buf is used
	if _, err := io.CopyBuffer(discard, io.LimitReader(rd, start), buf); err != nil {
		return err
	}
	if n, err := io.CopyBuffer(w, io.LimitReader(rd, end-start), buf); err != nil {
		return err
	} else if n != end-start {
		return io.ErrUnexpectedEOF
	}
	var last [1]byte
	if _, err := io.ReadFull(rd, last[:]); err != nil {
		return err
	}
	if _, err := io.CopyBuffer(discard, struct{ io.Reader }{rd}, buf); err != nil {
		return err // EOF only once the blob matched
	}
	_, err := w.Write(last[:])
	return err
}

// storedManifest returns a manifest from the blob cache, its bytes hashed
// again here (they are small), within the size cap and of the signed
// length (-1: unknown). Nothing else is returned.
func (p *Proxy) storedManifest(digest string, length int64) (cachedManifest, bool) {
	if p.store == nil {
		return cachedManifest{}, false
	}
	ent, ok, err := p.store.Get(digest)
	if err != nil || !ok {
		return cachedManifest{}, false
	}
	defer ent.Close()
	if ent.Size > p.maxMan || length >= 0 && ent.Size != length {
		return cachedManifest{}, false // the upstream path says why
	}
	body, err := io.ReadAll(io.LimitReader(ent.File(), ent.Size+1))
	if err != nil || int64(len(body)) != ent.Size || sha256Digest(body) != digest || !looksLikeManifest(body) {
		return cachedManifest{}, false
	}
	return newCachedManifest(digest, body, ""), true
}

// manifestTypes are the media types of manifests and indexes.
var manifestTypes = map[string]bool{
	"application/vnd.oci.image.index.v1+json":                   true,
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
	"application/vnd.docker.distribution.manifest.v2+json":      true,
}

// looksLikeManifest tells manifest bytes from a blob's in the cache,
// which keeps both by digest: a manifest media type, or none and a list
// of layers or manifests. A blob (an image config) read back by a
// manifest digest request is then fetched from the upstream's manifests
// endpoint, as without a cache.
func looksLikeManifest(body []byte) bool {
	var m struct {
		MediaType string            `json:"mediaType"`
		Layers    []json.RawMessage `json:"layers"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	return manifestTypes[m.MediaType] || m.MediaType == "" && (m.Layers != nil || m.Manifests != nil)
}

// keepManifest writes verified manifest bytes to the blob cache (and its
// shared store), so that they outlive the memory cache, restarts and
// upstream outages. A failure only costs a later upstream fetch.
func (p *Proxy) keepManifest(ctx context.Context, m cachedManifest) {
	if p.store == nil {
		return
	}
	if err := p.store.Keep(ctx, m.digest, m.body); err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "blob cache: keep manifest", slog.String("digest", m.digest), slog.String("err", err.Error()))
	}
}

// errNoUpstream stops a shared-store lookup from going to the upstream.
var errNoUpstream = errors.New("upstream unreachable, and the shared cache does not hold it")

// sharedManifest reads a manifest from the blob cache's shared store,
// where another replica kept it, when the upstream cannot be reached.
// Its bytes are checked like storedManifest's.
func (p *Proxy) sharedManifest(ctx context.Context, digest string, length int64) (cachedManifest, bool) {
	if p.store == nil || !p.store.HasShared() {
		return cachedManifest{}, false
	}
	rd, err := p.store.Fetch(ctx, digest, length, func(context.Context) (io.ReadCloser, int64, error) {
		return nil, 0, errNoUpstream
	})
	if err != nil {
		return cachedManifest{}, false
	}
	defer rd.Close()
	body, err := io.ReadAll(io.LimitReader(rd, p.maxMan+1))
	if err != nil || int64(len(body)) > p.maxMan || length >= 0 && int64(len(body)) != length || sha256Digest(body) != digest || !looksLikeManifest(body) {
		return cachedManifest{}, false
	}
	return newCachedManifest(digest, body, ""), true
}

// ScrubCache runs s.Scrub every interval until ctx is done, logging what
// each found: it hashes every cached file again and deletes those that
// changed on disk (they are fetched again when next asked for). Run it
// in a goroutine of its own; interval <= 0 returns at once.
func ScrubCache(ctx context.Context, s *blobcache.Store, interval time.Duration, logger *slog.Logger) {
	if interval <= 0 || s == nil {
		return
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		res, err := s.Scrub(ctx)
		attrs := []slog.Attr{slog.Int("checked", res.Checked), slog.Int("corrupt", res.Corrupt),
			slog.Int64("bytes", res.Bytes), slog.Duration("took", time.Since(start).Round(time.Millisecond))}
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			logger.LogAttrs(ctx, slog.LevelError, "blob cache scrub failed", append(attrs, slog.String("err", err.Error()))...)
		case res.Corrupt > 0:
			logger.LogAttrs(ctx, slog.LevelWarn, "blob cache scrubbed: corrupt files deleted", attrs...)
		default:
			logger.LogAttrs(ctx, slog.LevelInfo, "blob cache scrubbed", attrs...)
		}
	}
}
