package tokenserver

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Limits on the scopes of one token request.
const (
	maxScopeLength = 512 // bytes of one scope
	maxScopes      = 16  // scopes in one request
	maxNameLength  = 255 // bytes of a repository name, as in docker/distribution
)

// ResourceType is the only resource type the server issues access to.
const ResourceType = "repository"

// Access is an entry of a token's access claim: actions on a resource.
type Access struct {
	// Type is the resource type, always ResourceType.
	Type string `json:"type"`
	// Name is the repository name (for the trust server, the GUN).
	Name string `json:"name"`
	// Actions are the actions granted, such as "pull", "push" or "*".
	Actions []string `json:"actions"`
}

// nameRE is the repository name grammar of docker/distribution's reference
// package: an optional registry host (with port) and lower-case path
// components.
var nameRE = func() *regexp.Regexp {
	const (
		domainComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
		domain          = domainComponent + `(?:\.` + domainComponent + `)*(?::[0-9]+)?`
		component       = `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
	)
	return regexp.MustCompile(`^(?:` + domain + `/)?` + component + `(?:/` + component + `)*$`)
}()

// actionRE is one action: a lower-case word or "*".
var actionRE = regexp.MustCompile(`^(?:[a-z]+|\*)$`)

// parseScope parses a scope of the docker registry token protocol,
// "repository:<name>:<actions comma-separated>"
// (https://distribution.github.io/distribution/spec/auth/scope/). The name
// may hold a registry port, so the type ends at the first colon and the
// actions start after the last one. Repeated actions are dropped.
func parseScope(s string) (Access, error) {
	if len(s) > maxScopeLength {
		return Access{}, fmt.Errorf("parse scope %.64q...: longer than %d bytes", s, maxScopeLength)
	}
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Access{}, fmt.Errorf("parse scope %q: want <type>:<name>:<actions>", s)
	}
	name, actions := rest[:i], rest[i+1:]
	if typ != ResourceType {
		return Access{}, fmt.Errorf("parse scope %q: unsupported resource type %q", s, typ)
	}
	if len(name) > maxNameLength || !nameRE.MatchString(name) {
		return Access{}, fmt.Errorf("parse scope %q: invalid repository name", s)
	}
	a := Access{Type: typ, Name: name}
	for _, act := range strings.Split(actions, ",") {
		if !actionRE.MatchString(act) {
			return Access{}, fmt.Errorf("parse scope %q: invalid action %q", s, act)
		}
		if !slices.Contains(a.Actions, act) {
			a.Actions = append(a.Actions, act)
		}
	}
	return a, nil
}

// parseScopes parses the scope parameters of a request. Each may hold
// several scopes separated by spaces, as in OAuth 2 (RFC 6749 section 3.3).
func parseScopes(params []string) ([]Access, error) {
	var out []Access
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			if len(out) == maxScopes {
				return nil, errors.New("parse scopes: more than " + fmt.Sprint(maxScopes))
			}
			a, err := parseScope(s)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return out, nil
}
