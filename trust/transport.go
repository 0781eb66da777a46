package trust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/distribution/registry/client/auth"
	"github.com/docker/distribution/registry/client/auth/challenge"
	"github.com/docker/distribution/registry/client/transport"
)

// Credentials for the trust server. Empty means anonymous.
type Credentials struct {
	Username, Password string
}

type credStore struct{ c Credentials }

func (s credStore) Basic(*url.URL) (string, string)      { return s.c.Username, s.c.Password }
func (s credStore) RefreshToken(*url.URL, string) string { return "" }
func (s credStore) SetRefreshToken(*url.URL, string, string) {
}

// CheckServerURL refuses trust server URLs signet will not talk to: no
// scheme, or plain http to anything but a loopback address.
func CheckServerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("trust server %q: give an https:// URL (http:// only for loopback addresses)", raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("trust server %q: plain http is allowed only for loopback addresses; use https", raw)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TransportOptions configure the connection to a trust server.
type TransportOptions struct {
	// Credentials for Basic or token auth; zero is anonymous.
	Credentials Credentials
	// CAFile is an extra PEM bundle of CAs to trust. If empty, signet
	// also looks for ~/.docker/tls/<host:port>/ca.crt as docker does.
	CAFile string
	// Home is the folder holding .docker (default the user's home).
	Home string
	// Base is the underlying transport; nil makes one.
	Base http.RoundTripper
}

// NewTransport returns a transport to server that answers its auth
// challenge as the docker and notary clients do: it pings /v2/ and then
// uses Basic or Bearer (token) auth for the actions ("pull", "push", "*")
// on gun.
func NewTransport(ctx context.Context, server, gun string, opts TransportOptions, actions ...string) (http.RoundTripper, error) {
	u, err := CheckServerURL(server)
	if err != nil {
		return nil, err
	}
	base := opts.Base
	if base == nil {
		tlsConfig, err := tlsConfigFor(u, opts)
		if err != nil {
			return nil, err
		}
		base = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tlsConfig,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			MaxIdleConnsPerHost:   8,
		}
	}
	ping, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u.String(), "/")+"/v2/", nil)
	if err != nil {
		return nil, fmt.Errorf("ping trust server %s: %w", u.Redacted(), err)
	}
	resp, err := (&http.Client{Transport: base, Timeout: 15 * time.Second}).Do(ping)
	if err != nil {
		return nil, fmt.Errorf("reach trust server %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return nil, fmt.Errorf("trust server %s answered the ping with %s: is it a Notary server?", u.Redacted(), resp.Status)
	}
	if resp.StatusCode == http.StatusOK {
		return base, nil
	}
	manager := challenge.NewSimpleManager()
	if err := manager.AddResponse(resp); err != nil {
		return nil, fmt.Errorf("read trust server %s auth challenge: %w", u.Redacted(), err)
	}
	creds := credStore{opts.Credentials}
	modifier := auth.NewAuthorizer(manager,
		auth.NewTokenHandler(base, creds, gun, actions...),
		auth.NewBasicHandler(creds))
	return transport.NewTransport(base, modifier), nil
}

func tlsConfigFor(u *url.URL, opts TransportOptions) (*tls.Config, error) {
	return TLSConfig(u.Host, opts.CAFile, opts.Home)
}

// TLSConfig is the TLS configuration for a trust server at host
// (host:port), as docker's client builds it: the system roots plus
// caFile, or, without one, <home>/.docker/tls/<host>/ca.crt when it
// exists (home defaults to the user's). RootCAs is nil when neither is
// given. A CA file that cannot be read or holds no certificate is an
// error naming it.
func TLSConfig(host, caFile, home string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		candidate := filepath.Join(home, ".docker", "tls", host, "ca.crt")
		if _, err := os.Stat(candidate); err == nil {
			caFile = candidate
		}
	}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read trust server CA %q: %w", caFile, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("trust server CA %q holds no PEM certificate: give the CA's certificate in PEM", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
