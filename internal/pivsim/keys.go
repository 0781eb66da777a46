package pivsim

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"time"
)

// Key references of the asymmetric key slots.
const (
	slotAuthentication     = 0x9a
	slotSignature          = 0x9c
	slotKeyManagement      = 0x9d
	slotCardAuthentication = 0x9e
	slotAttestation        = 0xf9
)

// PIN policies (Yubico).
const (
	pinDefault = 0x00
	pinNever   = 0x01
	pinOnce    = 0x02
	pinAlways  = 0x03
)

// Key origins in METADATA.
const (
	originGenerated = 0x01
	originImported  = 0x02
)

// touchCacheTime is how long a touch lasts under the cached touch policy.
const touchCacheTime = 15 * time.Second

// slotKey is a private key in a slot with its policies.
type slotKey struct {
	alg       byte
	priv      crypto.PrivateKey // *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey or *ecdh.PrivateKey
	pin       byte
	touch     byte
	origin    byte
	lastTouch time.Time
}

// isKeySlot reports whether ref names a slot that GENERATE may fill:
// 9a, 9c, 9d, 9e and the retired key management slots 82-95.
func isKeySlot(ref byte) bool {
	switch ref {
	case slotAuthentication, slotSignature, slotKeyManagement, slotCardAuthentication:
		return true
	}
	return ref >= 0x82 && ref <= 0x95
}

// supportsAlg reports whether the card can hold keys of algorithm alg.
func (c *Card) supportsAlg(alg byte) bool {
	switch alg {
	case algECCP256, algECCP384, algRSA1024, algRSA2048:
		return true
	case algRSA3072, algRSA4096, algEd25519, algX25519:
		return c.atLeast(5, 7, 0)
	}
	return false
}

// policies resolves the PIN and touch policies of a GENERATE or IMPORT
// (0 meaning the slot's default: PIN always for 9c, never for 9e, once
// elsewhere; touch never). It reports false for policies the card lacks,
// such as the biometric ones of a YubiKey Bio.
func policies(slot, pin, touch byte) (byte, byte, bool) {
	if pin == pinDefault {
		switch slot {
		case slotSignature:
			pin = pinAlways
		case slotCardAuthentication, slotAttestation:
			pin = pinNever
		default:
			pin = pinOnce
		}
	}
	if touch == touchDefault {
		touch = touchNever
	}
	return pin, touch, pin <= pinAlways && touch <= touchCached
}

func rsaBits(alg byte) int {
	switch alg {
	case algRSA1024:
		return 1024
	case algRSA2048:
		return 2048
	case algRSA3072:
		return 3072
	case algRSA4096:
		return 4096
	}
	return 0
}

func curve(alg byte) elliptic.Curve {
	if alg == algECCP384 {
		return elliptic.P384()
	}
	return elliptic.P256()
}

// newKey generates a private key of algorithm alg.
func newKey(alg byte) (crypto.PrivateKey, error) {
	switch alg {
	case algECCP256, algECCP384:
		return ecdsa.GenerateKey(curve(alg), rand.Reader)
	case algEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case algX25519:
		return ecdh.X25519().GenerateKey(rand.Reader)
	}
	return rsa.GenerateKey(rand.Reader, rsaBits(alg))
}

// generate is GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 part 2 3.3.2):
// data AC{80 alg [AA pin policy] [AB touch policy]}, answer the public key
// 7F49{...}.
func (c *Card) generate(cmd command) response {
	switch {
	case !c.mgmAuthed:
		return status(swSecurityNotSatisfied)
	case cmd.p1 != 0x00 || !isKeySlot(cmd.p2):
		return status(swIncorrectP1P2)
	}
	outer, ok := parseTLVs(cmd.data)
	if !ok {
		return status(swIncorrectData)
	}
	tmplBytes, ok := find(outer, 0xac)
	if !ok {
		return status(swIncorrectData)
	}
	tmpl, ok := parseTLVs(tmplBytes)
	if !ok {
		return status(swIncorrectData)
	}
	alg, ok := find(tmpl, 0x80)
	if !ok || len(alg) != 1 || !c.supportsAlg(alg[0]) {
		return status(swIncorrectData)
	}
	pin, touch, ok := policies(cmd.p2, policyByte(tmpl, 0xaa), policyByte(tmpl, 0xab))
	if !ok {
		return status(swIncorrectData)
	}
	priv, err := newKey(alg[0])
	if err != nil {
		return status(swConditionsNotSatisfied)
	}
	k := &slotKey{alg: alg[0], priv: priv, pin: pin, touch: touch, origin: originGenerated}
	c.keys[cmd.p2] = k
	return success(tlvBytes(0x7f49, k.publicTLVs()))
}

// policyByte returns the one-byte value of tag, or 0 if it is missing or
// malformed.
func policyByte(tmpl []tlv, tag uint32) byte {
	v, ok := find(tmpl, tag)
	if !ok || len(v) != 1 {
		return 0
	}
	return v[0]
}

// publicTLVs encodes the public key as in GENERATE's answer (SP 800-73-4
// part 2 table 10): 81 modulus, 82 exponent for RSA; 86 point for the
// others.
func (k *slotKey) publicTLVs() []byte {
	switch p := k.priv.(type) {
	case *rsa.PrivateKey:
		out := tlvBytes(0x81, p.N.Bytes())
		return appendTLV(out, 0x82, big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PrivateKey:
		pt, _ := p.PublicKey.Bytes() // uncompressed, 04 || X || Y
		return tlvBytes(0x86, pt)
	case ed25519.PrivateKey:
		return tlvBytes(0x86, p.Public().(ed25519.PublicKey))
	case *ecdh.PrivateKey:
		return tlvBytes(0x86, p.PublicKey().Bytes())
	}
	return nil
}

// public returns the crypto.PublicKey of the slot.
func (k *slotKey) public() crypto.PublicKey {
	return k.priv.(interface{ Public() crypto.PublicKey }).Public()
}

// importKey is Yubico's IMPORT ASYMMETRIC KEY: P1 algorithm, P2 slot, data
// the private key (RSA: 01 p, 02 q, 03 dP, 04 dQ, 05 qInv; EC: 06 d;
// Ed25519: 07 seed; X25519: 08 scalar) then [AA pin] [AB touch].
func (c *Card) importKey(cmd command) response {
	switch {
	case !c.mgmAuthed:
		return status(swSecurityNotSatisfied)
	case !isKeySlot(cmd.p2) && cmd.p2 != slotAttestation:
		return status(swIncorrectP1P2)
	case !c.supportsAlg(cmd.p1):
		return status(swIncorrectP1P2)
	}
	tmpl, ok := parseTLVs(cmd.data)
	if !ok {
		return status(swIncorrectData)
	}
	priv, ok := parsePrivate(cmd.p1, tmpl)
	if !ok {
		return status(swIncorrectData)
	}
	pin, touch, ok := policies(cmd.p2, policyByte(tmpl, 0xaa), policyByte(tmpl, 0xab))
	if !ok {
		return status(swIncorrectData)
	}
	c.keys[cmd.p2] = &slotKey{alg: cmd.p1, priv: priv, pin: pin, touch: touch, origin: originImported}
	return status(swOK)
}

func parsePrivate(alg byte, tmpl []tlv) (crypto.PrivateKey, bool) {
	switch alg {
	case algECCP256, algECCP384:
		d, _ := find(tmpl, 0x06)
		k, err := ecdsa.ParseRawPrivateKey(curve(alg), d)
		return k, err == nil
	case algEd25519:
		seed, _ := find(tmpl, 0x07)
		if len(seed) != ed25519.SeedSize {
			return nil, false
		}
		return ed25519.NewKeyFromSeed(seed), true
	case algX25519:
		d, _ := find(tmpl, 0x08)
		k, err := ecdh.X25519().NewPrivateKey(d)
		return k, err == nil
	}
	p, okP := find(tmpl, 0x01)
	q, okQ := find(tmpl, 0x02)
	if !okP || !okQ {
		return nil, false
	}
	return rsaFromPrimes(new(big.Int).SetBytes(p), new(big.Int).SetBytes(q), rsaBits(alg))
}

// rsaFromPrimes rebuilds an RSA key with exponent 65537 from its primes.
func rsaFromPrimes(p, q *big.Int, bits int) (*rsa.PrivateKey, bool) {
	one := big.NewInt(1)
	n := new(big.Int).Mul(p, q)
	if n.BitLen() != bits {
		return nil, false
	}
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	e := big.NewInt(65537)
	d := new(big.Int).ModInverse(e, phi)
	if d == nil {
		return nil, false
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: n, E: 65537},
		D:         d,
		Primes:    []*big.Int{p, q},
	}
	if k.Validate() != nil {
		return nil, false
	}
	k.Precompute()
	return k, true
}

// allowed checks the PIN and touch policies of a key before a private key
// operation, and returns the status word to refuse with, or 9000.
func (c *Card) allowed(ref byte, k *slotKey) uint16 {
	switch k.pin {
	case pinOnce:
		if !c.pinVerified {
			return swSecurityNotSatisfied
		}
	case pinAlways:
		if !c.pinVerified || !c.pinFresh {
			return swSecurityNotSatisfied
		}
		c.pinFresh = false
	}
	switch k.touch {
	case touchAlways:
		if !c.askTouch(ref) {
			return swSecurityNotSatisfied
		}
	case touchCached:
		now := c.now()
		if !k.lastTouch.IsZero() && now.Sub(k.lastTouch) < touchCacheTime {
			break
		}
		if !c.askTouch(ref) {
			return swSecurityNotSatisfied
		}
		k.lastTouch = now
	}
	return swOK
}
