package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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
}

type upstream struct {
	Upstream
	base    *url.URL
	reg     name.Registry
	gunHost string
}

func newUpstream(u Upstream) (*upstream, error) {
	base, err := url.Parse(u.URL)
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("upstream %q: give an http(s) URL", u.URL)
	}
	var opts []name.Option
	if base.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(base.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", u.URL, err)
	}
	host := u.Host
	if host == "" {
		host = base.Host
	}
	if host == name.DefaultRegistry || host == "registry-1.docker.io" {
		host = "docker.io"
	}
	return &upstream{Upstream: u, base: base, reg: reg, gunHost: host}, nil
}

// upstreams routes a client's repository name to an upstream.
type upstreams struct {
	list     []*upstream
	fallback *upstream
}

// route returns the upstream, the repository in it and the GUN.
func (us upstreams) route(nameInProxy string) (*upstream, string, string, bool) {
	for _, u := range us.list {
		if rest, ok := strings.CutPrefix(nameInProxy, u.Prefix+"/"); ok && rest != "" {
			return u, rest, u.gunHost + "/" + rest, true
		}
	}
	if us.fallback != nil {
		return us.fallback, nameInProxy, us.fallback.gunHost + "/" + nameInProxy, true
	}
	return nil, "", "", false
}

// transports caches authenticated transports per upstream repository.
type transports struct {
	keychain authn.Keychain
	base     http.RoundTripper
	mu       sync.Mutex
	m        map[string]http.RoundTripper
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
	if t.keychain != nil {
		a, err := t.keychain.Resolve(u.reg)
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
