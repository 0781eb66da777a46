// Package auth decides whether a request to the trust server may read or
// write the trust data of a repository.
//
// It speaks what the notary and docker clients speak: HTTP Basic
// authentication against an htpasswd file ([Htpasswd]) and the Docker
// registry token scheme ([Token]), where the server answers 401 with a
// Bearer challenge naming a token service, and the client comes back with a
// JSON Web Token issued by that service.
//
// The package never logs and never puts credentials (passwords, tokens) in
// its errors.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Actions a request may ask for on a repository, as notary-server uses them:
// reads need pull, publishing needs push and pull, deleting a repository's
// trust data and server-managed key rotation need all (ActionAll).
const (
	ActionPull = "pull"
	ActionPush = "push"
	ActionAll  = "*"
)

// Authorizer decides whether a request may perform actions on a repository.
type Authorizer interface {
	// Authorize reports whether the request may perform all actions on the
	// repository gun. gun "" means a registry-wide check: with no action
	// (ping) any valid credentials will do; with actions, they are asked
	// of the registry catalog (the global changefeed asks for "*"; a token
	// must hold the scope "registry:catalog:*"). It returns nil when
	// allowed, a *ChallengeError when credentials are missing or invalid,
	// or do not grant the access (answer 401 with its Header() value in
	// WWW-Authenticate), or a *DeniedError when authenticated but not
	// allowed (answer 403).
	Authorize(r *http.Request, gun string, actions ...string) error
}

// The resource of registry-wide access with actions, as notary-server and
// docker/distribution name it in token scopes: "registry:catalog:*".
const (
	catalogType = "registry"
	catalogName = "catalog"
)

// Reasons wrapped by a *ChallengeError, for errors.Is.
var (
	// ErrNoCredentials means the request carried no credentials of the
	// scheme the authorizer expects.
	ErrNoCredentials = errors.New("no credentials")
	// ErrInvalidCredentials means the request carried credentials that
	// could not be verified: a wrong password, an unknown user, or a token
	// that is malformed, expired, badly signed or meant for someone else.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrInsufficientScope means a valid token does not grant the actions
	// asked for.
	ErrInsufficientScope = errors.New("insufficient scope")
)

// ChallengeError reports that a request lacks usable credentials. The server
// answers 401 Unauthorized with Header() in the WWW-Authenticate header, so
// that the client can authenticate and retry.
type ChallengeError struct {
	// Scheme is the authentication scheme: "Basic" or "Bearer".
	Scheme string
	// Realm is the Basic realm, or the URL of the token service for Bearer.
	Realm string
	// Service is the name of this server at the token service (Bearer only).
	Service string
	// Scope is the access the client should ask the token service for,
	// "repository:<gun>:<actions comma-joined>"; empty for a registry-wide
	// check (Bearer only).
	Scope string
	// Code is the RFC 6750 error code: "" (no credentials),
	// "invalid_token" or "insufficient_scope" (Bearer only).
	Code string
	// Err is why the request was refused; it wraps ErrNoCredentials,
	// ErrInvalidCredentials or ErrInsufficientScope and never contains
	// credentials.
	Err error
}

// Header returns the value of the WWW-Authenticate header to answer with.
func (e *ChallengeError) Header() string {
	var b strings.Builder
	b.WriteString(e.Scheme)
	b.WriteString(` realm="`)
	b.WriteString(quote(e.Realm))
	b.WriteString(`"`)
	param := func(name, value string) {
		if value == "" {
			return
		}
		b.WriteString(",")
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(quote(value))
		b.WriteString(`"`)
	}
	param("service", e.Service)
	param("scope", e.Scope)
	param("error", e.Code)
	return b.String()
}

// Error describes the refusal without credentials.
func (e *ChallengeError) Error() string {
	if e.Err == nil {
		return "authentication required"
	}
	return "authentication required: " + e.Err.Error()
}

// Unwrap returns the reason, for errors.Is.
func (e *ChallengeError) Unwrap() error { return e.Err }

// DeniedError reports that an authenticated request is not allowed: the
// server answers 403 Forbidden.
type DeniedError struct {
	// User is the authenticated identity, if known.
	User string
	// GUN is the repository; "" for a registry-wide check.
	GUN string
	// Actions are the actions that were asked for.
	Actions []string
}

// Error describes the denial.
func (e *DeniedError) Error() string {
	who := "request"
	if e.User != "" {
		who = fmt.Sprintf("user %q", e.User)
	}
	return fmt.Sprintf("authorize %s: %s is not allowed", describe(e.GUN, e.Actions), who)
}

// describe names the access asked for in error messages.
func describe(gun string, actions []string) string {
	switch {
	case gun == "" && len(actions) == 0:
		return "registry access"
	case gun == "":
		return fmt.Sprintf("%s on the registry catalog", strings.Join(actions, ","))
	}
	return fmt.Sprintf("%s on repository %q", strings.Join(actions, ","), gun)
}

// scope returns the token scope for actions on gun, or on the registry
// catalog for gun "", and "" when no action is asked for.
func scope(gun string, actions []string) string {
	switch {
	case len(actions) == 0:
		return ""
	case gun == "":
		return catalogType + ":" + catalogName + ":" + strings.Join(actions, ",")
	}
	return "repository:" + gun + ":" + strings.Join(actions, ",")
}

// quote escapes s for use inside a quoted-string (RFC 9110 section 5.6.4)
// and drops control characters, so that no value can break the header.
func quote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f:
			continue
		case r == '"' || r == '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// AllowAll is the Authorizer of a server without access control: it allows
// every request.
type AllowAll struct{}

// Authorize allows the request.
func (AllowAll) Authorize(*http.Request, string, ...string) error { return nil }

// ReadOpen returns an Authorizer that allows requests asking for exactly
// ["pull"] on a repository without looking at credentials (public reads), and
// hands every other request, including registry-wide checks, to inner. A nil
// inner refuses every other request with a *DeniedError.
func ReadOpen(inner Authorizer) Authorizer {
	return readOpen{inner: inner}
}

type readOpen struct{ inner Authorizer }

func (a readOpen) Authorize(r *http.Request, gun string, actions ...string) error {
	if gun != "" && slices.Equal(actions, []string{ActionPull}) {
		return nil
	}
	if a.inner == nil {
		return &DeniedError{GUN: gun, Actions: actions}
	}
	return a.inner.Authorize(r, gun, actions...)
}
