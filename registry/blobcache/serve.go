package blobcache

import (
	"io"
	"net/http"
	"time"
)

// Serve answers r with the cached blob digest, if there is one: 200 with
// Content-Length, or 206 for a Range request (416 for an unsatisfiable
// one), 304 for a matching If-None-Match, headers only for HEAD. It sets
// Content-Type (application/octet-stream if contentType is empty),
// Docker-Content-Digest, ETag ("<digest>") and Accept-Ranges
// (http.ServeContent drops the ETag from a 416); the body goes out by
// sendfile. It reports false, having written nothing, when
// the blob is not cached (or its file was corrupt): the caller then
// fetches it. An error means the store could not be read, with nothing
// written either.
func (s *Store) Serve(w http.ResponseWriter, r *http.Request, digest, contentType string) (bool, error) {
	ent, ok, err := s.Get(digest)
	if err != nil || !ok {
		return false, err
	}
	defer ent.Close()
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Docker-Content-Digest", digest)
	h.Set("Etag", `"`+digest+`"`)
	h.Set("Accept-Ranges", "bytes")
	cw := &countingWriter{ResponseWriter: w}
	// The digest names the bytes: no modification time is needed, and
	// the ETag is strong.
	http.ServeContent(cw, r, "", time.Time{}, ent.f)
	if cw.code == 0 || cw.code == http.StatusOK || cw.code == http.StatusPartialContent {
		s.stats.bytesServed.Add(cw.n)
	}
	return true, nil
}

// countingWriter counts the body bytes written and keeps the status. It
// forwards ReadFrom so that http.ServeContent's copy still reaches
// net/http's sendfile path.
type countingWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{c.ResponseWriter}, src)
	}
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// writerOnly hides a writer's ReadFrom.
type writerOnly struct{ io.Writer }
