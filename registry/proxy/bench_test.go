package proxy

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The benchmarks time one request directly from the upstream registry
// and the same request through the proxy, in one run, so their ratio is
// the proxy's cost: the upstream (go-containerregistry's registry, in
// memory), the trust server and the proxy run in the test process on
// loopback. Each benchmark logs the ratio proxy/direct of its final runs.

// benchClient is a keep-alive client as registry clients have.
func benchClient(b *testing.B) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// benchGet GETs url, reads the body into w and fails on anything but 200.
func benchGet(b *testing.B, c *http.Client, url string, w io.Writer, buf []byte) int64 {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.CopyBuffer(w, resp.Body, buf)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return n
}

// directVsProxy runs the sub-benchmarks direct and proxy on the same
// path and logs the ratio of their ns/op. With digest set, the client
// hashes what it reads and checks it, as docker and containerd do.
func directVsProxy(b *testing.B, e *env, path string, size int64, digest string) {
	c := benchClient(b)
	buf := make([]byte, 64<<10)
	var ns [2]float64
	for i, host := range []string{e.upstream, e.proxy} {
		url := "http://" + host + path
		b.Run([]string{"direct", "proxy"}[i], func(b *testing.B) {
			get := func() {
				if digest == "" {
					benchGet(b, c, url, io.Discard, buf)
					return
				}
				h := sha256.New()
				benchGet(b, c, url, h, buf)
				if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
					b.Fatalf("GET %s: got %s", url, got)
				}
			}
			get() // warm: connection, trust data, caches
			if size > 0 {
				b.SetBytes(size)
			}
			b.ResetTimer()
			for range b.N {
				get()
			}
			ns[i] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
	}
	if ns[0] > 0 && ns[1] > 0 {
		b.Logf("ratio proxy/direct (ns/op): %.2f", ns[1]/ns[0])
	}
}

// BenchmarkManifestByTag: GET a manifest by tag, directly and through
// the proxy with warm trust and manifest caches (no upstream request).
func BenchmarkManifestByTag(b *testing.B) {
	e := newEnv(b, nil)
	e.push("bench/app:v1")
	e.sign("bench/app:v1")
	directVsProxy(b, e, "/v2/bench/app/manifests/v1", 0, "")
}

// benchBlobBytes is the size of the blob streamed by BenchmarkBlob.
const benchBlobBytes = 32 << 20

// BenchmarkBlob: GET a 32 MiB blob of a signed image, directly and
// through the proxy, which streams it from the upstream and hashes it on
// the way. The client discards the bytes.
func BenchmarkBlob(b *testing.B) {
	e, digest := benchBlobEnv(b)
	directVsProxy(b, e, "/v2/bench/big/blobs/"+digest, benchBlobBytes, "")
}

// BenchmarkBlobHashingClient: the same with a client that hashes the
// blob and checks it, as docker and containerd do, so both paths pay for
// one client-side hash and the proxy path for the proxy's as well.
func BenchmarkBlobHashingClient(b *testing.B) {
	e, digest := benchBlobEnv(b)
	directVsProxy(b, e, "/v2/bench/big/blobs/"+digest, benchBlobBytes, digest)
}

// BenchmarkBlobCached: the 32 MiB blob from the proxy's blob cache
// (warm: the first, untimed GET fetched it), the client hashing it.
func BenchmarkBlobCached(b *testing.B) {
	e, digest := benchBlobEnv(b, func(o *Options) { o.Store = openStore(b, b.TempDir()) })
	directVsProxy(b, e, "/v2/bench/big/blobs/"+digest, benchBlobBytes, digest)
}

// benchBlobEnv pushes and signs an image with one random layer of
// benchBlobBytes and returns the layer's digest.
func benchBlobEnv(b *testing.B, opts ...func(*Options)) (*env, string) {
	var m func(*Options)
	if len(opts) > 0 {
		m = opts[0]
	}
	e := newEnv(b, m)
	data := make([]byte, benchBlobBytes)
	rand.Read(data)
	layer := static.NewLayer(data, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		b.Fatal(err)
	}
	tag, err := name.NewTag(e.upstream + "/bench/big:v1")
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		b.Fatal(err)
	}
	e.sign("bench/big:v1")
	d, err := layer.Digest()
	if err != nil {
		b.Fatal(err)
	}
	// The proxy serves a blob once a signed manifest names it.
	benchGet(b, benchClient(b), "http://"+e.proxy+"/v2/bench/big/manifests/v1", io.Discard, nil)
	return e, d.String()
}

// BenchmarkSmallBlobCached: a 4 KiB blob from the proxy's blob cache
// (warm), against the upstream serving it from memory: the cost of a
// cache hit per request.
func BenchmarkSmallBlobCached(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.Store = openStore(b, b.TempDir()) })
	data := make([]byte, 4<<10)
	rand.Read(data)
	layer := static.NewLayer(data, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		b.Fatal(err)
	}
	tag, err := name.NewTag(e.upstream + "/bench/small:v1")
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		b.Fatal(err)
	}
	e.sign("bench/small:v1")
	d, _ := layer.Digest()
	benchGet(b, benchClient(b), "http://"+e.proxy+"/v2/bench/small/manifests/v1", io.Discard, nil)
	directVsProxy(b, e, "/v2/bench/small/blobs/"+d.String(), 0, d.String())
}
