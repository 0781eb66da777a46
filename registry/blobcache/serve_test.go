package blobcache

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServe: Serve over a real HTTP server answers full bodies, ranges,
// conditional and HEAD requests for cached blobs with the registry
// headers, and reports misses without writing anything.
func TestServe(t *testing.T) {
	const size = 100 << 10
	data, digest := testBlob(size, 70)
	_, missing := testBlob(10, 71)
	s := openStore(t, t.TempDir(), Options{})
	put(t, s, data, digest)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := strings.TrimPrefix(r.URL.Path, "/")
		ok, err := s.Serve(w, r, d, "application/vnd.oci.image.layer.v1.tar+gzip")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if !ok {
			http.Error(w, "miss", http.StatusNotFound)
		}
	}))
	defer srv.Close()

	tests := []struct {
		name         string
		method       string
		digest       string
		header       map[string]string
		status       int
		body         []byte // nil: not checked
		contentRange string
	}{
		{name: "full", status: 200, body: data},
		{name: "head", method: "HEAD", status: 200, body: []byte{}},
		{name: "range", header: map[string]string{"Range": "bytes=10-99"}, status: 206, body: data[10:100], contentRange: fmt.Sprintf("bytes 10-99/%d", size)},
		{name: "open range", header: map[string]string{"Range": "bytes=100000-"}, status: 206, body: data[100000:], contentRange: fmt.Sprintf("bytes 100000-%d/%d", size-1, size)},
		{name: "suffix range", header: map[string]string{"Range": "bytes=-5"}, status: 206, body: data[size-5:], contentRange: fmt.Sprintf("bytes %d-%d/%d", size-5, size-1, size)},
		{name: "range past the end", header: map[string]string{"Range": fmt.Sprintf("bytes=%d-", size)}, status: 416, contentRange: fmt.Sprintf("bytes */%d", size)},
		{name: "if-none-match", header: map[string]string{"If-None-Match": `"` + digest + `"`}, status: 304, body: []byte{}},
		{name: "if-range matching", header: map[string]string{"Range": "bytes=0-0", "If-Range": `"` + digest + `"`}, status: 206, body: data[:1], contentRange: fmt.Sprintf("bytes 0-0/%d", size)},
		{name: "if-range stale", header: map[string]string{"Range": "bytes=0-0", "If-Range": `"sha256:0"`}, status: 200, body: data},
		{name: "miss", digest: missing, status: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, d := tc.method, tc.digest
			if method == "" {
				method = "GET"
			}
			if d == "" {
				d = digest
			}
			req, err := http.NewRequest(method, srv.URL+"/"+d, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Content-Range"); got != tc.contentRange {
				t.Errorf("Content-Range %q, want %q", got, tc.contentRange)
			}
			if tc.body != nil && !bytes.Equal(body, tc.body) {
				t.Errorf("body: %d bytes, want %d", len(body), len(tc.body))
			}
			if tc.status == 404 {
				return
			}
			h := resp.Header
			// http.ServeContent removes the ETag from its 416 answer.
			if h.Get("Docker-Content-Digest") != digest || (tc.status != 416 && h.Get("Etag") != `"`+digest+`"`) {
				t.Errorf("digest headers: %v", h)
			}
			if tc.status == 304 {
				return
			}
			if h.Get("Accept-Ranges") != "bytes" {
				t.Errorf("Accept-Ranges %q", h.Get("Accept-Ranges"))
			}
			wantLen := len(tc.body)
			if method == "HEAD" {
				wantLen = size
			}
			if tc.status != 416 && h.Get("Content-Length") != strconv.Itoa(wantLen) {
				t.Errorf("Content-Length %q, want %d", h.Get("Content-Length"), wantLen)
			}
			if tc.status == 200 && h.Get("Content-Type") != "application/vnd.oci.image.layer.v1.tar+gzip" {
				t.Errorf("Content-Type %q", h.Get("Content-Type"))
			}
		})
	}
	// Body bytes of 200 and 206 answers are counted (not the put's own
	// read: that was a fetch).
	want := int64(size + 90 + (size - 100000) + 5 + 1 + size)
	if st := s.Stats(); st.BytesServed != want {
		t.Errorf("BytesServed = %d, want %d", st.BytesServed, want)
	}
}

// TestServeMultiRange: several ranges come as multipart/byteranges.
func TestServeMultiRange(t *testing.T) {
	data, digest := testBlob(5000, 72)
	s := openStore(t, t.TempDir(), Options{})
	put(t, s, data, digest)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Range", "bytes=0-9,4000-4009")
	if ok, err := s.Serve(rec, req, digest, ""); !ok || err != nil {
		t.Fatalf("Serve: %v, %v", ok, err)
	}
	if rec.Code != 206 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("status %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.Bytes()
	if !bytes.Contains(body, data[:10]) || !bytes.Contains(body, data[4000:4010]) {
		t.Error("parts missing from the body")
	}
}

// TestFetchOverHTTPMismatch: a handler that aborts on a Reader error
// (as the proxy does) never gives an HTTP client a complete body of
// wrong bytes: the client sees the response cut short, or a 502 if the
// mismatch was known before Fetch returned. The upstream is paced so
// that the cut case is the usual one.
func TestFetchOverHTTPMismatch(t *testing.T) {
	const size = 1 << 20
	want, digest := testBlob(size, 73)
	wrong := bytes.Clone(want)
	wrong[size-1] ^= 0x80
	s := openStore(t, t.TempDir(), Options{})
	up := newUpstream(wrong)
	up.holdEOF = make(chan struct{})
	go func() {
		// Let the body end once the client is reading it.
		time.Sleep(20 * time.Millisecond)
		close(up.holdEOF)
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd, err := s.Fetch(r.Context(), digest, size, up.fetch)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer rd.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
		if _, err := rd.WriteTo(w); err != nil {
			panic(http.ErrAbortHandler)
		}
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusBadGateway {
		t.Log("the mismatch was known before Fetch returned: 502")
		return
	}
	if err == nil || len(body) >= size {
		t.Fatalf("client read %d of %d bytes, error %v: want a cut response", len(body), size, err)
	}
	if !bytes.Equal(body, want[:len(body)]) {
		t.Error("the prefix differs")
	}
}
