package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultLeeway is the clock skew docker/distribution allows on exp and nbf.
const DefaultLeeway = 60 * time.Second

// Limits on untrusted and configured input.
const (
	maxTokenSize      = 64 << 10 // bytes of the Authorization header's token
	maxChainLength    = 8        // certificates in an x5c header
	maxRootBundleSize = 1 << 20  // bytes of the root certificate bundle
)

// TokenOptions configures a Token authorizer. Realm, Service, Issuer and
// RootCertBundle are required.
type TokenOptions struct {
	// Realm is the URL of the token service, sent in challenges.
	Realm string
	// Service is the name of this server: sent in challenges, and required
	// in the aud claim of tokens.
	Service string
	// Issuer is required in the iss claim of tokens.
	Issuer string
	// RootCertBundle is the path of a PEM file of the certificates trusted
	// to sign tokens: either directly (the token's kid header is the
	// libtrust key ID of a certificate's public key) or as the root of the
	// certificate chain in the token's x5c header.
	RootCertBundle string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on the exp and nbf claims; zero
	// means none. docker/distribution uses DefaultLeeway.
	Leeway time.Duration
}

// Token authorizes requests with Bearer tokens in the Docker registry token
// scheme (https://distribution.github.io/distribution/spec/auth/jwt/).
//
// A request without a valid token gets a *ChallengeError whose Bearer
// challenge names the realm, the service and the scope the client should ask
// for. As in docker/distribution, a valid token that does not grant the
// actions asked for also gets a *ChallengeError, with error
// "insufficient_scope", not a *DeniedError: docker answers 401 in that case.
type Token struct {
	realm, service, issuer string
	now                    func() time.Time
	leeway                 time.Duration
	roots                  *x509.CertPool
	keys                   map[string]crypto.PublicKey // libtrust key ID to root key
}

// NewToken returns a Token authorizer, reading the root certificate bundle.
func NewToken(opts TokenOptions) (*Token, error) {
	for _, o := range []struct{ name, value string }{
		{"realm", opts.Realm}, {"service", opts.Service},
		{"issuer", opts.Issuer}, {"root certificate bundle", opts.RootCertBundle},
	} {
		if o.value == "" {
			return nil, fmt.Errorf("configure token authorization: no %s", o.name)
		}
	}
	certs, err := readCertBundle(opts.RootCertBundle)
	if err != nil {
		return nil, err
	}
	t := &Token{
		realm:   opts.Realm,
		service: opts.Service,
		issuer:  opts.Issuer,
		now:     opts.Now,
		leeway:  opts.Leeway,
		roots:   x509.NewCertPool(),
		keys:    make(map[string]crypto.PublicKey, len(certs)),
	}
	if t.now == nil {
		t.now = time.Now
	}
	for _, c := range certs {
		t.roots.AddCert(c)
		id, err := libtrustKeyID(c.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("read token root certificate %q: %w", c.Subject, err)
		}
		t.keys[id] = c.PublicKey
	}
	return t, nil
}

// readCertBundle reads the PEM certificates of the file at path.
func readCertBundle(path string) ([]*x509.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read token root certificate bundle %q: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRootBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("read token root certificate bundle %q: %w", path, err)
	}
	if len(data) > maxRootBundleSize {
		return nil, fmt.Errorf("read token root certificate bundle %q: larger than %d bytes", path, maxRootBundleSize)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("read token root certificate bundle %q: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("read token root certificate bundle %q: no certificate", path)
	}
	return certs, nil
}

// Authorize allows the request if its Bearer token is valid and grants all
// actions on the repository gun. For gun "" with no action (ping) any valid
// token will do; with actions (the global changefeed asks for "*"), the
// token must grant them on the registry catalog, scope
// "registry:catalog:*", as notary-server requires.
func (t *Token) Authorize(r *http.Request, gun string, actions ...string) error {
	raw, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return t.challenge(gun, actions, "", ErrNoCredentials)
	}
	c, err := t.verify(raw)
	if err != nil {
		return t.challenge(gun, actions, "invalid_token", fmt.Errorf("%w: %w", ErrInvalidCredentials, err))
	}
	typ, name := "repository", gun
	switch {
	case gun == "" && len(actions) == 0:
		return nil
	case gun == "":
		typ, name = catalogType, catalogName
	}
	if !c.grants(typ, name, actions) {
		return t.challenge(gun, actions, "insufficient_scope",
			fmt.Errorf("%w: the token lacks %q", ErrInsufficientScope, scope(gun, actions)))
	}
	return nil
}

func (t *Token) challenge(gun string, actions []string, code string, reason error) error {
	return &ChallengeError{
		Scheme:  "Bearer",
		Realm:   t.realm,
		Service: t.service,
		Scope:   scope(gun, actions),
		Code:    code,
		Err:     fmt.Errorf("authorize %s: %w", describe(gun, actions), reason),
	}
}

// bearerToken returns the token of an Authorization header value
// "Bearer <token>", the scheme matched without regard to case.
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > maxTokenSize || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

// claims are the claims of a registry token.
type claims struct {
	jwt.RegisteredClaims
	Access []resourceActions `json:"access"`
}

// resourceActions is an entry of the access claim.
type resourceActions struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// grants reports whether the access claim grants all actions on the
// resource of type typ (repository, registry) and name. Entries for the
// same resource add up, and "*" grants every action.
func (c *claims) grants(typ, name string, actions []string) bool {
	var granted []string
	for _, a := range c.Access {
		if a.Type == typ && a.Name == name {
			granted = append(granted, a.Actions...)
		}
	}
	if slices.Contains(granted, ActionAll) {
		return true
	}
	for _, a := range actions {
		if !slices.Contains(granted, a) {
			return false
		}
	}
	return true
}

// verify checks the signature and the registered claims of a token.
func (t *Token) verify(raw string) (*claims, error) {
	p := jwt.NewParser(
		// Asymmetric algorithms only: none and HMAC (which would take a
		// public key as the secret) are refused.
		jwt.WithValidMethods([]string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256"}),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.service),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(t.leeway),
		jwt.WithTimeFunc(t.now),
		jwt.WithPaddingAllowed(),
	)
	var c claims
	if _, err := p.ParseWithClaims(raw, &c, t.signingKey); err != nil {
		return nil, err
	}
	return &c, nil
}

// signingKey finds the trusted key that signed a token: the leaf of its x5c
// certificate chain, verified up to a root, or else the root key its kid
// names. It checks that the key fits the token's algorithm.
func (t *Token) signingKey(tok *jwt.Token) (any, error) {
	var key crypto.PublicKey
	if x5c, ok := tok.Header["x5c"].([]any); ok && len(x5c) > 0 {
		leaf, err := t.verifyChain(x5c)
		if err != nil {
			return nil, err
		}
		key = leaf.PublicKey
	} else if _, present := tok.Header["x5c"]; present && !ok {
		return nil, errors.New("malformed x5c header")
	} else if kid, _ := tok.Header["kid"].(string); kid != "" {
		key = t.keys[kid]
		if key == nil {
			return nil, fmt.Errorf("signed by untrusted key %.64q", kid)
		}
	} else {
		return nil, errors.New("no x5c or kid header names the signing key")
	}
	if err := keyFitsAlg(key, tok.Method.Alg()); err != nil {
		return nil, err
	}
	return key, nil
}

// verifyChain parses an x5c header (RFC 7515 section 4.1.6) and verifies the
// chain up to a root certificate. It returns the leaf.
func (t *Token) verifyChain(x5c []any) (*x509.Certificate, error) {
	if len(x5c) > maxChainLength {
		return nil, fmt.Errorf("x5c chain longer than %d certificates", maxChainLength)
	}
	var leaf *x509.Certificate
	intermediates := x509.NewCertPool()
	for i, v := range x5c {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("parse x5c certificate %d: not a string", i)
		}
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("parse x5c certificate %d: %w", i, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parse x5c certificate %d: %w", i, err)
		}
		if i == 0 {
			leaf = c
		} else {
			intermediates.AddCert(c)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: intermediates,
		CurrentTime:   t.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("verify x5c certificate chain: %w", err)
	}
	return leaf, nil
}

// keyFitsAlg checks that key is of the type and curve alg needs.
func keyFitsAlg(key crypto.PublicKey, alg string) error {
	ok := false
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			ok = k.Curve == elliptic.P256()
		case "ES384":
			ok = k.Curve == elliptic.P384()
		case "ES512":
			ok = k.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		ok = strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	}
	if !ok {
		return fmt.Errorf("signing key of type %T does not fit algorithm %q", key, alg)
	}
	return nil
}

// libtrustKeyID returns the key ID docker/libtrust gives a public key: the
// first 240 bits of the SHA-256 of its DER SubjectPublicKeyInfo, in base32,
// as 12 groups of 4 characters joined by ':'.
func libtrustKeyID(key crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	groups := make([]string, 0, len(s)/4)
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:min(i+4, len(s))])
	}
	return strings.Join(groups, ":"), nil
}
