package proxy

import (
	"crypto/tls"
	"io"
	"log"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/devtls"
	"github.com/signet-project/signet/trust/verify"
)

// tlsTrustFront serves the env's trust server over https with a
// certificate of a development CA (as `signet server --dev-tls` does),
// and returns its URL and the CA file.
func tlsTrustFront(t *testing.T, e *env) (string, string) {
	t.Helper()
	files, err := devtls.Ensure(filepath.Join(t.TempDir(), "tls"), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	backend, _ := url.Parse(e.trust)
	front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(backend))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	front.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the test expects to fail
	front.StartTLS()
	t.Cleanup(front.Close)
	return front.URL, files.CACert
}

// TestTrustServerPrivateCA: a trust server whose certificate a private CA
// signed is trusted with TrustCAFile (--trust-ca) or with the CA at
// <home>/.docker/tls/<host:port>/ca.crt, as the publisher commands and
// docker do; without either the pull is denied for the certificate.
func TestTrustServerPrivateCA(t *testing.T) {
	e := newEnv(t, nil)
	signed := e.push("team/app:v1")
	e.sign("team/app:v1")
	trustURL, caFile := tlsTrustFront(t, e)
	host := strings.TrimPrefix(trustURL, "https://")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	homeWith := func(dir string) string {
		home := t.TempDir()
		if dir != "" {
			p := filepath.Join(home, ".docker", "tls", dir)
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p, "ca.crt"), ca, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return home
	}
	tests := []struct {
		name   string
		caFile string
		home   string
		denial string // "" is a successful pull
	}{
		{"no CA", "", homeWith(""), "certificate signed by unknown authority"},
		{"--trust-ca", caFile, homeWith(""), ""},
		{"docker tls folder", "", homeWith(host), ""},
		{"docker tls folder of another host", "", homeWith("127.0.0.1:1"), "certificate signed by unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.opts.Policy.Rules[0].TrustServer = trustURL
			e.opts.TrustCAFile, e.opts.Home = tc.caFile, tc.home
			e.proxy = e.newReplica()
			got, err := e.pull("team/app:v1")
			if tc.denial != "" {
				denied(t, err, tc.denial)
				return
			}
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if digestOf(t, got) != digestOf(t, signed) {
				t.Fatalf("pulled %s, signed %s", digestOf(t, got), digestOf(t, signed))
			}
		})
	}
}

func TestTrustCAFileErrors(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A bad file in the docker folder of a policy's trust server stops
	// the start too, rather than every pull failing later.
	home := t.TempDir()
	dockerCA := filepath.Join(home, ".docker", "tls", "trust.example.com:4443", "ca.crt")
	if err := os.MkdirAll(filepath.Dir(dockerCA), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dockerCA, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		caFile, home, want string
	}{
		{filepath.Join(t.TempDir(), "missing.crt"), "", "read trust server CA"},
		{notPEM, "", "holds no PEM certificate"},
		{"", home, "holds no PEM certificate"},
	}
	for _, tc := range tests {
		_, err := New(Options{
			Upstreams:   []Upstream{{URL: "http://127.0.0.1:5000"}},
			Policy:      Policy{Rules: []Rule{{Match: "127.0.0.1:5000/*", TrustServer: "https://trust.example.com:4443", Pin: verify.Pin{TOFU: true}}}},
			TrustCAFile: tc.caFile, Home: tc.home,
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CA %q home %q: %v, want %q", tc.caFile, tc.home, err, tc.want)
		}
	}
}
