package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// t0 is the fixed "now" of the token tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// keyPair is a certificate and its private key.
type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// x5c returns the x5c header value for a chain starting at p.
func x5c(chain ...keyPair) []string {
	var out []string
	for _, p := range chain {
		out = append(out, base64.StdEncoding.EncodeToString(p.cert.Raw))
	}
	return out
}

// pki is the set of keys and certificates the token tests use.
type pki struct {
	rootEC, rootRSA    keyPair // in the trusted bundle
	inter              keyPair // ECDSA P-384 intermediate under rootEC
	leafES384          keyPair // under inter
	leafES512          keyPair // under rootEC
	leafRSA            keyPair // under rootRSA
	leafExpired        keyPair // under rootEC, expired before t0
	otherCA, leafOther keyPair // not trusted
}

var testPKI = sync.OnceValue(func() *pki {
	p := &pki{}
	p.rootEC = newCert(nil, ecKey(elliptic.P256()), "root EC", true, t0)
	p.rootRSA = newCert(nil, rsaKey(), "root RSA", true, t0)
	p.inter = newCert(&p.rootEC, ecKey(elliptic.P384()), "intermediate", true, t0)
	p.leafES384 = newCert(&p.inter, ecKey(elliptic.P384()), "leaf ES384", false, t0)
	p.leafES512 = newCert(&p.rootEC, ecKey(elliptic.P521()), "leaf ES512", false, t0)
	p.leafRSA = newCert(&p.rootRSA, rsaKey(), "leaf RSA", false, t0)
	p.leafExpired = newCert(&p.rootEC, ecKey(elliptic.P256()), "leaf expired", false, t0.Add(-3*24*time.Hour))
	p.otherCA = newCert(nil, ecKey(elliptic.P256()), "other CA", true, t0)
	p.leafOther = newCert(&p.otherCA, ecKey(elliptic.P256()), "leaf other", false, t0)
	return p
})

func ecKey(c elliptic.Curve) crypto.Signer {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func rsaKey() crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// newCert makes a certificate for key, signed by parent (self-signed if
// nil), valid from from-1h for one day.
func newCert(parent *keyPair, key crypto.Signer, cn string, ca bool, from time.Time) keyPair {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             from.Add(-time.Hour),
		NotAfter:              from.Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return keyPair{cert, key}
}

// writeBundle writes the certificates as a PEM bundle and returns its path.
func writeBundle(t testing.TB, certs ...keyPair) string {
	t.Helper()
	var buf bytes.Buffer
	for _, c := range certs {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
	}
	path := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// kidOf computes the libtrust key ID the way docker/libtrust's keyIDEncode
// does, independently of libtrustKeyID.
func kidOf(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	h := sha256.Sum256(der)
	s := base32.StdEncoding.EncodeToString(h[:30]) // 240 bits: 48 characters, no padding
	var buf bytes.Buffer
	for i := 0; i < 11; i++ {
		buf.WriteString(s[i*4:i*4+4] + ":")
	}
	buf.WriteString(s[44:])
	return buf.String()
}

// testClaims is a token's claims as the tests write them.
type testClaims struct {
	jwt.RegisteredClaims
	Access []resourceActions `json:"access,omitempty"`
}

// goodClaims grants push and pull on gun, issued at t0 for five minutes.
func goodClaims(gun string) testClaims {
	return testClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "test-issuer",
			Subject:   "alice",
			Audience:  jwt.ClaimStrings{"signet-trust"},
			ExpiresAt: jwt.NewNumericDate(t0.Add(5 * time.Minute)),
			NotBefore: jwt.NewNumericDate(t0.Add(-time.Minute)),
			IssuedAt:  jwt.NewNumericDate(t0),
		},
		Access: []resourceActions{{Type: "repository", Name: gun, Actions: []string{"push", "pull"}}},
	}
}

// sign signs claims with key, setting the headers given.
func sign(t testing.TB, m jwt.SigningMethod, key any, headers map[string]any, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range headers {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
