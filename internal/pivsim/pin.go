package pivsim

import (
	"bytes"
	"crypto/subtle"
)

// Key references of the PIN and PUK (SP 800-73-4 part 1 table 4).
const (
	refPIN = 0x80
	refPUK = 0x81
)

// Factory values.
var (
	defaultPIN = padPIN("123456")
	defaultPUK = padPIN("12345678")
)

const defaultTries = 3

// secret is a PIN or PUK with its retry counter.
type secret struct {
	value   [8]byte // padded with 0xff to eight bytes
	tries   int     // retries left; 0 means blocked
	max     int     // tries after a successful verification
	initial [8]byte // the factory value, for METADATA's "default" flag
}

func padPIN(s string) [8]byte {
	var b [8]byte
	for i := range b {
		b[i] = 0xff
	}
	copy(b[:], s)
	return b
}

func newSecret(v [8]byte, tries int) secret {
	return secret{value: v, tries: tries, max: tries, initial: v}
}

// check compares a candidate with the secret, counting a failure. It
// returns the status word to answer with: 9000, 63Cx with the retries left,
// or 6983 when the secret was already blocked.
func (s *secret) check(candidate []byte) uint16 {
	if s.tries == 0 {
		return swAuthBlocked
	}
	if subtle.ConstantTimeCompare(candidate, s.value[:]) == 1 {
		s.tries = s.max
		return swOK
	}
	s.tries--
	return retriesSW(s.tries)
}

func retriesSW(tries int) uint16 {
	return swVerifyFail | uint16(min(tries, 15))
}

// validPIN reports whether b is an eight-byte PIN or PUK block holding six
// to eight characters followed by 0xff padding, as YubiKeys require of new
// values.
func validPIN(b []byte) bool {
	if len(b) != 8 {
		return false
	}
	n := bytes.IndexByte(b, 0xff)
	if n < 0 {
		n = 8
	}
	for _, c := range b[n:] {
		if c != 0xff {
			return false
		}
	}
	return n >= 6
}

// verify is VERIFY (SP 800-73-4 part 2 3.2.1) for the PIN: with data it
// checks the PIN; without, it reports whether the PIN is verified (9000) or
// the retries left (63Cx); with P1 0xff it forgets a verification.
func (c *Card) verify(cmd command) response {
	if cmd.p2 != refPIN {
		return status(swRefNotFound)
	}
	switch {
	case cmd.p1 == 0xff && len(cmd.data) == 0:
		c.pinVerified, c.pinFresh = false, false
		return status(swOK)
	case cmd.p1 != 0x00:
		return status(swIncorrectP1P2)
	case len(cmd.data) == 0:
		if c.pin.tries == 0 {
			return status(swAuthBlocked)
		}
		if c.pinVerified {
			return status(swOK)
		}
		return status(retriesSW(c.pin.tries))
	case len(cmd.data) != 8:
		return status(swIncorrectData)
	}
	sw := c.pin.check(cmd.data)
	c.pinVerified = sw == swOK
	c.pinFresh = c.pinVerified
	return status(sw)
}

// changeReference is CHANGE REFERENCE DATA (3.2.2) for the PIN (P2 0x80)
// or PUK (0x81): data is the old value then the new one, eight bytes each.
func (c *Card) changeReference(cmd command) response {
	var s *secret
	switch {
	case cmd.p1 != 0x00:
		return status(swIncorrectP1P2)
	case cmd.p2 == refPIN:
		s = &c.pin
	case cmd.p2 == refPUK:
		s = &c.puk
	default:
		return status(swRefNotFound)
	}
	if len(cmd.data) != 16 {
		return status(swIncorrectData)
	}
	// The old value first, so that a bad new one still counts a wrong old
	// one (piv-go's Reset blocks the PUK with random values of any length).
	if sw := s.check(cmd.data[:8]); sw != swOK {
		if s == &c.pin {
			c.pinVerified, c.pinFresh = false, false
		}
		return status(sw)
	}
	if !validPIN(cmd.data[8:]) {
		return status(swIncorrectData)
	}
	copy(s.value[:], cmd.data[8:])
	return status(swOK)
}

// resetRetry is RESET RETRY COUNTER (3.2.3): the PUK then a new PIN
// unblock the PIN.
func (c *Card) resetRetry(cmd command) response {
	switch {
	case cmd.p1 != 0x00:
		return status(swIncorrectP1P2)
	case cmd.p2 != refPIN:
		return status(swRefNotFound)
	case len(cmd.data) != 16:
		return status(swIncorrectData)
	}
	if sw := c.puk.check(cmd.data[:8]); sw != swOK {
		return status(sw)
	}
	if !validPIN(cmd.data[8:]) {
		return status(swIncorrectData)
	}
	copy(c.pin.value[:], cmd.data[8:])
	c.pin.tries = c.pin.max
	c.pinVerified, c.pinFresh = false, false
	return status(swOK)
}

// setPINRetries is Yubico's SET PIN RETRIES: P1 and P2 are the PIN and PUK
// tries. It needs the management key and the PIN, and sets both back to
// their factory values.
func (c *Card) setPINRetries(cmd command) response {
	switch {
	case !c.mgmAuthed || !c.pinVerified:
		return status(swSecurityNotSatisfied)
	case cmd.p1 == 0 || cmd.p2 == 0:
		return status(swIncorrectP1P2)
	}
	c.pin = newSecret(defaultPIN, int(cmd.p1))
	c.puk = newSecret(defaultPUK, int(cmd.p2))
	return status(swOK)
}

// reset is Yubico's RESET: allowed only when both PIN and PUK are
// blocked, it brings the PIV application back to factory state. The
// attestation key and certificate (slot f9) survive, as on a YubiKey.
func (c *Card) reset(cmd command) response {
	if c.pin.tries != 0 || c.puk.tries != 0 {
		return status(swConditionsNotSatisfied)
	}
	c.factoryReset()
	return status(swOK)
}

// factoryReset sets PIN, PUK and management key to their defaults and
// deletes keys and data objects other than the attestation key's.
func (c *Card) factoryReset() {
	c.pin = newSecret(defaultPIN, defaultTries)
	c.puk = newSecret(defaultPUK, defaultTries)
	c.mgm = c.defaultMgmKey()
	for ref := range c.keys {
		if ref != slotAttestation {
			delete(c.keys, ref)
		}
	}
	for tag := range c.objects {
		if tag != objAttestation {
			delete(c.objects, tag)
		}
	}
	c.clearSession()
}
