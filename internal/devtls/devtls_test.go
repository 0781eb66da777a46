package devtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// snapshot reads every file Ensure keeps in dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := make(map[string][]byte)
	for _, name := range []string{CACertFile, CAKeyFile, CertFile, KeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		m[name] = b
	}
	return m
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	files, err := Ensure(dir, []string{"signet.test", "10.1.2.3", "[fd00::1]:4443", "Trust.Example.COM."}, t0)
	if err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, files.CACert)
	if !ca.IsCA || ca.Subject.CommonName != "signet development CA" || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA %v, CN %q, key usage %v", ca.IsCA, ca.Subject.CommonName, ca.KeyUsage)
	}
	if got := ca.NotAfter.Sub(t0); got < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v, want about 10 years", got)
	}
	cert := readCert(t, files.Cert)
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Errorf("server certificate not signed by CA: %v", err)
	}
	if got := cert.NotAfter.Sub(t0); got < 364*24*time.Hour || got > 366*24*time.Hour {
		t.Errorf("server certificate valid for %v, want 1 year", got)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v", cert.ExtKeyUsage)
	}
	wantNames := []string{"localhost", "signet.test", "trust.example.com"}
	if !slices.Equal(cert.DNSNames, wantNames) {
		t.Errorf("DNSNames = %q, want %q", cert.DNSNames, wantNames)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	wantIPs := []string{"127.0.0.1", "::1", "10.1.2.3", "fd00::1"}
	if !slices.Equal(ips, wantIPs) {
		t.Errorf("IPAddresses = %q, want %q", ips, wantIPs)
	}
	for _, k := range []string{files.Key, filepath.Join(dir, CAKeyFile)} {
		pair, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := pem.Decode(pair); b == nil || b.Type != "PRIVATE KEY" {
			t.Errorf("%s: not a PEM private key", k)
		}
	}
}

func TestEnsureFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := Ensure(dir, nil, t0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want os.FileMode
	}{
		{".", 0o700 | os.ModeDir},
		{CAKeyFile, 0o600},
		{KeyFile, 0o600},
		{CACertFile, 0o644},
		{CertFile, 0o644},
	}
	for _, tt := range tests {
		fi, err := os.Stat(filepath.Join(dir, tt.name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != tt.want {
			t.Errorf("mode of %s = %v, want %v", tt.name, got, tt.want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Errorf("dir holds %d entries, want 4 (no temporary files left)", len(entries))
	}
}

func TestEnsureReuseAndReissue(t *testing.T) {
	tests := []struct {
		name        string
		hosts2      []string
		now2        time.Time
		wantSame    bool // server cert and key unchanged
		wantSameCA  bool
		wantCovered []string
	}{
		{"same hosts", []string{"signet.test"}, t0.Add(24 * time.Hour), true, true, nil},
		{"subset of hosts", nil, t0.Add(24 * time.Hour), true, true, nil},
		{"host spelled differently", []string{"SIGNET.test."}, t0, true, true, nil},
		{"new host", []string{"signet.test", "other.test"}, t0, false, true, []string{"other.test", "signet.test"}},
		{"new IP", []string{"signet.test", "192.0.2.7"}, t0, false, true, []string{"192.0.2.7"}},
		{"server cert expires in 29 days", []string{"signet.test"}, t0.Add(336 * 24 * time.Hour), false, true, nil},
		{"server cert valid 31 more days", []string{"signet.test"}, t0.Add(333 * 24 * time.Hour), true, true, nil},
		{"CA expires soon", []string{"signet.test"}, t0.Add(10*365*24*time.Hour - 10*24*time.Hour), false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Ensure(dir, []string{"signet.test"}, t0); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			files, err := Ensure(dir, tt.hosts2, tt.now2)
			if err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, dir)
			same := func(name string) bool { return bytes.Equal(before[name], after[name]) }
			if got := same(CertFile) && same(KeyFile); got != tt.wantSame {
				t.Errorf("server cert and key unchanged = %v, want %v", got, tt.wantSame)
			}
			if got := same(CACertFile) && same(CAKeyFile); got != tt.wantSameCA {
				t.Errorf("CA unchanged = %v, want %v", got, tt.wantSameCA)
			}
			cert := readCert(t, files.Cert)
			if err := cert.CheckSignatureFrom(readCert(t, files.CACert)); err != nil {
				t.Errorf("server certificate not signed by CA: %v", err)
			}
			for _, h := range append(tt.wantCovered, "localhost", "127.0.0.1", "::1") {
				if err := cert.VerifyHostname(h); err != nil {
					t.Errorf("certificate does not cover %s: %v", h, err)
				}
			}
			if tt.now2.Add(30 * 24 * time.Hour).After(cert.NotAfter) {
				t.Errorf("certificate expires %v, less than 30 days after %v", cert.NotAfter, tt.now2)
			}
		})
	}
}

func TestEnsureReissuesBrokenServerCert(t *testing.T) {
	dir := t.TempDir()
	files, err := Ensure(dir, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	// A key that does not match the certificate.
	other := t.TempDir()
	otherFiles, err := Ensure(other, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(otherFiles.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.Key, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, nil, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(files.Cert, files.Key); err != nil {
		t.Errorf("after reissue: %v", err)
	}
}

func TestEnsureRefusesBrokenCA(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string) error
	}{
		{"garbage CA certificate", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, CACertFile), []byte("garbage"), 0o644)
		}},
		{"CA key missing", func(dir string) error {
			return os.Remove(filepath.Join(dir, CAKeyFile))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Ensure(dir, nil, t0); err != nil {
				t.Fatal(err)
			}
			if err := tt.damage(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := Ensure(dir, nil, t0); err == nil {
				t.Fatal("Ensure succeeded, want error")
			}
		})
	}
}

func TestEnsureRefusesBadHost(t *testing.T) {
	if _, err := Ensure(t.TempDir(), []string{"user@host"}, t0); err == nil {
		t.Fatal("Ensure succeeded, want error")
	}
}

// TestEnsureServesTLS serves with the files and connects with a client that
// trusts only the development CA. It uses the real clock, as TLS does.
func TestEnsureServesTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := Ensure(dir, []string{"signet.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	caPEM, err := os.ReadFile(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}

	tests := []struct {
		host    string
		wantErr bool
	}{
		{"127.0.0.1", false},
		{"localhost", false},
		{"signet.test", false},
		{"not-covered.test", true},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			tr := &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool},
				// Every name reaches the test server.
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, srv.Listener.Addr().String())
				},
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://" + net.JoinHostPort(tt.host, port) + "/")
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("request succeeded, want a certificate error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != "ok" {
				t.Errorf("body = %q", body)
			}
		})
	}
}
