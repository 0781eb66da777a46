package blobcache_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"

	"github.com/signet-project/signet/registry/blobcache"
)

// A pull-through handler: serve from the cache, else stream one shared
// upstream fetch, aborting the response if the fetch fails.
func Example() {
	dir, err := os.MkdirTemp("", "blobcache-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := blobcache.Open(dir, blobcache.Options{MaxBytes: 1 << 30})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	layer := "hello, layer"
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(layer)))
	fromUpstream := func(ctx context.Context) (io.ReadCloser, int64, error) {
		// A real proxy GETs the blob from the registry with ctx.
		return io.NopCloser(strings.NewReader(layer)), int64(len(layer)), nil
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The proxy has decided that digest may be served.
		if ok, err := store.Serve(w, r, digest, "application/octet-stream"); ok {
			return
		} else if err != nil {
			log.Print(err) // the cache is unusable: fetch anyway
		}
		rd, err := store.Fetch(r.Context(), digest, -1, fromUpstream)
		if err != nil {
			http.Error(w, "upstream failed", http.StatusBadGateway)
			return
		}
		defer rd.Close()
		if rd.Size() >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
		}
		w.Header().Set("Docker-Content-Digest", digest)
		if _, err := io.Copy(w, rd); err != nil {
			// The last byte was held back: the client never sees a
			// complete wrong body.
			panic(http.ErrAbortHandler)
		}
	})

	for range 2 {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		fmt.Println(rec.Code, rec.Body.String())
	}
	// The second request is a hit, or joins the first fetch if it came
	// while the file was being synced: either way, one upstream fetch.
	fmt.Println("upstream fetches:", store.Stats().UpstreamFetches)
	// Output:
	// 200 hello, layer
	// 200 hello, layer
	// upstream fetches: 1
}
