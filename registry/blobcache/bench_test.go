package blobcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The benchmarks serve one blob over loopback HTTP (httptest, keep-alive
// client that discards the body) from the cache and from peers in the
// same run, and log the ratio of their ns/op (with -v). They are not run
// in CI.

const benchBig = 64 << 20

// peer is one way of answering the benchmark's GET.
type peer struct {
	name    string
	handler http.HandlerFunc
	// between, if set, runs with the timer stopped before each GET;
	// after, if set, with the timer running after each GET.
	between, after func(b *testing.B)
}

// runPeers runs one sub-benchmark per peer (GET of size bytes) and logs
// each one's ns/op relative to the first.
func runPeers(b *testing.B, size int64, peers []peer) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	buf := make([]byte, 256<<10)
	ns := make([]float64, len(peers))
	for i, p := range peers {
		srv := httptest.NewServer(p.handler)
		b.Run(p.name, func(b *testing.B) {
			get := func() {
				resp, err := c.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || n != size {
					b.Fatalf("GET: %s, %d bytes, %v", resp.Status, n, err)
				}
			}
			if p.between != nil {
				p.between(b)
			}
			get() // warm: connection, page cache
			if p.after != nil {
				p.after(b)
			}
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				if p.between != nil {
					b.StopTimer()
					p.between(b)
					b.StartTimer()
				}
				get()
				if p.after != nil {
					p.after(b)
				}
			}
			ns[i] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		srv.Close()
	}
	for i := 1; i < len(peers); i++ {
		if ns[0] > 0 && ns[i] > 0 {
			b.Logf("ratio %s/%s (ns/op): %.2f", peers[i].name, peers[0].name, ns[i]/ns[0])
		}
	}
}

// warmPeers: the same bytes from the cache, from a plain file with
// http.ServeContent (sendfile too) and from memory.
func warmPeers(b *testing.B, size int) []peer {
	dir := b.TempDir()
	data, digest := testBlob(size, 200)
	s := openStore(b, dir, Options{})
	put(b, s, data, digest)
	plain := filepath.Join(b.TempDir(), "blob")
	if err := os.WriteFile(plain, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return []peer{
		{name: "file", handler: func(w http.ResponseWriter, r *http.Request) {
			f, err := os.Open(plain)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, "", time.Time{}, f)
		}},
		{name: "memory", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		}},
		{name: "blobcache", handler: func(w http.ResponseWriter, r *http.Request) {
			if ok, err := s.Serve(w, r, digest, ""); !ok {
				http.Error(w, fmt.Sprint("miss ", err), 500)
			}
		}},
	}
}

// BenchmarkWarm64MiB: GET of a cached 64 MiB blob through Serve, against
// a plain file handler and memory.
func BenchmarkWarm64MiB(b *testing.B) { runPeers(b, benchBig, warmPeers(b, benchBig)) }

// BenchmarkWarm4KiB: the same for a 4 KiB blob: per-request latency.
func BenchmarkWarm4KiB(b *testing.B) { runPeers(b, 4<<10, warmPeers(b, 4<<10)) }

// BenchmarkCold64MiB: GET of a 64 MiB blob that is not cached: direct
// from the upstream (memory, loopback); through a handler that only
// copies the upstream's answer (passthrough: the cost of the second
// hop); and through a handler that fetches it into the cache while
// streaming it (the blob is removed before each GET, untimed). "cold"
// times the client's GET; the file is synced and renamed after the
// client has its last byte. "cold+commit" also waits for that.
func BenchmarkCold64MiB(b *testing.B) {
	data, digest := testBlob(benchBig, 201)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer up.Close()
	upClient := up.Client()
	fetch := func(ctx context.Context) (io.ReadCloser, int64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, up.URL, nil)
		if err != nil {
			return nil, 0, err
		}
		resp, err := upClient.Do(req)
		if err != nil {
			return nil, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("upstream: %s", resp.Status)
		}
		return resp.Body, resp.ContentLength, nil
	}
	s := openStore(b, b.TempDir(), Options{})
	through := func(w http.ResponseWriter, r *http.Request) {
		rd, err := s.Fetch(r.Context(), digest, benchBig, fetch)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer rd.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
		if _, err := rd.WriteTo(w); err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	evict := func(b *testing.B) {
		waitIdle(b, s)
		for {
			err := s.Remove(digest)
			if err == nil {
				return
			}
			if !errors.Is(err, ErrInUse) {
				b.Fatal(err)
			}
			time.Sleep(100 * time.Microsecond) // the handler's Close is racing the client
		}
	}
	passthrough := func(w http.ResponseWriter, r *http.Request) {
		body, size, err := fetch(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer body.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		io.Copy(w, body) //nolint:errcheck // the client sees a short body
	}
	runPeers(b, benchBig, []peer{
		{name: "direct", handler: up.Config.Handler.ServeHTTP},
		{name: "passthrough", handler: passthrough},
		{name: "cold", handler: through, between: evict},
		{name: "cold+commit", handler: through, between: evict, after: func(b *testing.B) { waitIdle(b, s) }},
	})
}
