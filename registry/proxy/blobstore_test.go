package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/registry/blobcache/bucket"
)

// upCounter counts the GET requests the upstream registry saw, by path,
// and can hold blob answers back (so that concurrent pulls overlap).
type upCounter struct {
	mu    sync.Mutex
	gets  map[string]int
	delay atomic.Int64 // nanoseconds before a blob GET is answered
}

func (u *upCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			u.mu.Lock()
			if u.gets == nil {
				u.gets = map[string]int{}
			}
			u.gets[r.URL.Path]++
			u.mu.Unlock()
			if d := u.delay.Load(); d > 0 && strings.Contains(r.URL.Path, "/blobs/") {
				time.Sleep(time.Duration(d))
			}
		}
		h.ServeHTTP(w, r)
	})
}

// count is the GETs of paths containing sub.
func (u *upCounter) count(sub string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for p, k := range u.gets {
		if strings.Contains(p, sub) {
			n += k
		}
	}
	return n
}

// cachedFile waits up to 10 s for the cached file of digest in dir (a
// fetch is committed after its client got the last byte) and returns it.
func cachedFile(t *testing.T, dir, digest string) (string, []byte) {
	t.Helper()
	file := filepath.Join(dir, "sha256", strings.TrimPrefix(digest, "sha256:"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		raw, err := os.ReadFile(file)
		if err == nil {
			return file, raw
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not cached: %v", digest, err)
		}
	}
}

// openStore opens a blob cache in dir, closed when the test ends.
func openStore(t testing.TB, dir string) *blobcache.Store {
	t.Helper()
	s, err := blobcache.Open(dir, blobcache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// cacheEnv is an env whose proxy has a blob cache in dir (a new folder
// if ""), with the upstream's GETs counted.
func cacheEnv(t *testing.T, dir string, mutate func(*Options)) (*env, *upCounter, *blobcache.Store) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	uc := &upCounter{}
	store := openStore(t, dir)
	e := newEnvWrapped(t, uc.wrap, func(o *Options) {
		o.Store = store
		if mutate != nil {
			mutate(o)
		}
	})
	return e, uc, store
}

// replicaWith starts another proxy with e's options and this store.
func (e *env) replicaWith(store *blobcache.Store) string {
	e.t.Helper()
	opts := e.opts
	defer func() { e.opts = opts }()
	e.opts.Store = store
	return e.newReplica()
}

// pushLayer pushes and signs an image of one random layer of size
// bytes, and returns the layer's bytes and digest and the manifest's
// digest.
func (e *env) pushLayer(repoTag string, size int) (data []byte, layer, manifest string) {
	e.t.Helper()
	data = make([]byte, size)
	rand.Read(data)
	l := static.NewLayer(data, types.OCILayer)
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		e.t.Fatal(err)
	}
	tag, err := name.NewTag(e.upstream + "/" + repoTag)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		e.t.Fatal(err)
	}
	e.sign(repoTag)
	ld, _ := l.Digest()
	md, _ := img.Digest()
	return data, ld.String(), md.String()
}

// get sends a request to the proxy and reads the answer.
func get(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: %d, read after %d bytes: %v", method, url, resp.StatusCode, len(body), err)
	}
	return resp, body
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestCacheWarmPull: the second pull of an image is served without a
// single upstream request for its manifest or blobs, and the bytes are
// right.
func TestCacheWarmPull(t *testing.T) {
	dir := t.TempDir()
	e, uc, store := cacheEnv(t, dir, nil)
	data, layer, _ := e.pushLayer("team/app:v1", 3<<20)
	img := e.push("team/small:v1") // small layers (read whole, kept in memory too)
	e.sign("team/small:v1")
	for _, ref := range []string{"team/app:v1", "team/small:v1"} {
		if _, err := e.pull(ref); err != nil {
			t.Fatalf("cold pull %s: %v", ref, err)
		}
	}
	blobs, manifests := uc.count("/blobs/"), uc.count("/manifests/")
	if blobs == 0 {
		t.Fatal("the cold pulls fetched no blob upstream")
	}
	cachedFile(t, dir, layer)
	for _, ref := range []string{"team/app:v1", "team/small:v1"} {
		got, err := e.pull(ref)
		if err != nil {
			t.Fatalf("warm pull %s: %v", ref, err)
		}
		if ref == "team/small:v1" && digestOf(t, got) != digestOf(t, img) {
			t.Fatalf("warm pull of %s: %s", ref, digestOf(t, got))
		}
	}
	if n := uc.count("/blobs/") - blobs; n != 0 {
		t.Errorf("the warm pulls sent %d blob GETs upstream, want 0", n)
	}
	if n := uc.count("/manifests/") - manifests; n != 0 {
		t.Errorf("the warm pulls sent %d manifest GETs upstream, want 0", n)
	}
	resp, body := get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/blobs/"+layer)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) || resp.Header.Get("Docker-Content-Digest") != layer ||
		resp.Header.Get("ETag") != `"`+layer+`"` || resp.ContentLength != int64(len(data)) {
		t.Fatalf("cached blob: %d, %d bytes, headers %v", resp.StatusCode, len(body), resp.Header)
	}
	if st := store.Stats(); st.Hits == 0 || st.Objects < 3 {
		t.Errorf("store stats after warm pulls: %+v", st)
	}
}

// TestCacheRange: a Range request on a cached blob is answered 206 with
// exactly those bytes; on a blob not cached, 200 with the whole blob,
// after which the blob is cached and the same request gets 206.
func TestCacheRange(t *testing.T) {
	e, uc, _ := cacheEnv(t, "", nil)
	data, layer, _ := e.pushLayer("team/app:v1", 3<<20)
	url := "http://" + e.proxy + "/v2/team/app/blobs/" + layer
	get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/manifests/v1") // allows the layer

	resp, body := get(t, http.MethodGet, url, "Range", "bytes=1000-")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("Range on a blob not cached: %d with %d bytes, want 200 with the whole %d", resp.StatusCode, len(body), len(data))
	}
	for _, c := range []struct {
		rng        string
		start, end int
	}{
		{"bytes=1000-", 1000, len(data) - 1},
		{"bytes=0-0", 0, 0},
		{"bytes=100-199", 100, 199},
		{"bytes=-10", len(data) - 10, len(data) - 1},
		{"bytes=5-99999999", 5, len(data) - 1},
	} {
		resp, body := get(t, http.MethodGet, url, "Range", c.rng)
		want := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, len(data))
		if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != want || !bytes.Equal(body, data[c.start:c.end+1]) {
			t.Errorf("Range %s on a cached blob: %d, Content-Range %q, %d bytes; want 206, %q", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body), want)
		}
	}
	resp, _ = get(t, http.MethodGet, url, "Range", fmt.Sprintf("bytes=%d-", len(data)))
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d, want 416", resp.StatusCode)
	}
	if n := uc.count("/blobs/" + layer); n != 1 {
		t.Errorf("upstream GETs of the layer: %d, want 1", n)
	}
	// HEAD of a cached blob: its length, no upstream request.
	resp, _ = get(t, http.MethodHead, url)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(data)) || uc.count("/blobs/"+layer) != 1 {
		t.Errorf("HEAD of a cached blob: %d, length %d, upstream GETs %d", resp.StatusCode, resp.ContentLength, uc.count("/blobs/"+layer))
	}
}

// TestCacheResumeAfterCut: a client that reads part of a blob not cached
// and goes away, then resumes with Range, gets 206 with the rest: the
// fetch it left was completed into the cache, once.
func TestCacheResumeAfterCut(t *testing.T) {
	e, uc, _ := cacheEnv(t, "", nil)
	data, layer, _ := e.pushLayer("team/app:v1", 4<<20)
	get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/manifests/v1")
	path := "/v2/team/app/blobs/" + layer

	conn, err := net.Dial("tcp", e.proxy)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, e.proxy)
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatal(err)
	}
	conn.Close() // cut: about 1 MiB read, headers included

	const from = 512 << 10
	resp, body := get(t, http.MethodGet, "http://"+e.proxy+path, "Range", fmt.Sprintf("bytes=%d-", from))
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[from:]) {
		t.Fatalf("resume: %d with %d bytes (Content-Range %q), want 206 with %d", resp.StatusCode, len(body), resp.Header.Get("Content-Range"), len(data)-from)
	}
	if n := uc.count(path); n != 1 {
		t.Errorf("upstream GETs of the layer: %d, want 1", n)
	}
}

// TestCacheConcurrentPulls: 100 clients pull one blob that is not cached
// at the same time: the upstream is asked once, and every client gets
// the right bytes.
func TestCacheConcurrentPulls(t *testing.T) {
	e, uc, store := cacheEnv(t, "", nil)
	data, layer, _ := e.pushLayer("team/app:v1", 8<<20)
	get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/manifests/v1")
	uc.delay.Store(int64(200 * time.Millisecond)) // the pulls overlap
	want := sha(data)
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			resp, err := client.Get("http://" + e.proxy + "/v2/team/app/blobs/" + layer)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			if _, err := io.Copy(h, resp.Body); err != nil {
				errs <- err
				return
			}
			if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); resp.StatusCode != http.StatusOK || got != want {
				errs <- fmt.Errorf("%d, bytes hash to %s", resp.StatusCode, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := uc.count("/blobs/" + layer); n != 1 {
		t.Errorf("100 concurrent pulls sent %d upstream GETs, want 1", n)
	}
	st := store.Stats()
	t.Logf("store: %d upstream fetches, %d shared, %d hits", st.UpstreamFetches, st.Joins, st.Hits)
	if st.Joins == 0 {
		t.Errorf("no pull shared the fetch: %+v", st)
	}
}

// TestCacheRevokedTag: a tag revoked in the trust data is no longer
// served, by tag or digest, though its manifest and blobs are cached.
func TestCacheRevokedTag(t *testing.T) {
	e, uc, _ := cacheEnv(t, "", func(o *Options) { o.RefreshInterval = time.Second })
	_, layer, digest := e.pushLayer("team/app:v1", 2<<20)
	e.push("team/app:v2")
	e.sign("team/app:v2")
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Revoke(context.Background(), e.cfg, e.upstream+"/team/app:v1"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	e.now = e.now.Add(time.Minute) // refresh due
	for _, path := range []string{"/manifests/v1", "/manifests/" + digest, "/blobs/" + layer} {
		resp, body := get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app"+path)
		if resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte("DENIED")) {
			t.Errorf("%s after the tag was revoked: %d %s", path, resp.StatusCode, body)
		}
	}
	if _, err := e.pull("team/app:v2"); err != nil {
		t.Errorf("v2, still signed: %v", err)
	}
	// Restarted on the same cache: still denied.
	replica := e.replicaWith(e.opts.Store)
	resp, _ := get(t, http.MethodGet, "http://"+replica+"/v2/team/app/manifests/v1")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("revoked tag on a fresh proxy over the same cache: %d", resp.StatusCode)
	}
	_ = uc
}

// TestCacheUpstreamDown: with the upstream down, what is cached and still
// signed is served, by a running proxy and by one started afresh over the
// same cache; what is not cached is 503 naming the upstream.
func TestCacheUpstreamDown(t *testing.T) {
	dir := t.TempDir()
	e, _, store := cacheEnv(t, dir, nil)
	data, layer, digest := e.pushLayer("team/app:v1", 2<<20)
	_, otherLayer, _ := e.pushLayer("team/other:v1", 2<<20)
	e.push("team/app:v2")
	e.sign("team/app:v2")
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatal(err)
	}
	get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/other/manifests/v1") // the manifest only
	e.upServer.Close()

	check := func(proxy string) {
		t.Helper()
		if _, err := e.pull("team/app:v1"); proxy == e.proxy && err != nil {
			t.Errorf("cached signed image with the upstream down: %v", err)
		}
		for _, path := range []string{"/v2/team/app/manifests/v1", "/v2/team/app/manifests/" + digest} {
			resp, body := get(t, http.MethodGet, "http://"+proxy+path)
			if resp.StatusCode != http.StatusOK || sha(body) != digest {
				t.Errorf("%s with the upstream down: %d", path, resp.StatusCode)
			}
		}
		resp, body := get(t, http.MethodGet, "http://"+proxy+"/v2/team/app/blobs/"+layer)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("cached blob with the upstream down: %d, %d bytes", resp.StatusCode, len(body))
		}
		for _, path := range []string{"/v2/team/app/manifests/v2", "/v2/team/other/blobs/" + otherLayer} {
			resp, body := get(t, http.MethodGet, "http://"+proxy+path)
			if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(e.upServer.URL)) || !bytes.Contains(body, []byte("unreachable")) {
				t.Errorf("%s (not cached) with the upstream down: %d %s, want 503 naming the upstream", path, resp.StatusCode, body)
			}
		}
	}
	check(e.proxy)
	// A restart over the same folder: no memory of anything.
	store.Close()
	store2 := openStore(t, dir)
	check(e.replicaWith(store2))
}

// TestSharedCacheReplicas: replicas on one shared bucket (a file://
// bucket here; registry/blobcache/bucket tests S3 too). A blob one
// replica fetched is served by another without an upstream GET, and
// with the upstream down a replica that never pulled the image serves
// it whole, manifests included, from the bucket.
func TestSharedCacheReplicas(t *testing.T) {
	u := "file://" + filepath.ToSlash(t.TempDir())
	sharedStore := func() *blobcache.Store {
		b, err := bucket.Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		s, err := blobcache.Open(t.TempDir(), blobcache.Options{Shared: b})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storeA := sharedStore()
	uc := &upCounter{}
	e := newEnvWrapped(t, uc.wrap, func(o *Options) { o.Store = storeA })
	data, layer, digest := e.pushLayer("team/app:v1", 2<<20)
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatal(err)
	}
	// The manifest and the layer (the pull reads no config); the copies
	// run in the background.
	for i := 0; storeA.Stats().Shared.Puts < 2; i++ {
		if i == 1000 {
			t.Fatalf("replica a did not copy to the bucket: %+v", storeA.Stats().Shared)
		}
		time.Sleep(10 * time.Millisecond)
	}

	b := e.replicaWith(sharedStore())
	before := uc.count("/blobs/" + layer)
	resp, body := get(t, http.MethodGet, "http://"+b+"/v2/team/app/blobs/"+layer)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("replica b: %d, %d bytes", resp.StatusCode, len(body))
	}
	if n := uc.count("/blobs/" + layer); n != before {
		t.Errorf("replica b asked the upstream for a blob in the bucket (%d GETs)", n-before)
	}

	e.upServer.Close()
	c := e.replicaWith(sharedStore())
	for _, path := range []string{"/v2/team/app/manifests/v1", "/v2/team/app/manifests/" + digest} {
		resp, body := get(t, http.MethodGet, "http://"+c+path)
		if resp.StatusCode != http.StatusOK || sha(body) != digest {
			t.Errorf("replica c, %s with the upstream down: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, body = get(t, http.MethodGet, "http://"+c+"/v2/team/app/blobs/"+layer)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("replica c, layer with the upstream down: %d, %d bytes", resp.StatusCode, len(body))
	}
	// Not signed: the bucket changes no decision.
	resp, _ = get(t, http.MethodGet, "http://"+c+"/v2/team/app/manifests/v9")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned tag through replica c: %d, want 403", resp.StatusCode)
	}
}

// TestCacheCorruptFileRefetched: a cached file changed on disk while no
// proxy ran is found at its first use by the next proxy over the same
// folder, deleted and fetched again.
func TestCacheCorruptFileRefetched(t *testing.T) {
	dir := t.TempDir()
	e, uc, store := cacheEnv(t, dir, nil)
	data, layer, _ := e.pushLayer("team/app:v1", 2<<20)
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatal(err)
	}
	file, raw := cachedFile(t, dir, layer)
	store.Close()
	raw[len(raw)/2] ^= 0x40
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	store2 := openStore(t, dir)
	proxy := e.replicaWith(store2)
	before := uc.count("/blobs/" + layer)
	resp, _ := get(t, http.MethodGet, "http://"+proxy+"/v2/team/app/manifests/v1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: %d", resp.StatusCode)
	}
	resp, body := get(t, http.MethodGet, "http://"+proxy+"/v2/team/app/blobs/"+layer)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("blob whose cached file was corrupt: %d, %d bytes (right: %v)", resp.StatusCode, len(body), bytes.Equal(body, data))
	}
	if n := uc.count("/blobs/"+layer) - before; n != 1 {
		t.Errorf("upstream GETs after the corruption: %d, want 1", n)
	}
	if st := store2.Stats(); st.Corrupt != 1 {
		t.Errorf("corrupt files found: %d, want 1", st.Corrupt)
	}
	if _, fixed := cachedFile(t, dir, layer); !bytes.Equal(fixed, data) {
		t.Errorf("the cached file was not replaced by the right bytes")
	}
}

// TestScrubCache: the scrub finds a file changed while the proxy runs.
func TestScrubCache(t *testing.T) {
	dir := t.TempDir()
	e, _, store := cacheEnv(t, dir, nil)
	_, layer, _ := e.pushLayer("team/app:v1", 64<<10)
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatal(err)
	}
	file, raw := cachedFile(t, dir, layer)
	raw[0] ^= 1
	os.WriteFile(file, raw, 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ScrubCache(ctx, store, 10*time.Millisecond, nil); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for store.Stats().Corrupt == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if store.Stats().Corrupt != 1 {
		t.Fatalf("the scrub found %d corrupt files, want 1", store.Stats().Corrupt)
	}
}

// TestNoCache: without a store the proxy streams every blob from the
// upstream, and ignores Range (the whole blob, 200).
func TestNoCache(t *testing.T) {
	uc := &upCounter{}
	e := newEnvWrapped(t, uc.wrap, nil)
	data, layer, _ := e.pushLayer("team/app:v1", 2<<20)
	get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/manifests/v1")
	for range 2 {
		resp, body := get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/blobs/"+layer, "Range", "bytes=10-")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Fatalf("no cache, Range: %d with %d bytes, want 200 with the whole blob", resp.StatusCode, len(body))
		}
	}
	if n := uc.count("/blobs/" + layer); n != 2 {
		t.Errorf("upstream GETs: %d, want 2", n)
	}
	resp, body := get(t, http.MethodGet, "http://"+e.proxy+"/_signet/status")
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte(`"cache"`)) {
		t.Errorf("status without a cache: %s", body)
	}
}

// TestCacheMetricsAndStatus: the store's figures are exported.
func TestCacheMetricsAndStatus(t *testing.T) {
	dir := t.TempDir()
	e, _, _ := cacheEnv(t, dir, nil)
	_, layer, _ := e.pushLayer("team/app:v1", 2<<20)
	for range 2 {
		if _, err := e.pull("team/app:v1"); err != nil {
			t.Fatal(err)
		}
		cachedFile(t, dir, layer) // committed: the next pull is a hit
	}
	_, body := get(t, http.MethodGet, "http://"+e.proxy+"/metrics")
	for _, m := range []string{"signet_proxy_blobcache_hits_total", "signet_proxy_blobcache_misses_total", "signet_proxy_blobcache_joined_fetches_total",
		`signet_proxy_blobcache_served_bytes_total{source="cache"}`, `signet_proxy_blobcache_served_bytes_total{source="upstream"}`,
		"signet_proxy_blobcache_size_bytes", "signet_proxy_blobcache_objects", "signet_proxy_blobcache_evictions_total", "signet_proxy_blobcache_corrupt_total"} {
		if !bytes.Contains(body, []byte(m)) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	_, body = get(t, http.MethodGet, "http://"+e.proxy+"/_signet/status")
	var st status
	if err := json.Unmarshal(body, &st); err != nil || st.Cache == nil || st.Cache.Objects < 2 || st.Cache.Hits == 0 {
		t.Errorf("status: %s (%v)", body, err)
	}
}

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		h          string
		size       int64
		start, end int64
		status     int
	}{
		{"bytes=0-99", 1000, 0, 99, 206},
		{"bytes=100-", 1000, 100, 999, 206},
		{"bytes=-100", 1000, 900, 999, 206},
		{"bytes=-5000", 1000, 0, 999, 206},
		{"bytes=990-5000", 1000, 990, 999, 206},
		{"bytes=1000-", 1000, 0, 0, 416},
		{"bytes=-0", 1000, 0, 0, 416},
		{"bytes=0-", 0, 0, 0, 416},
		{"bytes=5-4", 1000, 0, 0, 200},
		{"bytes=0-1,5-9", 1000, 0, 0, 200},
		{"items=0-1", 1000, 0, 0, 200},
		{"bytes=a-b", 1000, 0, 0, 200},
		{"bytes=+1-2", 1000, 0, 0, 200},
		{"bytes=-", 1000, 0, 0, 200},
		{"bytes=99999999999999999999-", 1000, 0, 0, 200},
	} {
		start, end, status := parseRange(c.h, c.size)
		if status != c.status || status == 206 && (start != c.start || end != c.end) {
			t.Errorf("parseRange(%q, %d) = %d-%d %d, want %d-%d %d", c.h, c.size, start, end, status, c.start, c.end, c.status)
		}
	}
}

// FuzzParseRange: any header gives 200, 416, or a range inside the blob.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-1", "bytes=5-", "bytes= 1 - 2 ", "bytes=0-1,2-3", "bytes=--1"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		start, end, status := parseRange(h, size)
		switch status {
		case 200, 416:
		case 206:
			if start < 0 || start > end || end >= size {
				t.Fatalf("parseRange(%q, %d) = %d-%d", h, size, start, end)
			}
		default:
			t.Fatalf("parseRange(%q, %d): status %d", h, size, status)
		}
	})
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int64
		ok   bool
	}{
		{"20GiB", 20 << 30, true},
		{"20gib", 20 << 30, true},
		{"20G", 20 << 30, true},
		{"20GB", 20e9, true},
		{"1.5 GiB", 3 << 29, true},
		{"1073741824", 1 << 30, true},
		{"512MiB", 512 << 20, true},
		{"0", 0, true},
		{"", 0, false},
		{"GiB", 0, false},
		{"1.2.3G", 0, false},
		{"-1G", 0, false},
		{"20 PB", 0, false},
		{"99999999999TiB", 0, false},
	} {
		got, err := ParseSize(c.s)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d (ok %v)", c.s, got, err, c.want, c.ok)
		}
	}
}

func TestLoadConfigCache(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "policy.yaml")
		os.WriteFile(p, []byte("rules:\n  - match: \"x/*\"\n    mode: allow\n"+body), 0o600)
		return p
	}
	c, err := LoadConfig(write("cache:\n  dir: /var/cache/signet\n  size: 2GiB\n  scrub_interval: 0s\n  shared: s3://b?region=r\n"))
	if err != nil || c.Cache.Dir != "/var/cache/signet" || c.Cache.MaxBytes != 2<<30 || c.Cache.ScrubInterval == nil || *c.Cache.ScrubInterval != 0 || c.Cache.Disabled || c.Cache.Shared != "s3://b?region=r" {
		t.Errorf("cache section: %+v, %v", c.Cache, err)
	}
	c, err = LoadConfig(write(""))
	if err != nil || c.Cache.ScrubInterval != nil || c.Cache.MaxBytes != 0 {
		t.Errorf("no cache section: %+v, %v", c.Cache, err)
	}
	for body, want := range map[string]string{
		"cache:\n  size: lots\n":            "cache.size",
		"cache:\n  size: 0\n":               "cache.size",
		"cache:\n  scrub_interval: daily\n": "cache.scrub_interval",
		"cache:\n  dri: /x\n":               "field dri not found",
	} {
		if _, err := LoadConfig(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}

// TestCacheBlobNotServedAsManifest: the cache keeps blobs and manifests
// by digest alike; a cached blob (an image config) asked for as a
// manifest is not taken for one.
func TestCacheBlobNotServedAsManifest(t *testing.T) {
	dir := t.TempDir()
	e, _, _ := cacheEnv(t, dir, nil)
	img := e.push("team/app:v1")
	e.sign("team/app:v1")
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/manifests/v1")
	if resp, _ := get(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/blobs/"+cfg.String()); resp.StatusCode != http.StatusOK {
		t.Fatalf("config blob: %d", resp.StatusCode)
	}
	cachedFile(t, dir, cfg.String())
	replica := e.replicaWith(e.opts.Store) // nothing in memory
	get(t, http.MethodGet, "http://"+replica+"/v2/team/app/manifests/v1")
	resp, body := get(t, http.MethodGet, "http://"+replica+"/v2/team/app/manifests/"+cfg.String())
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("a config blob was served as a manifest: %s", body)
	}
}

// TestCacheSmallBlobsInMemory: small cached blobs are answered from
// memory (Range included), and still only while the trust data allows.
func TestCacheSmallBlobsInMemory(t *testing.T) {
	dir := t.TempDir()
	e, uc, _ := cacheEnv(t, dir, func(o *Options) { o.RefreshInterval = time.Second })
	data, layer, _ := e.pushLayer("team/app:v1", 10<<10)
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatal(err)
	}
	file, _ := cachedFile(t, dir, layer)
	if err := os.Remove(file); err != nil { // only memory has it now
		t.Fatal(err)
	}
	url := "http://" + e.proxy + "/v2/team/app/blobs/" + layer
	resp, body := get(t, http.MethodGet, url, "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[10:20]) || resp.Header.Get("Docker-Content-Digest") != layer {
		t.Fatalf("small blob from memory, Range: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, http.MethodGet, url)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) || uc.count("/blobs/"+layer) != 1 {
		t.Fatalf("small blob from memory: %d, %d bytes, %d upstream GETs", resp.StatusCode, len(body), uc.count("/blobs/"+layer))
	}
	if _, err := publish.Revoke(context.Background(), e.cfg, e.upstream+"/team/app:v1"); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute)
	if resp, _ := get(t, http.MethodGet, url); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("small blob of a revoked tag: %d", resp.StatusCode)
	}
}
