package pivsim

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
)

// authenticate is GENERAL AUTHENTICATE (SP 800-73-4 part 2 3.2.4): P1 the
// algorithm, P2 the key reference, data a dynamic authentication template
// 7C{...}. With the management key it runs the challenge-response of
// authMgmKey; with a slot key it signs or decrypts 7C{82 00, 81 input} or
// does ECDH with 7C{82 00, 85 peer point}, answering 7C{82 result}.
func (c *Card) authenticate(cmd command) response {
	outer, ok := parseTLVs(cmd.data)
	if !ok {
		return status(swIncorrectData)
	}
	tmplBytes, ok := find(outer, 0x7c)
	if !ok {
		return status(swIncorrectData)
	}
	tmpl, ok := parseTLVs(tmplBytes)
	if !ok {
		return status(swIncorrectData)
	}
	if cmd.p2 == refMgmKey {
		return c.authMgmKey(cmd, tmpl)
	}

	k := c.keys[cmd.p2]
	if k == nil || k.alg != cmd.p1 {
		return status(swIncorrectData)
	}
	if r, ok := find(tmpl, 0x82); !ok || len(r) != 0 {
		return status(swIncorrectData)
	}
	input, sign := find(tmpl, 0x81)
	peer, exchange := find(tmpl, 0x85)
	if sign == exchange {
		return status(swIncorrectData)
	}
	if sw := c.allowed(cmd.p2, k); sw != swOK {
		return status(sw)
	}
	var out []byte
	if sign {
		out, ok = k.sign(input)
	} else {
		out, ok = k.exchange(peer)
	}
	if !ok {
		return status(swIncorrectData)
	}
	return success(tlvBytes(0x7c, tlvBytes(0x82, out)))
}

// sign is the private key operation on "challenge" input: ECDSA over a
// digest (at most the size of the curve; the answer is DER), Ed25519 over
// a message, or raw RSA (input as long as the modulus and padded by the
// host, for signing and decryption alike).
func (k *slotKey) sign(input []byte) ([]byte, bool) {
	switch p := k.priv.(type) {
	case *ecdsa.PrivateKey:
		if len(input) == 0 || len(input) > (p.Curve.Params().BitSize+7)/8 {
			return nil, false
		}
		sig, err := ecdsa.SignASN1(rand.Reader, p, input)
		return sig, err == nil
	case ed25519.PrivateKey:
		return ed25519.Sign(p, input), true
	case *rsa.PrivateKey:
		return rawRSA(p, input)
	}
	return nil, false
}

// rawRSA computes input^d mod n, the RSA operation without padding.
func rawRSA(p *rsa.PrivateKey, input []byte) ([]byte, bool) {
	size := p.Size()
	m := new(big.Int).SetBytes(input)
	if len(input) != size || m.Cmp(p.N) >= 0 {
		return nil, false
	}
	s := new(big.Int).Exp(m, p.D, p.N)
	// Check the result against the public key, as cards do to guard
	// against faults.
	if new(big.Int).Exp(s, big.NewInt(int64(p.E)), p.N).Cmp(m) != 0 {
		return nil, false
	}
	return s.FillBytes(make([]byte, size)), true
}

// exchange is ECDH with an uncompressed peer point (or an X25519 public
// key); the answer is the shared secret.
func (k *slotKey) exchange(peer []byte) ([]byte, bool) {
	var priv *ecdh.PrivateKey
	switch p := k.priv.(type) {
	case *ecdsa.PrivateKey:
		var err error
		if priv, err = p.ECDH(); err != nil {
			return nil, false
		}
	case *ecdh.PrivateKey:
		priv = p
	default:
		return nil, false
	}
	pub, err := priv.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, false
	}
	secret, err := priv.ECDH(pub)
	return secret, err == nil
}
