package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-project/signet/internal/devtls"
	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/registry/proxy"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/server"
	"github.com/signet-project/signet/trust/verify"
)

// Passphrases used for every key in these tests, under the names docker
// and signet both read.
var passphrases = map[string]string{
	"DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE":       "root passphrase 1",
	"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "repository passphrase 1",
}

// registryServer is an upstream registry (go-containerregistry's) whose
// answers a test can replace to make it lie.
type registryServer struct {
	host string
	lie  func(w http.ResponseWriter, r *http.Request) bool
}

func newRegistry(t *testing.T) *registryServer {
	rs := &registryServer{}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rs.lie != nil && rs.lie(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	rs.host = strings.TrimPrefix(s.URL, "http://")
	return rs
}

// image is an image pushed to the upstream, with what a signature of it
// records.
type image struct {
	ref    string
	digest v1.Hash
	size   int64
	raw    []byte
}

func (rs *registryServer) push(t *testing.T, repoTag string) image {
	t.Helper()
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(rs.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	d, _ := img.Digest()
	return image{ref: tag.String(), digest: d, size: int64(len(raw)), raw: raw}
}

// tlsTrustServer starts signet's trust server over https with a
// development CA, as `signet server --dev-tls` does, and returns its URL
// and the CA file.
func tlsTrustServer(t *testing.T) (url, caFile string) {
	t.Helper()
	return tlsTrustServerWith(t, server.Options{})
}

// tlsTrustServerWith is tlsTrustServer with more options (AllowImport).
func tlsTrustServerWith(t *testing.T, opts server.Options) (url, caFile string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := server.OpenStore(ctx, filepath.Join(dir, "trust.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts.Store, opts.KeyPassphrase = st, testservers.Passphrase
	srv, err := server.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	files, err := devtls.Ensure(filepath.Join(dir, "tls"), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(srv)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.URL, files.CACert
}

// readers are every way signet reads trust data, configured alike.
type readers struct {
	t        *testing.T
	cfg      publish.Config
	registry string
	opts     proxy.Options
	running  string // a proxy replica that stays up through the test
}

func newReaders(t *testing.T, registryHost, trustURL, caFile string) *readers {
	t.Helper()
	return newReadersWith(t, registryHost, trustURL, caFile, nil)
}

// newReadersWith is newReaders with the proxies logging to logger.
func newReadersWith(t *testing.T, registryHost, trustURL, caFile string, logger *slog.Logger) *readers {
	t.Helper()
	getenv := func(k string) string { return passphrases[k] }
	r := &readers{t: t, registry: registryHost}
	r.cfg = publish.Config{
		TrustDir:    t.TempDir(),
		Server:      trustURL,
		TrustAuth:   trust.TransportOptions{CAFile: caFile},
		Passphrases: &keys.Retriever{Getenv: getenv},
	}
	tc := &http.Client{Timeout: 30 * time.Second}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	r.opts = proxy.Options{
		Upstreams: []proxy.Upstream{{URL: "http://" + registryHost}},
		Policy: proxy.Policy{Rules: []proxy.Rule{{
			Name: "all", Match: registryHost + "/*", TrustServer: trustURL, Pin: verify.Pin{TOFU: true},
		}}},
		TrustClient: tc,
		// Every pull sees the newest trust data.
		RefreshInterval: time.Nanosecond,
		Logger:          logger,
	}
	r.running = r.replica()
	return r
}

// replica starts a proxy with nothing cached and returns its host:port.
func (r *readers) replica() string {
	r.t.Helper()
	p, err := proxy.New(r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	s := httptest.NewServer(p.Handler())
	r.t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// verify is `signet verify` (the library the command calls).
func (r *readers) verify(ref string) (publish.Verified, error) {
	return publish.Verify(context.Background(), r.cfg, ref)
}

// pull fetches ref's manifest through the proxy at host, by tag or
// digest (ref relative to the registry: "team/app:v1").
func pull(host, ref string) error {
	sep := ":"
	if strings.Contains(ref, "@") {
		sep = "@"
	}
	repo, id, _ := strings.Cut(ref, sep)
	r, err := name.ParseReference(host + "/" + repo + sep + id)
	if err != nil {
		return err
	}
	_, err = remote.Get(r)
	return err
}

// isDenied says whether a proxy answer was a 403 DENIED.
func isDenied(err error) bool {
	return err != nil && strings.Contains(err.Error(), "DENIED")
}

// answer is one reader's verdict.
type answer struct {
	allowed bool
	err     error
}

// ask puts one tag to every reader: signet verify, the running proxy and
// a fresh replica. A reader that failed to decide (neither allowed nor
// a denial) fails the test.
func (r *readers) ask(repoTag string) map[string]answer {
	r.t.Helper()
	out := map[string]answer{}
	_, err := r.verify(r.registry + "/" + repoTag)
	switch {
	case err == nil:
		out["signet verify"] = answer{allowed: true}
	case publish.IsDenied(err):
		out["signet verify"] = answer{err: err}
	default:
		r.t.Fatalf("signet verify %s: not a decision: %v", repoTag, err)
	}
	for label, host := range map[string]string{"running proxy": r.running, "fresh proxy": r.replica()} {
		err := pull(host, repoTag)
		switch {
		case err == nil:
			out[label] = answer{allowed: true}
		case isDenied(err):
			out[label] = answer{err: err}
		default:
			r.t.Fatalf("%s %s: not a decision: %v", label, repoTag, err)
		}
	}
	return out
}

// expect checks every reader gave the same verdict, and that denials
// name want.
func (r *readers) expect(repoTag string, allowed bool, want string) {
	r.t.Helper()
	r.expectExcept(repoTag, allowed, want, "")
}

// expectExcept is expect, but the reader named except must give the
// opposite verdict (the running proxy keeps serving its last verified
// data when a refresh is rejected; see TestRejectedRefreshIsLoud).
func (r *readers) expectExcept(repoTag string, allowed bool, want, except string) {
	r.t.Helper()
	for reader, a := range r.ask(repoTag) {
		wantAllowed := allowed
		if reader == except {
			wantAllowed = !allowed
		}
		if a.allowed != wantAllowed {
			r.t.Errorf("%s %s: allowed=%v (%v), want allowed=%v", reader, repoTag, a.allowed, a.err, wantAllowed)
			continue
		}
		if !a.allowed && want != "" && !strings.Contains(a.err.Error(), want) {
			r.t.Errorf("%s %s: denied with %q, want it to say %q", reader, repoTag, a.err, want)
		}
	}
}

// exitCode is what `signet verify` exits with for err (see cmd/signet).
func exitCode(err error) int {
	var d *trust.DenyError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &d):
		return 1
	}
	return 2
}
