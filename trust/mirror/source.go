package mirror

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/verify"
)

// Source is where trust data is copied from: a Notary v1 server
// (ServerSource), a docker or notary client's trust dir (TrustDirSource)
// or an offline archive (ArchiveSource).
type Source interface {
	// Repositories lists the GUNs the source holds, for a run that names
	// none. A server cannot list its repositories and says so.
	Repositories(ctx context.Context) ([]string, error)
	// Open returns what the mirror reads one repository through.
	Open(ctx context.Context, gun string) (*Repo, error)
	// String names the source in messages.
	String() string
}

// Repo is one repository of a source.
type Repo struct {
	// Fetcher reads its metadata files by the names a trust server
	// serves them under.
	Fetcher verify.Fetcher
	// Root, when set, is the root the source itself was pinned to: a
	// client's trust dir holds the root its client trusted, and no root
	// history. Without it, the mirror trusts the source's first root
	// (1.root.json) and walks forward version by version.
	Root []byte
	// Notes say how fresh the source's copy is (a trust dir's cache).
	Notes []string
}

// ServerSource reads a Notary v1 server: notary-server, a notary.docker.io
// style server with docker token auth, or a signet trust server.
type ServerSource struct {
	// URL of the server (https://notary.docker.io).
	URL string
	// Auth reaches the server: explicit credentials and a CA bundle.
	Auth trust.TransportOptions
	// Keychain, when Auth has no credentials, supplies them as docker
	// does: the entry for the server's host, else the entry for the
	// repository's registry (docker uses the Docker Hub login for
	// notary.docker.io). nil is anonymous.
	Keychain authn.Keychain
	// MaxRequests caps the requests in flight to the server (default 8).
	MaxRequests int

	once    sync.Once
	initErr error
	limit   *limiter
	mu      sync.Mutex
	open    http.RoundTripper // set once the server proved to need no auth
}

// NewServerSource checks url and returns a source reading it.
func NewServerSource(url string, auth trust.TransportOptions, kc authn.Keychain, maxRequests int) (*ServerSource, error) {
	if _, err := trust.CheckServerURL(url); err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	if maxRequests < 0 {
		return nil, fmt.Errorf("max requests %d: give a positive number", maxRequests)
	}
	return &ServerSource{URL: strings.TrimSuffix(url, "/"), Auth: auth, Keychain: kc, MaxRequests: maxRequests}, nil
}

func (s *ServerSource) String() string { return s.URL }

// Repositories implements Source: a Notary v1 server has no listing.
func (s *ServerSource) Repositories(context.Context) ([]string, error) {
	return nil, fmt.Errorf("the trust server %s cannot list its repositories: name them (IMAGE... or --file)", s.URL)
}

// Requests counts the HTTP requests sent to the server so far (token
// requests to its auth server included).
func (s *ServerSource) Requests() int64 {
	if s.limit == nil {
		return 0
	}
	return s.limit.count.Load()
}

// base builds the shared, limited transport once.
func (s *ServerSource) base() (*limiter, error) {
	s.once.Do(func() {
		u, err := trust.CheckServerURL(s.URL)
		if err != nil {
			s.initErr = err
			return
		}
		tlsConfig, err := trust.TLSConfig(u.Host, s.Auth.CAFile, s.Auth.Home)
		if err != nil {
			s.initErr = err
			return
		}
		max := s.MaxRequests
		if max <= 0 {
			max = 8
		}
		next := s.Auth.Base
		if next == nil {
			next = &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				TLSClientConfig:       tlsConfig,
				TLSHandshakeTimeout:   10 * time.Second,
				ResponseHeaderTimeout: 60 * time.Second,
				MaxIdleConnsPerHost:   max,
			}
		}
		s.limit = newLimiter(next, max)
	})
	return s.limit, s.initErr
}

// Open implements Source. Each repository gets its own transport (a
// token is scoped to one repository), unless the server answered its
// first ping without asking for credentials: then all share one.
func (s *ServerSource) Open(ctx context.Context, gun string) (*Repo, error) {
	base, err := s.base()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	rt := s.open
	s.mu.Unlock()
	if rt == nil {
		creds, err := s.credentials(gun)
		if err != nil {
			return nil, err
		}
		opts := s.Auth
		opts.Credentials, opts.Base = creds, base
		if rt, err = trust.NewTransport(ctx, s.URL, gun, opts, "pull"); err != nil {
			return nil, err
		}
		if rt == http.RoundTripper(base) {
			s.mu.Lock()
			s.open = rt
			s.mu.Unlock()
		}
	}
	client := &http.Client{Transport: rt, Timeout: 2 * time.Minute}
	return &Repo{Fetcher: verify.HTTPFetcher{Server: s.URL, GUN: gun, Client: client}}, nil
}

// credentials picks the credentials for gun: Auth's, else the keychain's
// for the server's host, else for the repository's registry.
func (s *ServerSource) credentials(gun string) (trust.Credentials, error) {
	if s.Auth.Credentials.Username != "" || s.Keychain == nil {
		return s.Auth.Credentials, nil
	}
	u, err := trust.CheckServerURL(s.URL)
	if err != nil {
		return trust.Credentials{}, err
	}
	hosts := []string{u.Host}
	if repo, err := name.NewRepository(gun); err == nil {
		hosts = append(hosts, repo.RegistryStr())
	}
	for _, h := range hosts {
		reg, err := name.NewRegistry(h)
		if err != nil {
			continue
		}
		a, err := s.Keychain.Resolve(reg)
		if err != nil {
			return trust.Credentials{}, fmt.Errorf("read docker credentials for %s: %w", h, err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			return trust.Credentials{}, fmt.Errorf("read docker credentials for %s: %w", h, err)
		}
		if cfg.Username != "" {
			return trust.Credentials{Username: cfg.Username, Password: cfg.Password}, nil
		}
	}
	return trust.Credentials{}, nil
}
