package proxy

import (
	"net/http"
	"net/url"

	"github.com/signet-project/signet/trust"
)

// trustTransport returns the transport to the policy's trust servers.
// Each trusts the system roots plus caFile or, without one, the server's
// <home>/.docker/tls/<host:port>/ca.crt when it exists: what the
// publisher commands (trust.NewTransport) and the docker client trust.
// The CA files are read once, here, so a bad one stops the start.
func trustTransport(pol Policy, caFile, home string) (http.RoundTripper, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		cfg, err := trust.TLSConfig("", caFile, home)
		if err != nil {
			return nil, err
		}
		base.TLSClientConfig = cfg
		return base, nil
	}
	byHost := hostTransports{fallback: base, m: map[string]http.RoundTripper{}}
	for _, r := range pol.Rules {
		u, err := url.Parse(r.TrustServer)
		if err != nil || u.Scheme != "https" || byHost.m[u.Host] != nil {
			continue
		}
		cfg, err := trust.TLSConfig(u.Host, "", home)
		if err != nil {
			return nil, err
		}
		if cfg.RootCAs == nil {
			continue
		}
		t := base.Clone()
		t.TLSClientConfig = cfg
		byHost.m[u.Host] = t
	}
	if len(byHost.m) == 0 {
		return base, nil
	}
	return byHost, nil
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
