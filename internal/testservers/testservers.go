// Package testservers starts the real servers tests need, in-process on
// loopback: go-containerregistry's registry and signet's trust server.
package testservers

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-project/signet/trust/server"
)

// Passphrase is the trust server key passphrase used in tests.
const Passphrase = "test server key passphrase"

// Registry starts an OCI registry on loopback and returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelError))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// TrustServer starts signet's trust server over SQLite in a temporary
// folder and returns its URL.
func TrustServer(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	st, err := server.OpenStore(ctx, filepath.Join(t.TempDir(), "trust.db"))
	if err != nil {
		t.Fatalf("open trust store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	var logger *slog.Logger
	if os.Getenv("SIGNET_TEST_SERVER_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := server.New(ctx, server.Options{Store: st, KeyPassphrase: Passphrase, Logger: logger})
	if err != nil {
		t.Fatalf("start trust server: %v", err)
	}
	s := httptest.NewServer(srv)
	t.Cleanup(s.Close)
	return s.URL
}

// PushRandom pushes a random single-layer image to ref and returns it.
func PushRandom(t testing.TB, ref string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return img
}

// PushRandomIndex pushes a random two-platform index to ref.
func PushRandomIndex(t testing.TB, ref string) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		p := p
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	return idx
}

// SwitchableTrustServer is TrustServer behind a switch: while down is
// true every request gets 503, as if the server were off the network.
func SwitchableTrustServer(t testing.TB) (url string, down *atomic.Bool) {
	t.Helper()
	real, err := neturl.Parse(TrustServer(t))
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(real)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	down = &atomic.Bool{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "off the network", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s.URL, down
}
