package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/docker/distribution/reference"
)

// request is a parsed distribution API request.
type request struct {
	name string // repository name as the client gave it
	kind string // "manifests", "blobs", "tags", "referrers"
	ref  string // tag or digest; the subject digest for referrers
	page page   // tags list paging (n, last)
}

// parseRequest splits a distribution API path into the repository name,
// the kind of request and its reference. The kind is the last of
// /manifests/, /blobs/ and /referrers/ in the path, so a repository may
// have a path component of that name ("team/blobs/app").
func parseRequest(p string) (request, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return request{}, false
	}
	if strings.HasSuffix(rest, "/tags/list") {
		return request{name: strings.TrimSuffix(rest, "/tags/list"), kind: "tags"}, true
	}
	req, at := request{}, -1
	for _, kind := range []string{"manifests", "blobs", "referrers"} {
		if i := strings.LastIndex(rest, "/"+kind+"/"); i > 0 && i > at {
			req, at = request{name: rest[:i], kind: kind, ref: rest[i+len(kind)+2:]}, i
		}
	}
	return req, at > 0
}

// Anchored forms of the grammar for the parts of a request path other
// than the name: a tag as the distribution spec has it
// ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}), and a digest of one of the two
// algorithms registered by the OCI image spec. Only sha256 is ever
// signed (a TUF target's hashes.sha256); a sha512 digest is well formed,
// so it is passed through by allow rules and denied by the others.
var (
	tagRe       = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)
	anyDigestRe = regexp.MustCompile(`^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// badRequest is a request refused before any policy rule is looked at:
// a name or reference outside the distribution grammar (400).
type badRequest struct {
	code string // NAME_INVALID, MANIFEST_INVALID, DIGEST_INVALID, UNSUPPORTED
	msg  string
}

func (e *badRequest) Error() string { return e.msg }

const nameHint = "use lower-case path components of letters and digits joined by '.', '_', '__' or '-', separated by single slashes, 255 characters at most"

// checkRequest validates what the client asked for against the
// distribution reference grammar, so that rules are matched, trust data
// looked up and upstreams asked only for one canonical name: the name
// must appear verbatim (not percent-encoded) in the request path, be a
// valid repository name, and make a valid GUN with its upstream's host;
// a manifest reference must be a tag or a digest (one with a colon is a
// digest or nothing), a blob reference and a referrers subject a digest.
// "..", "%2F", "%2e", "%252F", doubled or trailing slashes, backslashes
// and upper case all fail here.
func (p *Proxy) checkRequest(r *http.Request, req request) *badRequest {
	if _, err := reference.WithName(req.name); err != nil {
		return &badRequest{"NAME_INVALID", fmt.Sprintf("invalid repository name %q: %s", req.name, nameHint)}
	}
	if !strings.HasPrefix(r.URL.EscapedPath(), "/v2/"+req.name+"/") {
		return &badRequest{"NAME_INVALID", fmt.Sprintf("repository name in %q is percent-encoded: send the name as plain path segments", r.URL.EscapedPath())}
	}
	if _, _, gun, ok := p.ups.route(req.name); ok {
		if _, err := reference.WithName(gun); err != nil {
			return &badRequest{"NAME_INVALID", fmt.Sprintf("invalid repository name %q (trust name %q): %s", req.name, gun, nameHint)}
		}
	}
	switch req.kind {
	case "manifests":
		// A reference with a colon can only be a digest: it is never read
		// as a tag, and never looked up in the trust data.
		if strings.Contains(req.ref, ":") {
			if !anyDigestRe.MatchString(req.ref) {
				return &badRequest{"DIGEST_INVALID", fmt.Sprintf("manifest reference %q of %s is not a digest (%s)", req.ref, req.name, digestHint)}
			}
		} else if !tagRe.MatchString(req.ref) {
			return &badRequest{"MANIFEST_INVALID", fmt.Sprintf("manifest reference %q of %s is neither a tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}) nor a digest (%s)", req.ref, req.name, digestHint)}
		}
	case "blobs":
		if !anyDigestRe.MatchString(req.ref) {
			return &badRequest{"DIGEST_INVALID", fmt.Sprintf("blob reference %q of %s is not a digest (%s)", req.ref, req.name, digestHint)}
		}
	case "referrers":
		if !anyDigestRe.MatchString(req.ref) {
			return &badRequest{"DIGEST_INVALID", fmt.Sprintf("referrers subject %q of %s is not a digest (%s)", req.ref, req.name, digestHint)}
		}
	}
	return nil
}

const digestHint = "sha256:<64 lower-case hex digits>, or sha512:<128>"

// page is what a tags list asks for: at most n tags (n < 0: all), those
// after last in lexical order.
type page struct {
	n    int
	last string
}

// parsePage reads the n and last query parameters of a tags list.
func parsePage(q url.Values) (page, *badRequest) {
	pg := page{n: -1, last: q.Get("last")}
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return page{}, &badRequest{"UNSUPPORTED", fmt.Sprintf("tags list page size n=%q: give a number of tags, 0 or more", s)}
		}
		pg.n = n
	}
	return pg, nil
}

// validGUN reports whether gun is a name rules may be matched on: the
// reference grammar, so no "..", empty or encoded path segments.
func validGUN(gun string) bool {
	_, err := reference.WithName(gun)
	return err == nil
}
