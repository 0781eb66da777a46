// Package devtls makes TLS certificates for running the trust server in
// development: a local certificate authority and a server certificate it
// signs. The docker client insists on https for a trust server; trusting the
// CA (for docker, copying it to ~/.docker/tls/<host>/ca.crt) is enough.
package devtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside the directory given to Ensure.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	CertFile   = "server.crt"
	KeyFile    = "server.key"
)

// Validity periods, and how long a certificate must still be valid to be
// reused.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
	minRemaining = 30 * 24 * time.Hour
	backdate     = time.Hour // NotBefore this long before now, for clock skew
)

// Files are the paths of the PEM files Ensure keeps.
type Files struct {
	// CACert is the certificate of the development CA, for clients to trust.
	CACert string
	// Cert is the server certificate.
	Cert string
	// Key is the server's private key (mode 0600).
	Key string
}

// Ensure makes sure dir holds a development CA and a server certificate it
// signed for localhost, 127.0.0.1, ::1 and hosts (IP addresses become IP
// SANs, other names DNS SANs; a ":port" suffix is ignored).
//
// Existing files are reused, byte for byte, while the certificates are valid
// for at least 30 more days after now and the server certificate covers all
// hosts; otherwise the server certificate is issued again with the same CA.
// The CA is made anew only when missing or about to expire. CA files that
// exist but cannot be read or parsed are an error, not replaced.
//
// dir is created (mode 0700) if needed; private keys are written 0600.
func Ensure(dir string, hosts []string, now time.Time) (Files, error) {
	files := Files{
		CACert: filepath.Join(dir, CACertFile),
		Cert:   filepath.Join(dir, CertFile),
		Key:    filepath.Join(dir, KeyFile),
	}
	names, ips, err := sans(hosts)
	if err != nil {
		return Files{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("create TLS directory %q: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("restrict TLS directory %q: %w", dir, err)
	}
	ca, caKey, err := ensureCA(dir, now)
	if err != nil {
		return Files{}, err
	}
	if serverCertUsable(files, ca, names, ips, now) {
		return files, nil
	}
	if err := issueServerCert(files, ca, caKey, names, ips, now); err != nil {
		return Files{}, err
	}
	return files, nil
}

// sans splits hosts, with the default hosts, into DNS names and IP
// addresses, without duplicates.
func sans(hosts []string) ([]string, []net.IP, error) {
	var names []string
	var ips []net.IP
	seen := make(map[string]bool)
	// localhost, 127.0.0.1 and ::1 are always in the certificate.
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		h = strings.TrimSpace(h)
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		if strings.ContainsAny(h, " /\\@") {
			return nil, nil, fmt.Errorf("use host %q in a TLS certificate: not a host name or IP address", h)
		}
		if !seen[h] {
			seen[h] = true
			names = append(names, h)
		}
	}
	return names, ips, nil
}

// ensureCA loads the CA of dir, or makes one if there is none or it is about
// to expire.
func ensureCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return newCA(certPath, keyPath, now)
	case certErr != nil:
		return nil, nil, fmt.Errorf("read development CA %q: %w", certPath, certErr)
	case keyErr != nil:
		return nil, nil, fmt.Errorf("read development CA key %q: %w", keyPath, keyErr)
	}
	cert, key, err := loadPair(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load development CA %q (remove %s and %s to make a new one): %w", certPath, CACertFile, CAKeyFile, err)
	}
	if !cert.IsCA || now.Before(cert.NotBefore) || now.Add(minRemaining).After(cert.NotAfter) {
		return newCA(certPath, keyPath, now)
	}
	return cert, key, nil
}

// newCA makes a CA and writes it to certPath and keyPath.
func newCA(certPath, keyPath string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate development CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "signet development CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	cert, err := createAndWrite(certPath, keyPath, tmpl, tmpl, key, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make development CA: %w", err)
	}
	return cert, key, nil
}

// serverCertUsable reports whether the server certificate and key in files
// exist, match, were signed by ca, cover names and ips, and are valid for at
// least minRemaining after now.
func serverCertUsable(files Files, ca *x509.Certificate, names []string, ips []net.IP, now time.Time) bool {
	cert, _, err := loadPair(files.Cert, files.Key)
	if err != nil {
		return false
	}
	if now.Before(cert.NotBefore) || now.Add(minRemaining).After(cert.NotAfter) {
		return false
	}
	if cert.CheckSignatureFrom(ca) != nil {
		return false
	}
	for _, n := range names {
		if !containsFold(cert.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !containsIP(cert.IPAddresses, ip) {
			return false
		}
	}
	return true
}

// issueServerCert makes a server key and certificate signed by ca and writes
// them to files.
func issueServerCert(files Files, ca *x509.Certificate, caKey crypto.Signer, names []string, ips []net.IP, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate TLS server key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	notAfter := now.Add(certValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "signet development server"},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	if _, err := createAndWrite(files.Cert, files.Key, tmpl, ca, key, caKey); err != nil {
		return fmt.Errorf("issue TLS server certificate: %w", err)
	}
	return nil
}

// createAndWrite signs tmpl with parentKey and writes the certificate and
// key as PEM, the key first and mode 0600.
func createAndWrite(certPath, keyPath string, tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return cert, nil
}

// writeFile replaces the file at path with data, atomically, with mode perm.
func writeFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %q: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	return nil
}

// loadPair reads a PEM certificate and its PEM private key, and checks that
// they match.
func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read certificate %q: %w", certPath, err)
	}
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("read certificate %q: no PEM certificate", certPath)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("read certificate %q: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read key %q: %w", keyPath, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("read key %q: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("read key %q: does not match certificate %q", keyPath, certPath)
	}
	return cert, key, nil
}

// parseKey parses a PEM private key, PKCS#8 or SEC 1.
func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM private key")
	}
	switch b.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", k)
		}
		return s, nil
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", b.Type)
	}
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial number: %w", err)
	}
	return n, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(strings.TrimSuffix(v, "."), s) {
			return true
		}
	}
	return false
}

func containsIP(list []net.IP, ip net.IP) bool {
	for _, v := range list {
		if v.Equal(ip) {
			return true
		}
	}
	return false
}
