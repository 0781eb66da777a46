// Package testkeys makes key material for tests.
package testkeys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/notary"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/trust"
)

// Delegation writes an EC P-256 key (EC PRIVATE KEY PEM) and a
// self-signed certificate for it into dir, as `notary delegation add` and
// `notary key import` take them, and returns their paths.
func Delegation(t testing.TB, dir, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// RootHolder is a root key holder for ceremony tests: a root key file
// made in trustDir (encrypted with pass) and its root certificate for
// gun written to a file. It returns the certificate's key ID (as root.json
// lists it) and the certificate's path.
func RootHolder(t testing.TB, trustDir string, pass notary.PassRetriever, gun string) (certID, certPath string) {
	t.Helper()
	ks, err := trustmanager.NewKeyFileStore(trustDir, pass)
	if err != nil {
		t.Fatal(err)
	}
	cs := cryptoservice.NewCryptoService(ks)
	k, err := cs.Create(data.CanonicalRootRole, "", data.ECDSAKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := trust.RootCert(cs, k.ID(), gun)
	if err != nil {
		t.Fatal(err)
	}
	certPath = filepath.Join(t.TempDir(), "root.crt")
	if err := os.WriteFile(certPath, cert.Public(), 0o644); err != nil {
		t.Fatal(err)
	}
	return cert.ID(), certPath
}
