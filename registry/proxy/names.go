package proxy

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/docker/distribution/reference"
)

// Anchored forms of the distribution reference grammar for the parts of
// a request path other than the name.
var (
	tagRe       = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)
	anyDigestRe = regexp.MustCompile(`^` + reference.DigestRegexp.String() + `$`)
)

// badRequest is a request refused before any policy rule is looked at:
// a name or reference outside the distribution grammar (400).
type badRequest struct {
	code string // NAME_INVALID, TAG_INVALID, DIGEST_INVALID
	msg  string
}

func (e *badRequest) Error() string { return e.msg }

const nameHint = "use lower-case path components of letters and digits joined by '.', '_', '__' or '-', separated by single slashes, 255 characters at most"

// checkRequest validates what the client asked for against the
// distribution reference grammar, so that rules are matched, trust data
// looked up and upstreams asked only for one canonical name: the name
// must appear verbatim (not percent-encoded) in the request path, be a
// valid repository name, and make a valid GUN with its upstream's host;
// a manifest reference must be a tag or a digest, a blob reference a
// digest. "..", "%2F", "%2e", "%252F", doubled or trailing slashes,
// backslashes and upper case all fail here.
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
		if !tagRe.MatchString(req.ref) && !anyDigestRe.MatchString(req.ref) {
			return &badRequest{"TAG_INVALID", fmt.Sprintf("manifest reference %q of %s is neither a tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) nor a digest (sha256:<64 hex>)", req.ref, req.name)}
		}
	case "blobs":
		if !anyDigestRe.MatchString(req.ref) {
			return &badRequest{"DIGEST_INVALID", fmt.Sprintf("blob reference %q of %s is not a digest (sha256:<64 hex>)", req.ref, req.name)}
		}
	}
	return nil
}

// validGUN reports whether gun is a name rules may be matched on: the
// reference grammar, so no "..", empty or encoded path segments.
func validGUN(gun string) bool {
	_, err := reference.WithName(gun)
	return err == nil
}
