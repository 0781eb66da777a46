package engines

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-project/signet/internal/devtls"
	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testlog"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/registry/proxy"
	"github.com/signet-project/signet/trust/verify"
)

// The repositories every engine test pulls, in the upstream registry and
// (signed) in the trust server. The proxy's default upstream serves them
// by their own names; its "docker.io" upstream serves the same
// repositories as docker.io/<name> (GUN docker.io/<name>), to test the
// hosts.toml of a prefixed upstream.
const (
	repoApp = "team/app" // tags: signed, unsigned, moved
	repoBig = "team/big" // tag v1: signed, one layer of bigLayer bytes
	// hubPrefix is the prefixed upstream, named as Docker Hub is.
	hubPrefix = "docker.io"
	// bigLayer is large enough to stream through the proxy (it reads
	// blobs up to 1 MiB whole) and to be cut in the middle.
	bigLayer = 3 << 20
)

// world is the upstream registry and the trust server, with images
// pushed and signed.
type world struct {
	upstream string // host:port
	trustURL string
	cfg      publish.Config
	images   map[string]image // by "repo:tag", as pushed first (and signed)
	// movedTo is the image team/app:moved points to upstream now (not
	// signed).
	movedTo image
}

// image is an image in the upstream registry.
type image struct {
	digest string // manifest digest
	size   int64  // manifest size
	layer  string // digest of its one layer
	lsize  int64  // size of its layer (compressed, as served)
}

// passphrases unlock the keys signing makes (TOFU roots).
var passphrases = map[string]string{
	"DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE":       "engines root passphrase",
	"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "engines repository passphrase",
}

// newWorld starts the upstream registry and the trust server, and pushes:
//
//	team/app:signed    signed
//	team/app:unsigned  not signed
//	team/app:moved     signed, then moved upstream to another image
//	team/big:v1        signed, a layer of bigLayer bytes
//
// and signs team/app:signed for docker.io/team/app as well.
func newWorld(t *testing.T) *world {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	s := httptest.NewServer(reg)
	t.Cleanup(s.Close)
	w := &world{
		upstream: strings.TrimPrefix(s.URL, "http://"),
		trustURL: testservers.TrustServer(t),
		images:   map[string]image{},
	}
	w.cfg = publish.Config{
		TrustDir:    t.TempDir(),
		Server:      w.trustURL,
		Passphrases: &keys.Retriever{Getenv: func(k string) string { return passphrases[k] }},
	}
	for _, im := range []struct {
		repoTag    string
		layerBytes int64
	}{{repoApp + ":signed", 512}, {repoApp + ":unsigned", 512}, {repoApp + ":moved", 512}, {repoBig + ":v1", bigLayer}} {
		w.images[im.repoTag] = w.push(t, im.repoTag, im.layerBytes)
	}
	w.sign(t, w.upstream+"/"+repoApp, map[string]image{"signed": w.images[repoApp+":signed"], "moved": w.images[repoApp+":moved"]})
	w.sign(t, w.upstream+"/"+repoBig, map[string]image{"v1": w.images[repoBig+":v1"]})
	w.sign(t, hubPrefix+"/"+repoApp, map[string]image{"signed": w.images[repoApp+":signed"]})
	// Moved after signing: the proxy must keep serving the signed one.
	w.movedTo = w.push(t, repoApp+":moved", 512)
	return w
}

// push pushes a random one-layer image to repoTag upstream.
func (w *world) push(t *testing.T, repoTag string, layerBytes int64) image {
	t.Helper()
	img, err := random.Image(layerBytes, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(w.upstream+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push %s: %v", tag, err)
	}
	d, _ := img.Digest()
	raw, _ := img.RawManifest()
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	ls, _ := layers[0].Size()
	return image{digest: d.String(), size: int64(len(raw)), layer: ld.String(), lsize: ls}
}

// sign signs tags of repo (registry/name) as the given images, in one
// publish.
func (w *world) sign(t *testing.T, repo string, tags map[string]image) {
	t.Helper()
	var reqs []publish.Request
	for tag, im := range tags {
		reqs = append(reqs, publish.Request{Image: repo + ":" + tag, Digest: im.digest, Size: im.size})
	}
	if _, err := publish.Sign(context.Background(), w.cfg, reqs); err != nil {
		t.Fatalf("sign %s: %v", repo, err)
	}
}

// proxyServer is a signet proxy in front of the world's upstream, with
// every request it answers recorded.
type proxyServer struct {
	url    string // http(s)://host:port
	host   string // host:port
	caFile string // the CA of its certificate (https only)
	audit  *testlog.Buffer
	rec    *recorder
}

// startProxy starts the proxy on listen ("127.0.0.1:0", "[::1]:0"), over
// https with a certificate for names (and localhost, 127.0.0.1, ::1)
// when tlsNames is not nil, else over plain http. Its policy is the
// quick start's (rule "quick-start", TOFU) plus the "docker.io" upstream.
func startProxy(t *testing.T, w *world, listen string, tlsNames []string) *proxyServer {
	t.Helper()
	ups, pol, err := proxy.QuickStart("http://"+w.upstream, w.trustURL, verify.Pin{TOFU: true}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	ups = append(ups, proxy.Upstream{Prefix: hubPrefix, URL: "http://" + w.upstream, Host: hubPrefix})
	pol.Rules = append(pol.Rules, proxy.Rule{Name: "hub", Match: hubPrefix + "/*", TrustServer: w.trustURL, Pin: verify.Pin{TOFU: true}})
	ps := &proxyServer{audit: &testlog.Buffer{}, rec: &recorder{}}
	// The blob cache is on, as `signet proxy` has it by default: a
	// resumed download is a Range request that only a cached blob answers
	// with 206.
	store, err := blobcache.Open(t.TempDir(), blobcache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	p, err := proxy.New(proxy.Options{
		Upstreams: ups,
		Policy:    pol,
		Logger:    slog.New(slog.NewTextHandler(ps.audit, nil)),
		Store:     store,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("listen on %s: %v", listen, err)
	}
	s := httptest.NewUnstartedServer(ps.rec.wrap(p.Handler()))
	s.Listener.Close()
	s.Listener = ln
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsNames == nil {
		s.Start()
	} else {
		files, err := devtls.Ensure(filepath.Join(t.TempDir(), "tls"), tlsNames, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			t.Fatal(err)
		}
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.StartTLS()
		ps.caFile = files.CACert
	}
	t.Cleanup(s.Close)
	ps.url = s.URL
	ps.host = ln.Addr().String()
	return ps
}

// denials returns the audit log's deny lines for repository name and
// reference ref, as the client asked for them.
func (ps *proxyServer) denials(name, ref string) []string {
	var out []string
	for _, l := range strings.Split(ps.audit.String(), "\n") {
		if strings.Contains(l, " decision=deny ") && strings.Contains(l, " name="+name+" ") && strings.Contains(l, " ref="+ref+" ") {
			out = append(out, l)
		}
	}
	return out
}

// seen is one request the proxy answered.
type seen struct {
	method, path string
	rangeHdr     string // the request's Range header
	status       int
	contentRange string // the response's Content-Range header
	bytes        int64  // body bytes sent
	cut          bool   // the recorder cut the response
}

func (s seen) String() string {
	r := fmt.Sprintf("%s %s -> %d (%d bytes)", s.method, s.path, s.status, s.bytes)
	if s.rangeHdr != "" {
		r += fmt.Sprintf(" [Range: %s, Content-Range: %q]", s.rangeHdr, s.contentRange)
	}
	if s.cut {
		r += " [cut]"
	}
	return r
}

// recorder logs every request to the proxy and can cut one response in
// the middle, as a network failure would.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
	// cutPath, if set, is a path whose next GET answer is cut after
	// cutAfter body bytes; it is cleared once used.
	cutPath  string
	cutAfter int64
}

// reset forgets the requests recorded so far.
func (rec *recorder) reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = nil
}

// requests returns the requests recorded so far whose path contains sub.
func (rec *recorder) requests(sub string) []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []seen
	for _, s := range rec.reqs {
		if strings.Contains(s.path, sub) {
			out = append(out, s)
		}
	}
	return out
}

// cutNext makes the next GET of path end after n body bytes.
func (rec *recorder) cutNext(path string, n int64) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.cutPath, rec.cutAfter = path, n
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &recWriter{ResponseWriter: w, limit: -1}
		rec.mu.Lock()
		if rec.cutPath != "" && r.Method == http.MethodGet && r.URL.Path == rec.cutPath {
			rw.limit = rec.cutAfter
			rec.cutPath = ""
		}
		rec.mu.Unlock()
		defer func() {
			s := seen{method: r.Method, path: r.URL.Path, rangeHdr: r.Header.Get("Range"), status: rw.status,
				contentRange: rw.Header().Get("Content-Range"), bytes: rw.n, cut: rw.cut}
			if s.status == 0 {
				s.status = http.StatusOK
			}
			rec.mu.Lock()
			rec.reqs = append(rec.reqs, s)
			rec.mu.Unlock()
			if v := recover(); v != nil {
				panic(v)
			}
		}()
		h.ServeHTTP(rw, r)
		if rw.cut {
			// The connection drops with the body incomplete.
			panic(http.ErrAbortHandler)
		}
	})
}

// recWriter counts the body bytes and stops sending at limit.
type recWriter struct {
	http.ResponseWriter
	status int
	n      int64
	limit  int64 // -1: no limit
	cut    bool
}

func (rw *recWriter) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if rw.limit >= 0 && rw.n+int64(len(p)) > rw.limit {
		p = p[:rw.limit-rw.n]
		rw.cut = true
	}
	n, err := rw.ResponseWriter.Write(p)
	rw.n += int64(n)
	if rw.cut {
		// The handler sees a broken connection; wrap drops it once the
		// handler returns.
		rw.Flush()
		return n, io.ErrClosedPipe
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer (flushes).
func (rw *recWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

func (rw *recWriter) Flush() {
	if f, ok := rw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// shortTempDir makes a folder under /tmp whose path is short enough for
// Unix sockets inside it, removed when the test ends.
func shortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// loopbackOnly is the environment of the engines (daemons and clients):
// an HTTP proxy that refuses every connection, for all but loopback
// addresses and the names given, so that an engine that went around
// signet's proxy (a hosts.toml it could not read sends it to the
// registry itself) fails here instead of reaching out.
func loopbackOnly(names ...string) []string {
	const nowhere = "http://127.0.0.1:1"
	noProxy := strings.Join(append([]string{"localhost", "127.0.0.1", "::1"}, names...), ",")
	env := os.Environ()
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		env = append(env, k+"="+nowhere)
	}
	return append(env, "NO_PROXY="+noProxy, "no_proxy="+noProxy)
}
