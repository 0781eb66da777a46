package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Upstream is a registry the proxy pulls from.
type Upstream struct {
	// Prefix selects the upstream from the first path segments of the
	// name a client asks for ("docker.io" for proxy/docker.io/library/x).
	// Empty is the default upstream: the whole name is its repository.
	Prefix string
	// URL is the registry's base URL (https://registry-1.docker.io,
	// http://127.0.0.1:5000).
	URL string
	// Host is the registry name used in GUNs when it differs from URL's
	// host (docker.io for https://registry-1.docker.io).
	Host string
	// Credentials is what the proxy presents to this upstream, and so
	// what every client that can reach the proxy may pull through it
	// (within the policy): CredentialsAnonymous (the default, also ""),
	// CredentialsDocker, or CredentialsBasic with Username and
	// PasswordFile.
	Credentials string
	// Username for CredentialsBasic (setting it implies CredentialsBasic).
	Username string
	// PasswordFile holds the password for CredentialsBasic (one line,
	// read at start).
	PasswordFile string
}

// Upstream credentials.
const (
	// CredentialsAnonymous presents no credentials.
	CredentialsAnonymous = "anonymous"
	// CredentialsDocker presents the docker credentials of the user
	// running the proxy for the upstream's host (~/.docker/config.json
	// and its credential helpers, through Options.Keychain).
	CredentialsDocker = "docker"
	// CredentialsBasic presents Username and the password in PasswordFile.
	CredentialsBasic = "basic"
)

type upstream struct {
	Upstream
	base    *url.URL
	reg     name.Registry
	gunHost string
	// keychain gives the credentials; nil is anonymous.
	keychain authn.Keychain
}

func newUpstream(u Upstream) (*upstream, error) {
	base, err := url.Parse(u.URL)
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("upstream %q: give an http(s) URL", u.URL)
	}
	if u.Prefix != "" && !validGUN("host/"+u.Prefix) {
		return nil, fmt.Errorf("upstream %q: prefix %q is not a repository path: %s", u.URL, u.Prefix, nameHint)
	}
	if err := checkCredentials(u); err != nil {
		return nil, err
	}
	var opts []name.Option
	if base.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(base.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", u.URL, err)
	}
	// Host names are case-insensitive; GUNs are lower case.
	host := strings.ToLower(u.Host)
	if host == "" {
		host = strings.ToLower(base.Host)
	}
	if host == name.DefaultRegistry || host == "registry-1.docker.io" {
		host = "docker.io"
	}
	if !validGUN(host + "/x") {
		return nil, fmt.Errorf("upstream %q: registry name %q cannot start a repository name (GUN): set host to the registry's DNS name[:port]", u.URL, host)
	}
	return &upstream{Upstream: u, base: base, reg: reg, gunHost: host}, nil
}

func checkCredentials(u Upstream) error {
	switch u.Credentials {
	case "", CredentialsAnonymous, CredentialsDocker:
		if u.Username != "" || u.PasswordFile != "" {
			if u.Credentials == "" {
				break // a username says basic
			}
			return fmt.Errorf("upstream %q: a username and password file go with credentials %q, not %q", u.URL, CredentialsBasic, u.Credentials)
		}
		return nil
	case CredentialsBasic:
	default:
		return fmt.Errorf("upstream %q: credentials %q: use %s, %s or %s", u.URL, u.Credentials, CredentialsAnonymous, CredentialsDocker, CredentialsBasic)
	}
	if u.Username == "" || u.PasswordFile == "" {
		return fmt.Errorf("upstream %q: basic credentials need a username and a password file", u.URL)
	}
	return nil
}

// authFor returns what the proxy presents to u: nil for anonymous, or a
// keychain that answers for u's registry only.
func authFor(u Upstream, docker authn.Keychain) (authn.Keychain, error) {
	switch {
	case u.Credentials == CredentialsDocker:
		if docker == nil {
			docker = authn.DefaultKeychain
		}
		return docker, nil
	case u.Credentials == CredentialsBasic || u.Username != "":
		raw, err := os.ReadFile(u.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read the password file of upstream %q: %w", u.URL, err)
		}
		password := strings.TrimRight(string(raw), "\r\n")
		if password == "" {
			return nil, fmt.Errorf("upstream %q: password file %q is empty", u.URL, u.PasswordFile)
		}
		return staticKeychain{&authn.Basic{Username: u.Username, Password: password}}, nil
	}
	return nil, nil
}

// staticKeychain gives one upstream's own credentials.
type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// Presents says, for logs, what the proxy presents to the upstream.
func (u Upstream) Presents() string {
	switch {
	case u.Credentials == CredentialsDocker:
		return "docker credentials of the user running the proxy"
	case u.Credentials == CredentialsBasic || u.Username != "":
		return "basic auth as " + u.Username
	}
	return CredentialsAnonymous
}

// transports caches authenticated transports per upstream repository.
type transports struct {
	base http.RoundTripper
	mu   sync.Mutex
	m    map[string]http.RoundTripper
}

func (t *transports) get(ctx context.Context, u *upstream, repo string) (http.RoundTripper, error) {
	key := u.base.String() + "|" + repo
	t.mu.Lock()
	rt, ok := t.m[key]
	t.mu.Unlock()
	if ok {
		return rt, nil
	}
	auth := authn.Anonymous
	if u.keychain != nil {
		a, err := u.keychain.Resolve(u.reg)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", u.reg, err)
		}
		auth = a
	}
	scope := u.reg.Repo(repo).Scope(transport.PullScope)
	rt, err := transport.NewWithContext(ctx, u.reg, auth, t.base, []string{scope})
	if err != nil {
		return nil, fmt.Errorf("connect to upstream %s: %w", u.URL, err)
	}
	t.mu.Lock()
	if t.m == nil || len(t.m) > 4096 {
		t.m = map[string]http.RoundTripper{}
	}
	t.m[key] = rt
	t.mu.Unlock()
	return rt, nil
}
