package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/trust/verify"
)

// tamper lets a test make the upstream registry lie about one path.
type tamper struct {
	mu        sync.Mutex
	path      string
	body      []byte
	manifests atomic.Int64 // manifest requests the upstream saw
}

func (tp *tamper) set(path string, body []byte) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.path, tp.body = path, body
}

func (tp *tamper) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		path, body := tp.path, tp.body
		tp.mu.Unlock()
		if strings.Contains(r.URL.Path, "/manifests/") {
			tp.manifests.Add(1)
		}
		if path != "" && r.URL.Path == path {
			if strings.Contains(path, "/manifests/") {
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
			return
		}
		h.ServeHTTP(w, r)
	})
}

type env struct {
	t         testing.TB
	opts      Options
	upstream  string // host:port of the upstream registry
	upServer  *httptest.Server
	trust     string
	proxy     string // host:port of the proxy
	cfg       publish.Config
	tamper    *tamper
	now       time.Time
	trustDown atomic.Bool
	// trustRequests counts the requests the trust server was sent.
	trustRequests atomic.Int64
	// trustReplay maps a trust server path to bytes served instead (a
	// compromised or replaying trust server).
	trustReplay sync.Map
}

func newEnv(t testing.TB, mutate func(*Options)) *env {
	t.Helper()
	return newEnvWrapped(t, nil, mutate)
}

// newEnvWrapped is newEnv with the upstream registry behind wrap (auth,
// redirects, a record of requests).
func newEnvWrapped(t testing.TB, wrap func(http.Handler) http.Handler, mutate func(*Options)) *env {
	t.Helper()
	e := &env{t: t, tamper: &tamper{}, now: time.Now()}
	var upstream http.Handler = e.tamper.wrap(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true)))
	if wrap != nil {
		upstream = wrap(upstream)
	}
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	e.upServer = up
	e.upstream = strings.TrimPrefix(up.URL, "http://")
	// The trust server sits behind a switch so tests can take it down.
	real, _ := url.Parse(testservers.TrustServer(t))
	rp := httputil.NewSingleHostReverseProxy(real)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.trustRequests.Add(1)
		if e.trustDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if body, ok := e.trustReplay.Load(r.URL.Path); ok {
			w.Write(body.([]byte))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	e.trust = ts.URL
	e.cfg = publish.Config{
		TrustDir: t.TempDir(),
		Server:   e.trust,
		Passphrases: &keys.Retriever{Getenv: func(k string) string {
			return map[string]string{"SIGNET_ROOT_PASSPHRASE": "root passphrase", "SIGNET_REPOSITORY_PASSPHRASE": "repo passphrase"}[k]
		}},
	}
	opts := Options{
		Upstreams: []Upstream{{URL: up.URL}},
		Policy: Policy{Rules: []Rule{{
			Name: "quick-start", Match: e.upstream + "/*", TrustServer: e.trust, Pin: verify.Pin{TOFU: true},
		}}},
		Now: func() time.Time { return e.now },
	}
	if mutate != nil {
		mutate(&opts)
	}
	e.opts = opts
	e.proxy = e.newReplica()
	return e
}

// newReplica starts another proxy with the same options (a stateless
// replica: nothing cached) and returns its host:port.
func (e *env) newReplica() string {
	e.t.Helper()
	p, err := New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ps := httptest.NewServer(p.Handler())
	e.t.Cleanup(ps.Close)
	return strings.TrimPrefix(ps.URL, "http://")
}

// push pushes a random image upstream and returns it.
func (e *env) push(repoTag string) v1.Image {
	e.t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		e.t.Fatal(err)
	}
	tag, _ := name.NewTag(e.upstream + "/" + repoTag)
	if err := remote.Write(tag, img); err != nil {
		e.t.Fatal(err)
	}
	return img
}

func (e *env) sign(repoTag string) {
	e.t.Helper()
	if _, err := publish.Sign(context.Background(), e.cfg, []publish.Request{{Image: e.upstream + "/" + repoTag}}); err != nil {
		e.t.Fatalf("sign %s: %v", repoTag, err)
	}
}

// pull pulls through the proxy as crane does (go-containerregistry) and
// reads every layer.
func (e *env) pull(repoRef string, opts ...remote.Option) (v1.Image, error) {
	ref, err := name.ParseReference(e.proxy + "/" + repoRef)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			return nil, err
		}
		if err := rc.Close(); err != nil {
			return nil, err
		}
	}
	return img, nil
}

func denied(t *testing.T, err error, want string) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want 403 DENIED containing %q", err, want)
	}
}

func digestOf(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestSignedPulledUnsignedDenied(t *testing.T) {
	e := newEnv(t, nil)
	signedImg := e.push("team/app:v1")
	e.sign("team/app:v1")
	e.push("team/app:unsigned")

	got, err := e.pull("team/app:v1")
	if err != nil {
		t.Fatalf("pull signed: %v", err)
	}
	if digestOf(t, got) != digestOf(t, signedImg) {
		t.Fatalf("pulled %s, signed %s", digestOf(t, got), digestOf(t, signedImg))
	}
	_, err = e.pull("team/app:unsigned")
	denied(t, err, "tag not signed in targets/releases or targets")
	_, err = e.pull("team/other:v1")
	denied(t, err, "no trust data")

	// The tag moves upstream: the proxy still serves the signed digest.
	e.push("team/app:v1")
	got, err = e.pull("team/app:v1")
	if err != nil || digestOf(t, got) != digestOf(t, signedImg) {
		t.Fatalf("after the tag moved: %v, pulled %v", err, got)
	}
	// A digest no signed tag references is denied.
	moved, _ := remote.Head(mustRef(t, e.upstream+"/team/app:v1"))
	_, err = e.pull("team/app@" + moved.Digest.String())
	denied(t, err, "digest not signed and not referenced")
	// Pushing through the proxy is refused.
	err = remote.Write(mustTag(t, e.proxy+"/team/app:pushed"), signedImg)
	if err == nil || !strings.Contains(err.Error(), "pulls only") {
		t.Fatalf("push through the proxy: %v", err)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustTag(t *testing.T, s string) name.Tag {
	r, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUpstreamLiesAboutSignedDigest: the upstream serves other bytes for
// the signed digest; the proxy denies and sends none of them.
func TestUpstreamLiesAboutSignedDigest(t *testing.T) {
	e := newEnv(t, nil)
	img := e.push("team/app:v1")
	e.sign("team/app:v1")
	evil := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:evil"}}`)
	e.tamper.set("/v2/team/app/manifests/"+digestOf(t, img), evil)

	resp, err := http.Get("http://" + e.proxy + "/v2/team/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte("DENIED")) || bytes.Contains(body, []byte("evil")) {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if !bytes.Contains(body, []byte("do not hash to the signed digest")) && !bytes.Contains(body, []byte("the signature says")) {
		t.Fatalf("denial does not say why: %s", body)
	}
}

// TestUpstreamLiesAboutBlob: the upstream serves other bytes of the same
// length for a layer. A small blob is refused outright; a large one is
// cut before its last byte, so no client ever holds a complete body.
// With a blob cache, nothing is cached either.
func TestUpstreamLiesAboutBlob(t *testing.T) {
	for _, c := range []struct {
		size   int64
		cached bool
	}{{4 << 10, false}, {3 << 20, false}, {4 << 10, true}, {3 << 20, true}} {
		size := c.size
		t.Run(fmt.Sprintf("%d/cache=%v", size, c.cached), func(t *testing.T) {
			var store *blobcache.Store
			if c.cached {
				store = openStore(t, t.TempDir())
			}
			e := newEnv(t, func(o *Options) { o.Store = store })
			img, err := random.Image(size, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(mustTag(t, e.upstream+"/team/app:v1"), img); err != nil {
				t.Fatal(err)
			}
			e.sign("team/app:v1")
			layers, _ := img.Layers()
			d, _ := layers[0].Digest()
			n, _ := layers[0].Size()
			path := "/v2/team/app/blobs/" + d.String()
			// Allow the blob first (the proxy learns it from the manifest).
			if _, err := remote.Image(mustRef(t, e.proxy+"/team/app:v1")); err != nil {
				t.Fatal(err)
			}
			e.tamper.set(path, bytes.Repeat([]byte{'x'}, int(n)))
			resp, err := http.Get("http://" + e.proxy + path)
			if err != nil {
				return // connection cut before headers: refused
			}
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusForbidden && bytes.Contains(body, []byte("do not hash to the digest")):
			case resp.StatusCode == http.StatusOK && rerr != nil && int64(len(body)) < n:
			default:
				t.Fatalf("status %d, read %d of %d bytes, read error %v: a complete tampered blob reached the client", resp.StatusCode, len(body), n, rerr)
			}
			if store != nil {
				if _, ok, _ := store.Get(d.String()); ok {
					t.Fatal("the tampered blob was cached")
				}
			}
		})
	}
}

// TestUnknownDigestsDoNotAmplify: a stream of requests for digests no
// signed tag references costs one walk of the signed manifests, not one
// per request.
func TestUnknownDigestsDoNotAmplify(t *testing.T) {
	e := newEnv(t, nil)
	for _, tag := range []string{"a", "b", "c"} {
		e.push("team/app:" + tag)
		e.sign("team/app:" + tag)
	}
	e.tamper.manifests.Store(0) // count only what the proxy asks
	for i := 0; i < 20; i++ {
		d := fmt.Sprintf("sha256:%064x", i)
		resp, err := http.Get("http://" + e.proxy + "/v2/team/app/blobs/" + d)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("unknown blob %s: %d", d, resp.StatusCode)
		}
	}
	if n := e.tamper.manifests.Load(); n != 3 {
		t.Fatalf("upstream saw %d manifest requests for 20 unknown digests, want 3 (one walk of the 3 signed manifests)", n)
	}
}

func TestMultiArchIndexForAPlatform(t *testing.T) {
	e := newEnv(t, nil)
	idx := testservers.PushRandomIndex(t, e.upstream+"/team/multi:1")
	e.sign("team/multi:1")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var armDigest string
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.Architecture == "arm64" {
			armDigest = m.Digest.String()
		}
	}
	img, err := e.pull("team/multi:1", remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatalf("pull arm64 through the proxy: %v", err)
	}
	if digestOf(t, img) != armDigest {
		t.Fatalf("pulled %s, want the arm64 child %s", digestOf(t, img), armDigest)
	}
	// A fresh replica, which has served nothing yet, allows the child
	// and its blobs by walking the signed index.
	replica := e.newReplica()
	ref := mustRef(t, replica+"/team/multi@"+armDigest)
	child, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("child by digest on a fresh replica: %v", err)
	}
	ls, _ := child.Layers()
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatalf("layer on a fresh replica: %v", err)
	}
	io.Copy(io.Discard, rc)
	if err := rc.Close(); err != nil {
		t.Fatalf("layer on a fresh replica: %v", err)
	}
}

func TestFrozenTrustDataDenied(t *testing.T) {
	e := newEnv(t, nil)
	e.push("team/app:v1")
	e.sign("team/app:v1")
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(15 * 24 * time.Hour) // past the timestamp's 14 days
	_, err := e.pull("team/app:v1")
	denied(t, err, "expired")
}

// TestTrustDataRolledBack: the trust server (or a man in the middle)
// replays an old timestamp after the proxy has seen a newer one; the
// proxy keeps its verified data while that is valid and never accepts the
// older state: a tag signed only in the newer state stays served, and
// once the verified data expires, pulls are denied.
func TestTrustDataRolledBack(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RefreshInterval = time.Second })
	e.push("team/app:v1")
	e.sign("team/app:v1")
	tsPath := "/v2/" + e.upstream + "/team/app/_trust/tuf/timestamp.json"
	resp, err := http.Get(e.trust + tsPath)
	if err != nil {
		t.Fatal(err)
	}
	oldTS, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e.push("team/app:v2")
	e.sign("team/app:v2")
	if _, err := e.pull("team/app:v2"); err != nil {
		t.Fatalf("pull v2 after signing: %v", err)
	}
	e.trustReplay.Store(tsPath, oldTS)
	e.now = e.now.Add(time.Hour) // refresh due: it sees the old timestamp
	if _, err := e.pull("team/app:v2"); err != nil {
		t.Fatalf("the rolled-back timestamp made the proxy forget v2: %v", err)
	}
	e.now = e.now.Add(15 * 24 * time.Hour)
	_, err = e.pull("team/app:v2")
	denied(t, err, "rollback")
}

// TestTrustServerDown: with the trust server down the proxy keeps serving
// from verified trust data until its timestamp expires, then denies.
func TestTrustServerDown(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RefreshInterval = time.Second })
	e.push("team/app:v1")
	e.sign("team/app:v1")
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatal(err)
	}
	e.trustDown.Store(true)
	e.now = e.now.Add(time.Hour) // refresh due, server down, data still valid
	if _, err := e.pull("team/app:v1"); err != nil {
		t.Fatalf("pull with the trust server down, before expiry: %v", err)
	}
	e.now = e.now.Add(15 * 24 * time.Hour)
	_, err := e.pull("team/app:v1")
	denied(t, err, "trust server unreachable and no unexpired verified trust data")
}

func TestWarnAndAllowModes(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Policy.Rules[0].Mode = ModeWarn
	})
	e.push("team/app:unsigned")
	resp, err := http.Get("http://" + e.proxy + "/v2/team/app/manifests/unsigned")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Warning"), "served unverified") {
		t.Fatalf("warn mode: %d %q", resp.StatusCode, resp.Header.Get("Warning"))
	}
}
