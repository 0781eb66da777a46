package pivsim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"
)

// Yubico's attestation certificate extensions
// (https://developers.yubico.com/PIV/Introduction/PIV_attestation.html).
var (
	oidFirmware   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 3}
	oidSerial     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 7}
	oidPolicy     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 8}
	oidFormFactor = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 41482, 3, 9}
)

// Certificates of the simulated attestation chain never expire, so that
// tests need no clock: RFC 5280 4.1.2.5 spells "no expiry" 99991231235959Z.
var (
	attestNotBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	attestNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// CA is a simulated attestation certificate authority, standing in for
// Yubico's PIV root CA: it signs the attestation certificates (slot f9) of
// the cards made with it. One CA may serve many cards.
type CA struct {
	// Root is the self-signed root certificate.
	Root *x509.Certificate
	key  crypto.Signer
}

// NewCA makes a CA with a fresh ECDSA P-256 root key.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate attestation root key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "pivsim PIV Root CA"},
		NotBefore:             attestNotBefore,
		NotAfter:              attestNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create attestation root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse attestation root certificate: %w", err)
	}
	return &CA{Root: root, key: key}, nil
}

// Pool returns a certificate pool holding the root, for
// x509.VerifyOptions.Roots or piv.Verifier.Roots.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root)
	return p
}

// issue makes the attestation certificate of a card: an intermediate CA
// that may sign only end-entity certificates.
func (ca *CA) issue(pub crypto.PublicKey, serial uint32) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("pivsim PIV Attestation %d", serial)},
		NotBefore:             attestNotBefore,
		NotAfter:              attestNotAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Root, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create attestation certificate for card %d: %w", serial, err)
	}
	return der, nil
}

// makeAttestationKey puts an ECDSA P-256 key in slot f9 and its
// certificate, signed by the CA, in object 5FFF01, as Yubico does at
// manufacture.
func (c *Card) makeAttestationKey() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate attestation key: %w", err)
	}
	der, err := c.ca.issue(key.Public(), c.serial)
	if err != nil {
		return err
	}
	c.keys[slotAttestation] = &slotKey{
		alg: algECCP256, priv: key, pin: pinNever, touch: touchNever, origin: originImported,
	}
	c.objects[objAttestation] = certObject(der)
	return nil
}

// certObject is the value of a certificate data object (SP 800-73-4 part 1
// table 15): 70 certificate, 71 CertInfo (uncompressed), FE error
// detection code.
func certObject(der []byte) []byte {
	out := tlvBytes(0x70, der)
	out = appendTLV(out, 0x71, []byte{0x00})
	return appendTLV(out, 0xfe, nil)
}

// attest is Yubico's ATTEST (P1 the slot): a certificate for the slot's
// public key, signed by the attestation key in slot f9 and carrying the
// firmware version, serial number, policies and form factor. Only keys
// generated on the card can be attested.
func (c *Card) attest(cmd command) response {
	if !c.atLeast(4, 3, 0) {
		return status(swINSNotSupported)
	}
	if cmd.p2 != 0x00 {
		return status(swIncorrectP1P2)
	}
	k := c.keys[cmd.p1]
	if k == nil || k.origin != originGenerated || cmd.p1 == slotAttestation {
		return status(swIncorrectData)
	}
	der, err := c.attestation(cmd.p1, k)
	if err != nil {
		return status(swIncorrectData)
	}
	return success(der)
}

func (c *Card) attestation(slot byte, k *slotKey) ([]byte, error) {
	f9 := c.keys[slotAttestation]
	if f9 == nil {
		return nil, fmt.Errorf("no attestation key")
	}
	signer, ok := f9.priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("attestation key of type %T cannot sign", f9.priv)
	}
	parent, err := c.attestationCert()
	if err != nil {
		return nil, err
	}
	serial, err := asn1.Marshal(int64(c.serial))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: fmt.Sprintf("YubiKey PIV Attestation %02x", slot)},
		NotBefore:    parent.NotBefore,
		NotAfter:     parent.NotAfter,
		ExtraExtensions: []pkix.Extension{
			{Id: oidFirmware, Value: c.version[:]},
			{Id: oidSerial, Value: serial},
			{Id: oidPolicy, Value: []byte{k.pin, k.touch}},
			{Id: oidFormFactor, Value: []byte{c.formFactor}},
		},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, parent, k.public(), signer)
}

// attestationCert parses the certificate in object 5FFF01.
func (c *Card) attestationCert() (*x509.Certificate, error) {
	list, ok := parseTLVs(c.objects[objAttestation])
	if !ok {
		return nil, fmt.Errorf("malformed attestation certificate object")
	}
	der, ok := find(list, 0x70)
	if !ok {
		return nil, fmt.Errorf("no attestation certificate")
	}
	return x509.ParseCertificate(der)
}

func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	b[0] &= 0x7f
	b[0] |= 0x01 // positive and sixteen bytes long
	return new(big.Int).SetBytes(b)
}
