package pivsim

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Card. The zero value makes a YubiKey 5 with firmware
// 5.4.3, a random serial number, factory PIN, PUK and management key, and
// its own attestation CA.
type Options struct {
	// Serial is the card's serial number. Zero means a random eight-digit
	// number.
	Serial uint32

	// Version is the firmware version the card reports (GET VERSION, the
	// attestation certificates) and emulates: METADATA needs 5.3.0, AES
	// management keys 5.4.0, RSA 3072/4096, Ed25519 and X25519 5.7.0, and
	// from 5.7.0 the default management key is AES-192 instead of 3DES.
	// Zero means 5.4.3. Versions below 5 report the serial number through
	// the YubiKey OTP application, as those YubiKeys do.
	Version [3]byte

	// CA signs the card's attestation certificate (slot f9). Nil means the
	// card makes its own; Card.AttestationRoot returns its root either way.
	CA *CA

	// FormFactor is the form factor the card reports in attestations and in
	// the management application (1 USB-A keychain ... 5 USB-C/Lightning;
	// see piv.Formfactor). Zero means 1.
	FormFactor byte

	// Touch is called, with the slot's key reference, whenever a key or the
	// management key needs a touch under its touch policy. Returning false
	// means no touch arrived: the card answers "security status not
	// satisfied" (6982). Nil means every touch arrives at once. Touch runs
	// with the card locked and must not call the Card.
	Touch func(slot byte) bool

	// Now is the card's clock, for the 15 second cache of the "cached"
	// touch policy. Nil means time.Now.
	Now func() time.Time
}

// Card is a simulated PIV smart card with Yubico's extensions: the state of
// a YubiKey's PIV application and the APDUs that read and change it. Its
// methods are safe for concurrent use.
type Card struct {
	mu sync.Mutex

	// Fixed at manufacture.
	serial     uint32
	version    [3]byte
	formFactor byte
	ca         *CA
	touch      func(slot byte) bool
	now        func() time.Time

	// Persistent state (survives power cycles; RESET restores defaults).
	pin, puk secret
	mgm      mgmKey
	keys     map[byte]*slotKey // by key reference
	objects  map[uint32][]byte // data objects by tag: the value of tag 0x53

	// Volatile state, cleared by a power cycle or reset.
	applet      applet
	pinVerified bool   // PIN verified in this session
	pinFresh    bool   // verified and not yet used by a PIN-always key
	mgmAuthed   bool   // management key authenticated in this session
	witness     []byte // management key witness awaiting its decryption
	pending     []byte // response bytes left for GET RESPONSE
	chain       *command

	noQuickAck atomic.Bool // for measurements: leave delayed ACKs on
}

type applet int

const (
	appletNone applet = iota
	appletPIV
	appletManagement
	appletOTP
)

// Limits of untrusted input.
const (
	maxChainData  = 16 << 10 // bytes of one chained command
	maxObjectSize = 3052     // bytes of one data object, as on a YubiKey 5
	shortChunk    = 256      // response bytes per short APDU
)

// New returns a card in factory state: PIN 123456, PUK 12345678 (three
// tries each), the default management key 0102030405060708 three times
// (3DES, or AES-192 from firmware 5.7), no keys except the attestation key
// in slot f9 with its certificate, and no data objects.
func New(opts Options) (*Card, error) {
	c := &Card{
		serial:     opts.Serial,
		version:    opts.Version,
		formFactor: opts.FormFactor,
		ca:         opts.CA,
		touch:      opts.Touch,
		now:        opts.Now,
	}
	if c.version == ([3]byte{}) {
		c.version = [3]byte{5, 4, 3}
	}
	if c.formFactor == 0 {
		c.formFactor = 1
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.serial == 0 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("make serial number: %w", err)
		}
		c.serial = 10_000_000 + binary.BigEndian.Uint32(b[:])%90_000_000
	}
	if c.ca == nil {
		ca, err := NewCA()
		if err != nil {
			return nil, err
		}
		c.ca = ca
	}
	c.keys = map[byte]*slotKey{}
	c.objects = map[uint32][]byte{}
	if err := c.makeAttestationKey(); err != nil {
		return nil, err
	}
	c.factoryReset()
	return c, nil
}

// Serial returns the card's serial number.
func (c *Card) Serial() uint32 { return c.serial }

// AttestationRoot returns the root certificate of the card's attestation
// chain: root -> slot f9 certificate -> ATTEST certificates. Verify
// attestations with it where real code uses Yubico's PIV root CA, for
// example piv.Verifier{Roots: pool}.
func (c *Card) AttestationRoot() *x509.Certificate { return c.ca.Root }

// ATR returns the card's answer to reset, the one a YubiKey 5 gives over
// USB (T=1, historical bytes ending in "YubiKey@").
func (c *Card) ATR() []byte {
	return []byte{
		0x3b, 0xfd, 0x13, 0x00, 0x00, 0x81, 0x31, 0xfe, 0x15, 0x80, 0x73, 0xc0,
		0x21, 0xc0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4b, 0x65, 0x79, 0x40,
	}
}

// Apdu processes one command APDU and returns the response APDU: data
// followed by the two status bytes. Responses longer than 256 bytes to
// short APDUs come in pieces with status 61xx, to be fetched with GET
// RESPONSE; commands with CLA 0x10 are chained. Apdu does no I/O.
func (c *Card) Apdu(cmd []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.process(cmd)
}

func (c *Card) process(raw []byte) []byte {
	cmd, sw := parseCommand(raw)
	if sw != swOK {
		c.pending, c.chain = nil, nil
		return withSW(nil, sw)
	}
	if cmd.cla&^0x10 != 0 {
		c.pending, c.chain = nil, nil
		return withSW(nil, swCLANotSupported)
	}
	if cmd.ins == insGetResponse && c.chain == nil {
		return c.getResponse()
	}
	c.pending = nil

	if c.chain != nil {
		if cmd.ins != c.chain.ins || cmd.p1 != c.chain.p1 || cmd.p2 != c.chain.p2 {
			c.chain = nil
			return withSW(nil, swLastCommandExpected)
		}
		if len(c.chain.data)+len(cmd.data) > maxChainData {
			c.chain = nil
			return withSW(nil, swWrongLength)
		}
		cmd.data = append(c.chain.data, cmd.data...)
		c.chain = nil
	}
	if cmd.cla&0x10 != 0 {
		chained := cmd
		chained.data = append([]byte(nil), cmd.data...) // raw belongs to the caller
		c.chain = &chained
		return withSW(nil, swOK)
	}

	r := c.dispatch(cmd)
	if r.sw != swOK || cmd.extended || len(r.data) <= shortChunk {
		return withSW(r.data, r.sw)
	}
	c.pending = r.data[shortChunk:]
	return withSW(r.data[:shortChunk:shortChunk], moreData(len(c.pending)))
}

// getResponse returns the next piece of a long response (ISO/IEC 7816-4
// 7.6.1).
func (c *Card) getResponse() []byte {
	if len(c.pending) == 0 {
		return withSW(nil, swConditionsNotSatisfied)
	}
	n := min(len(c.pending), shortChunk)
	out := append([]byte(nil), c.pending[:n]...)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
		return withSW(out, swOK)
	}
	return withSW(out, moreData(len(c.pending)))
}

func moreData(left int) uint16 {
	if left >= shortChunk {
		return swMoreData
	}
	return swMoreData | uint16(left)
}

// pivHandlers are the commands of the PIV application.
var pivHandlers = map[byte]func(*Card, command) response{
	insVerify:          (*Card).verify,
	insChangeReference: (*Card).changeReference,
	insResetRetry:      (*Card).resetRetry,
	insGenerate:        (*Card).generate,
	insAuthenticate:    (*Card).authenticate,
	insGetData:         (*Card).getData,
	insPutData:         (*Card).putData,
	insGetMetadata:     (*Card).metadata,
	insGetSerial:       (*Card).getSerial,
	insAttest:          (*Card).attest,
	insSetPINRetries:   (*Card).setPINRetries,
	insReset:           (*Card).reset,
	insGetVersion:      (*Card).getVersion,
	insImportKey:       (*Card).importKey,
	insSetMgmKey:       (*Card).setMgmKey,
}

func (c *Card) dispatch(cmd command) response {
	if cmd.ins == insSelect {
		return c.selectApplet(cmd)
	}
	switch c.applet {
	case appletPIV:
		if h, ok := pivHandlers[cmd.ins]; ok {
			return h(c, cmd)
		}
	case appletManagement:
		return c.managementCommand(cmd)
	case appletOTP:
		return c.otpCommand(cmd)
	}
	return status(swINSNotSupported)
}

// powerCycle clears the session: what a reset or power-on of the card
// clears. Persistent state stays.
func (c *Card) powerCycle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearSession()
	c.applet = appletNone
}

// clearSession forgets PIN and management key authentication and any
// half-done exchange.
func (c *Card) clearSession() {
	c.pinVerified, c.pinFresh, c.mgmAuthed = false, false, false
	c.witness, c.pending, c.chain = nil, nil, nil
}

// atLeast reports whether the firmware version is major.minor.patch or
// newer.
func (c *Card) atLeast(major, minor, patch byte) bool {
	v := c.version
	if v[0] != major {
		return v[0] > major
	}
	if v[1] != minor {
		return v[1] > minor
	}
	return v[2] >= patch
}

func (c *Card) getVersion(cmd command) response {
	return success([]byte{c.version[0], c.version[1], c.version[2]})
}

func (c *Card) getSerial(cmd command) response {
	if !c.atLeast(5, 0, 0) {
		return status(swINSNotSupported)
	}
	return success(binary.BigEndian.AppendUint32(nil, c.serial))
}
