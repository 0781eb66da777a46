package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
)

// trustTransport returns the transport to the policy's trust servers.
// Each trusts the system roots plus caFile or, without one, the server's
// <home>/.docker/tls/<host:port>/ca.crt when it exists: what the
// publisher commands (trust.NewTransport) and the docker client trust.
// The CA files are read once, here, so a bad one stops the start.
func trustTransport(pol Policy, caFile, home string) (http.RoundTripper, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pool, err := caPool(caFile)
		if err != nil {
			return nil, err
		}
		base.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		return base, nil
	}
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	byHost := hostTransports{fallback: base, m: map[string]http.RoundTripper{}}
	for _, r := range pol.Rules {
		u, err := url.Parse(r.TrustServer)
		if err != nil || u.Scheme != "https" || byHost.m[u.Host] != nil {
			continue
		}
		candidate := filepath.Join(home, ".docker", "tls", u.Host, "ca.crt")
		if _, err := os.Stat(candidate); err != nil {
			continue
		}
		pool, err := caPool(candidate)
		if err != nil {
			return nil, err
		}
		t := base.Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		byHost.m[u.Host] = t
	}
	if len(byHost.m) == 0 {
		return base, nil
	}
	return byHost, nil
}

// caPool is the system roots plus the PEM certificates in file.
func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read trust server CA %q: %w", file, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("trust server CA %q holds no PEM certificate: give the CA's certificate in PEM", file)
	}
	return pool, nil
}

// hostTransports sends each request with the transport of its host.
type hostTransports struct {
	fallback http.RoundTripper
	m        map[string]http.RoundTripper
}

func (h hostTransports) RoundTrip(r *http.Request) (*http.Response, error) {
	if t, ok := h.m[r.URL.Host]; ok {
		return t.RoundTrip(r)
	}
	return h.fallback.RoundTrip(r)
}
