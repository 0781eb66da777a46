package pivsim

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/rand"
	"crypto/subtle"
)

// Algorithm identifiers (SP 800-78-4 table 6-2, and Yubico's for
// Ed25519 and X25519).
const (
	alg3DES    = 0x03
	algRSA3072 = 0x05
	algRSA1024 = 0x06
	algRSA2048 = 0x07
	algAES128  = 0x08
	algAES192  = 0x0a
	algAES256  = 0x0c
	algECCP256 = 0x11
	algECCP384 = 0x14
	algRSA4096 = 0x16
	algEd25519 = 0xe0
	algX25519  = 0xe1
)

const refMgmKey = 0x9b // the card management key

// Touch policies (Yubico).
const (
	touchDefault = 0x00
	touchNever   = 0x01
	touchAlways  = 0x02
	touchCached  = 0x03
)

var defaultMgmKeyBytes = []byte{
	1, 2, 3, 4, 5, 6, 7, 8,
	1, 2, 3, 4, 5, 6, 7, 8,
	1, 2, 3, 4, 5, 6, 7, 8,
}

// mgmKey is the card management key (9b).
type mgmKey struct {
	alg   byte
	key   []byte
	touch byte
}

func (c *Card) defaultMgmKey() mgmKey {
	alg := byte(alg3DES)
	if c.atLeast(5, 7, 0) {
		alg = algAES192
	}
	return mgmKey{alg: alg, key: bytes.Clone(defaultMgmKeyBytes), touch: touchNever}
}

func (m mgmKey) isDefault() bool { return bytes.Equal(m.key, defaultMgmKeyBytes) }

func (m mgmKey) block() (cipher.Block, error) {
	if m.alg == alg3DES {
		return des.NewTripleDESCipher(m.key)
	}
	return aes.NewCipher(m.key)
}

// mgmKeyLen returns the key size of a management key algorithm the card
// supports, or 0.
func (c *Card) mgmKeyLen(alg byte) int {
	switch {
	case alg == alg3DES:
		return 24
	case !c.atLeast(5, 4, 0):
		return 0
	case alg == algAES128:
		return 16
	case alg == algAES192:
		return 24
	case alg == algAES256:
		return 32
	}
	return 0
}

// authMgmKey is GENERAL AUTHENTICATE with the management key (SP 800-73-4
// part 2 appendix A.1, "mutual authentication" as YubiKeys do it): the
// host asks for a witness (7C{80 00}), the card answers with it encrypted;
// the host sends it decrypted with a challenge of its own (7C{80 W, 81 C})
// and the card answers with the challenge encrypted (7C{82 E(C)}).
func (c *Card) authMgmKey(cmd command, tmpl []tlv) response {
	if cmd.p1 != c.mgm.alg {
		return status(swIncorrectP1P2)
	}
	block, err := c.mgm.block()
	if err != nil {
		return status(swIncorrectData)
	}
	n := block.BlockSize()
	witness, hasWitness := find(tmpl, 0x80)
	challenge, hasChallenge := find(tmpl, 0x81)
	switch {
	case hasWitness && len(witness) == 0 && !hasChallenge:
		c.mgmAuthed = false
		c.witness = make([]byte, n)
		if _, err := rand.Read(c.witness); err != nil {
			return status(swConditionsNotSatisfied)
		}
		enc := make([]byte, n)
		block.Encrypt(enc, c.witness)
		return success(tlvBytes(0x7c, tlvBytes(0x80, enc)))

	case hasWitness && hasChallenge:
		want := c.witness
		c.witness = nil
		if want == nil || len(challenge) != n {
			return status(swIncorrectData)
		}
		if subtle.ConstantTimeCompare(witness, want) != 1 {
			return status(swSecurityNotSatisfied)
		}
		if c.mgm.touch == touchAlways && !c.askTouch(refMgmKey) {
			return status(swSecurityNotSatisfied)
		}
		c.mgmAuthed = true
		enc := make([]byte, n)
		block.Encrypt(enc, challenge)
		return success(tlvBytes(0x7c, tlvBytes(0x82, enc)))
	}
	return status(swIncorrectData)
}

// setMgmKey is Yubico's SET MANAGEMENT KEY: P2 0xff (no touch) or 0xfe
// (touch), data algorithm, 9b, length, key.
func (c *Card) setMgmKey(cmd command) response {
	if !c.mgmAuthed {
		return status(swSecurityNotSatisfied)
	}
	touch := byte(touchNever)
	switch {
	case cmd.p1 != 0xff:
		return status(swIncorrectP1P2)
	case cmd.p2 == 0xfe:
		touch = touchAlways
	case cmd.p2 != 0xff:
		return status(swIncorrectP1P2)
	}
	d := cmd.data
	if len(d) < 3 || d[1] != refMgmKey || int(d[2]) != len(d)-3 {
		return status(swIncorrectData)
	}
	alg, key := d[0], d[3:]
	if n := c.mgmKeyLen(alg); n == 0 || n != len(key) {
		return status(swIncorrectData)
	}
	c.mgm = mgmKey{alg: alg, key: bytes.Clone(key), touch: touch}
	return status(swOK)
}

// askTouch asks Options.Touch for a touch.
func (c *Card) askTouch(slot byte) bool {
	return c.touch == nil || c.touch(slot)
}
