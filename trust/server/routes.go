package server

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/theupdateframework/notary/tuf/data"
)

// Limits on names, from notary-server's routes and Docker's reference
// grammar, kept strict: the server refuses what it cannot name safely.
const (
	maxGUNLen  = 255
	maxRoleLen = 255
)

var (
	gunPattern     = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	segmentPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	checksumRe     = regexp.MustCompile(`^[a-fA-F0-9]{64}$|^[a-fA-F0-9]{96}$|^[a-fA-F0-9]{128}$`)
	versionRe      = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
)

// validGUN reports whether gun is a repository name signet serves:
// lower-case Docker reference syntax, no tag or digest, not too long.
func validGUN(gun string) error {
	if gun == "" {
		return fmt.Errorf("empty repository name")
	}
	if len(gun) > maxGUNLen {
		return fmt.Errorf("repository name is %d bytes, over the %d limit", len(gun), maxGUNLen)
	}
	if !gunPattern.MatchString(gun) {
		return fmt.Errorf("repository name %q is not a lower-case registry/repository path (for example registry.example.com/team/app)", gun)
	}
	return nil
}

// validRoleName reports whether role is root, snapshot, timestamp, targets
// or a delegation targets/<seg>[/<seg>...] with plain segments.
func validRoleName(role string) error {
	if len(role) > maxRoleLen {
		return fmt.Errorf("role name is %d bytes, over the %d limit", len(role), maxRoleLen)
	}
	switch data.RoleName(role) {
	case data.CanonicalRootRole, data.CanonicalSnapshotRole, data.CanonicalTimestampRole, data.CanonicalTargetsRole:
		return nil
	}
	rest, ok := strings.CutPrefix(role, "targets/")
	if !ok || !data.IsDelegation(data.RoleName(role)) {
		return fmt.Errorf("role %q is not root, targets, snapshot, timestamp or targets/<name>", role)
	}
	for _, seg := range strings.Split(rest, "/") {
		if !segmentPattern.MatchString(seg) || seg == "." || seg == ".." {
			return fmt.Errorf("role %q has an invalid segment %q (letters, digits, '_', '.', '-')", role, seg)
		}
	}
	return nil
}

// route is a parsed trust API path.
type route struct {
	kind     routeKind
	gun      string
	role     string
	version  int
	checksum string
}

type routeKind int

const (
	routeNone routeKind = iota
	routePing
	routeTUF        // /v2/<gun>/_trust/tuf/        (POST update, DELETE)
	routeMeta       // /v2/<gun>/_trust/tuf/<file>.json
	routeKey        // /v2/<gun>/_trust/tuf/<role>.key
	routeChangefeed // /v2/<gun>/_trust/changefeed or /v2/_trust/changefeed
	routeImport     // /v2/<gun>/_trust/import                (POST, with --allow-import)
)

// parseRoute splits a request path as notary-server's routes do. A path
// that parses but names an invalid GUN or role returns an error, which
// the caller answers with 400.
func parseRoute(path string) (route, error) {
	if path == "/v2/" || path == "/v2" {
		return route{kind: routePing}, nil
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}, nil
	}
	if rest == "_trust/changefeed" {
		return route{kind: routeChangefeed}, nil
	}
	i := strings.Index(rest, "/_trust/")
	if i < 0 {
		return route{}, nil
	}
	gun, tail := rest[:i], rest[i+len("/_trust/"):]
	if err := validGUN(gun); err != nil {
		return route{}, err
	}
	switch tail {
	case "changefeed":
		return route{kind: routeChangefeed, gun: gun}, nil
	case "import":
		return route{kind: routeImport, gun: gun}, nil
	}
	file, ok := strings.CutPrefix(tail, "tuf/")
	if !ok {
		return route{}, nil
	}
	if file == "" {
		return route{kind: routeTUF, gun: gun}, nil
	}
	if role, ok := strings.CutSuffix(file, ".key"); ok {
		if role != "snapshot" && role != "timestamp" {
			return route{}, fmt.Errorf("only snapshot and timestamp keys are held by the server, not %q", role)
		}
		return route{kind: routeKey, gun: gun, role: role}, nil
	}
	name, ok := strings.CutSuffix(file, ".json")
	if !ok {
		return route{}, nil
	}
	r := route{kind: routeMeta, gun: gun, role: name}
	// <version>.<role>.json
	if v, role, ok := strings.Cut(name, "."); ok && versionRe.MatchString(v) && validRoleName(role) == nil {
		r.version, _ = strconv.Atoi(v)
		r.role = role
		return r, nil
	}
	// <role>.<checksum>.json
	if j := strings.LastIndex(name, "."); j > 0 && checksumRe.MatchString(name[j+1:]) && validRoleName(name[:j]) == nil {
		r.role, r.checksum = name[:j], strings.ToLower(name[j+1:])
		return r, nil
	}
	if err := validRoleName(name); err != nil {
		return route{}, err
	}
	return r, nil
}
