package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/theupdateframework/notary/tuf/data"
)

// HardwareKey is a notary data.PrivateKey whose private half lives behind
// a crypto.Signer (a YubiKey slot through piv-go, for example). TUF wants
// ECDSA signatures as raw r||s over the sha256 of the message; a
// crypto.Signer returns ASN.1 DER over a digest, so Sign converts.
type HardwareKey struct {
	data.PublicKey
	signer crypto.Signer
}

var _ data.PrivateKey = (*HardwareKey)(nil)

// NewHardwareKey wraps an ECDSA P-256 crypto.Signer.
func NewHardwareKey(s crypto.Signer) (*HardwareKey, error) {
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("hardware key is %T: only ECDSA keys are supported", s.Public())
	}
	if pub.Curve.Params().BitSize != 256 {
		return nil, fmt.Errorf("hardware key is on P-%d: notary signs with P-256", pub.Curve.Params().BitSize)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode hardware public key: %w", err)
	}
	return &HardwareKey{PublicKey: data.NewECDSAPublicKey(der), signer: s}, nil
}

// Sign signs sha256(msg) on the hardware and returns raw r||s.
func (k *HardwareKey) Sign(rand io.Reader, msg []byte, _ crypto.SignerOpts) ([]byte, error) {
	digest := sha256.Sum256(msg)
	der, err := k.signer.Sign(rand, digest[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return DERToRaw(der, 32)
}

// DERToRaw converts an ASN.1 DER ECDSA signature to fixed-width r||s
// with each half n bytes (32 for P-256), as notary's "ecdsa" method wants.
func DERToRaw(der []byte, n int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil {
		return nil, errors.New("hardware returned a malformed ECDSA signature")
	}
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || len(sig.R.Bytes()) > n || len(sig.S.Bytes()) > n {
		return nil, errors.New("hardware returned an ECDSA signature out of range")
	}
	out := make([]byte, 2*n)
	sig.R.FillBytes(out[:n])
	sig.S.FillBytes(out[n:])
	return out, nil
}

// Private is empty: the private key never leaves the hardware.
func (k *HardwareKey) Private() []byte { return nil }

// CryptoSigner returns the hardware signer (DER signatures), as
// x509.CreateCertificate wants for the root certificate.
func (k *HardwareKey) CryptoSigner() crypto.Signer { return k.signer }

// SignatureAlgorithm is notary's "ecdsa".
func (k *HardwareKey) SignatureAlgorithm() data.SigAlgorithm { return data.ECDSASignature }
