package proxy

import (
	"net/http"
	"strconv"
	"strings"
)

// blobRange decides how to answer the Range header of r for the blob
// digest of size bytes: the first and last byte and 206, 416 for a
// range past the end, or 200 (the whole blob) when there is no Range,
// when If-Range names another entity, when the size is unknown, or for
// anything but one range of bytes (several ranges, other units,
// malformed): a server may ignore Range (RFC 9110 §14.2).
func blobRange(r *http.Request, digest string, size int64) (start, end int64, status int) {
	h := r.Header.Get("Range")
	if h == "" || size < 0 {
		return 0, size - 1, http.StatusOK
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != `"`+digest+`"` {
		return 0, size - 1, http.StatusOK
	}
	start, end, status = parseRange(h, size)
	if status == http.StatusOK {
		return 0, size - 1, status
	}
	return start, end, status
}

// parseRange reads a Range header of one range ("bytes=A-B", "bytes=A-"
// or "bytes=-N") of a blob of size bytes. It returns 206 with the first
// and last byte (B clamped to the blob's end), 416 when the range starts
// past the end (or asks for the last 0 bytes), and 200 for anything else.
func parseRange(h string, size int64) (start, end int64, status int) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, http.StatusOK
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, http.StatusOK
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" { // the last N bytes
		n, err := parseBytePos(b)
		switch {
		case err != nil:
			return 0, 0, http.StatusOK
		case n == 0 || size == 0:
			return 0, 0, http.StatusRequestedRangeNotSatisfiable
		}
		return max(size-n, 0), size - 1, http.StatusPartialContent
	}
	first, err := parseBytePos(a)
	if err != nil {
		return 0, 0, http.StatusOK
	}
	last := size - 1
	if b != "" {
		if last, err = parseBytePos(b); err != nil || last < first {
			return 0, 0, http.StatusOK
		}
		last = min(last, size-1)
	}
	if first >= size {
		return 0, 0, http.StatusRequestedRangeNotSatisfiable
	}
	return first, last, http.StatusPartialContent
}

// parseBytePos reads a byte position: decimal digits only.
func parseBytePos(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}
