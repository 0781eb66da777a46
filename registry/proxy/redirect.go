package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// redirectError is an upstream redirect the proxy refuses to follow.
type redirectError struct {
	up, repo, kind, to, why string
}

func (e *redirectError) Error() string {
	return fmt.Sprintf("upstream %s redirected a %s request of %s to %s, %s: refused (only blobs may be redirected off the registry, and nothing to another repository)", e.up, e.kind, e.repo, e.to, e.why)
}

// checkRedirect decides whether the proxy follows an upstream redirect.
// The upstream's own host is followed only within the repository asked
// for (an upstream must not answer for another repository, which the
// policy never allowed, with the proxy's credentials). Another host is
// followed only for blobs (object storage), never from https to http;
// credentials go only to the upstream's host (go-containerregistry's
// transports check the host of every request).
func checkRedirect(rr repoRef, kind string, next *http.Request, via []*http.Request) error {
	refuse := func(why string) error {
		return &redirectError{up: rr.up.URL, repo: rr.repo, kind: kind, to: redacted(next.URL), why: why}
	}
	if len(via) >= 10 {
		return refuse("after 10 redirects")
	}
	if via[len(via)-1].URL.Scheme == "https" && next.URL.Scheme != "https" {
		return refuse("from https to plain http")
	}
	if sameHost(next.URL, rr.up.base) {
		repoPath := strings.TrimSuffix(rr.up.base.Path, "/") + "/v2/" + rr.repo + "/"
		clean := path.Clean(next.URL.Path)
		if !strings.HasPrefix(next.URL.Path, repoPath) || (clean != next.URL.Path && clean+"/" != next.URL.Path) || next.URL.RawPath != "" {
			return refuse("another path than the repository's")
		}
		return nil
	}
	if kind != "blobs" {
		return refuse("another host")
	}
	return nil
}

// sameHost compares hosts as go-containerregistry does when it decides to
// send credentials: a missing port is the scheme's default.
func sameHost(a, b *url.URL) bool {
	return strings.EqualFold(hostPort(a), hostPort(b))
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// redacted is a URL for messages: no user info, no query (storage
// redirects carry signatures there).
func redacted(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery = nil, "", false
	return c.String()
}
