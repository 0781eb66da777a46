//go:build !nopcsc && (cgo || windows)

// Package yubikey keeps TUF keys on YubiKeys through PIV (piv-go v2): list
// cards, set them up, generate keys on the device, attest them, and sign
// for notary's CryptoService. The PIN prompt and the touch notice are
// callbacks; the package never prints or prompts.
package yubikey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/keys"
)

// Supported reports whether this binary was built with PC/SC.
const Supported = true

// RootSlot is the slot signet keeps a root key in (PIV "digital
// signature", 9c, as notary's own YubiKey support does).
var RootSlot = piv.SlotSignature

// Options are the callbacks a card needs.
type Options struct {
	// PIN returns the PIN for the card with this serial; retries is what
	// the card reports left (-1 if unknown). Required to sign or generate.
	PIN func(serial uint32, retries int) (string, error)
	// Touch is called before an operation the card will wait for a touch
	// on.
	Touch func(serial uint32, slot string)
}

// Card is one opened YubiKey.
type Card struct {
	yk     *piv.YubiKey
	Name   string
	Serial uint32
	opts   Options
}

// Cards lists the PC/SC readers that hold a YubiKey-like PIV card.
func Cards() ([]string, error) {
	names, err := piv.Cards()
	if err != nil {
		return nil, fmt.Errorf("list smart cards (is pcscd running?): %w", err)
	}
	return names, nil
}

// Open opens the card with this serial (0: the only card).
func Open(serial uint32, opts Options) (*Card, error) {
	names, err := Cards()
	if err != nil {
		return nil, err
	}
	var found []*Card
	for _, n := range names {
		yk, err := piv.Open(n)
		if err != nil {
			continue
		}
		s, err := yk.Serial()
		if err != nil {
			yk.Close()
			continue
		}
		c := &Card{yk: yk, Name: n, Serial: s, opts: opts}
		if serial != 0 && s != serial {
			c.Close()
			continue
		}
		found = append(found, c)
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && serial != 0:
		return nil, fmt.Errorf("no YubiKey with serial %d: insert it, or list cards with `signet yubikey list`", serial)
	case len(found) == 0:
		return nil, errors.New("no YubiKey found: insert one (and check pcscd is running)")
	}
	for _, c := range found {
		c.Close()
	}
	return nil, fmt.Errorf("%d YubiKeys found: pick one with --serial", len(found))
}

// OpenReader opens the card in one PC/SC reader (a name from Cards).
func OpenReader(name string, opts Options) (*Card, error) {
	yk, err := piv.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open smart card %q: %w", name, err)
	}
	s, err := yk.Serial()
	if err != nil {
		yk.Close()
		return nil, fmt.Errorf("read the serial of %q (not a YubiKey?): %w", name, err)
	}
	return &Card{yk: yk, Name: name, Serial: s, opts: opts}, nil
}

// Close releases the card.
func (c *Card) Close() error { return c.yk.Close() }

// SlotInfo describes a slot in use.
type SlotInfo struct {
	Slot        string
	Algorithm   string
	PINPolicy   string
	TouchPolicy string
	Subject     string
	KeyID       string // notary key ID, for ECDSA P-256 keys
}

// Info describes a card.
type Info struct {
	Name       string
	Serial     uint32
	Firmware   string
	PINRetries int
	Slots      []SlotInfo
}

// Info reads what `signet yubikey list` shows.
func (c *Card) Info() (Info, error) {
	v := c.yk.Version()
	info := Info{Name: c.Name, Serial: c.Serial, Firmware: fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch), PINRetries: -1}
	if r, err := c.yk.Retries(); err == nil {
		info.PINRetries = r
	}
	for _, s := range []piv.Slot{piv.SlotAuthentication, piv.SlotSignature, piv.SlotKeyManagement, piv.SlotCardAuthentication} {
		cert, err := c.yk.Certificate(s)
		if err != nil {
			continue
		}
		si := SlotInfo{Slot: s.String(), Subject: cert.Subject.CommonName}
		if ki, err := c.yk.KeyInfo(s); err == nil {
			si.Algorithm, si.PINPolicy, si.TouchPolicy = algName(ki.Algorithm), pinName(ki.PINPolicy), touchName(ki.TouchPolicy)
		}
		if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); ok {
			if der, err := x509.MarshalPKIXPublicKey(pub); err == nil {
				si.KeyID = data.NewECDSAPublicKey(der).ID()
			}
		}
		info.Slots = append(info.Slots, si)
	}
	return info, nil
}

// pin asks the callback, with the retries left.
func (c *Card) pin() (string, error) {
	if c.opts.PIN == nil {
		return "", fmt.Errorf("YubiKey %d needs its PIN and no one can be asked: set SIGNET_YUBIKEY_PIN", c.Serial)
	}
	r, err := c.yk.Retries()
	if err != nil {
		r = -1
	}
	if r == 0 {
		return "", fmt.Errorf("the PIN of YubiKey %d is blocked: unblock it with the PUK (ykman piv access unblock-pin) or reset the card", c.Serial)
	}
	return c.opts.PIN(c.Serial, r)
}

// authErr turns piv's wrong-PIN error into one with the retries left.
func (c *Card) authErr(doing string, err error) error {
	var ae piv.AuthErr
	if errors.As(err, &ae) {
		if ae.Retries == 0 {
			return fmt.Errorf("%s: wrong PIN for YubiKey %d: the PIN is now blocked", doing, c.Serial)
		}
		return fmt.Errorf("%s: wrong PIN for YubiKey %d: %d tries left", doing, c.Serial, ae.Retries)
	}
	return fmt.Errorf("%s on YubiKey %d: %w", doing, c.Serial, err)
}

// managementKey returns the management key: the one `setup` stored
// PIN-protected on the card, else the factory default.
func (c *Card) managementKey(pin string) []byte {
	if m, err := c.yk.Metadata(pin); err == nil && m.ManagementKey != nil {
		return *m.ManagementKey
	}
	return piv.DefaultManagementKey
}

// GenerateOptions choose the policies of a new key.
type GenerateOptions struct {
	Slot        piv.Slot
	PINPolicy   piv.PINPolicy   // default Always
	TouchPolicy piv.TouchPolicy // default Always
	// Subject is the certificate's common name (the GUN, or "root").
	Subject string
}

// prepare applies the default policies (PIN and touch always), checks
// the PIN and finds the management key.
func (c *Card) prepare(o GenerateOptions, doing string) (GenerateOptions, string, []byte, error) {
	if o.PINPolicy == 0 {
		o.PINPolicy = piv.PINPolicyAlways
	}
	if o.TouchPolicy == 0 {
		o.TouchPolicy = piv.TouchPolicyAlways
	}
	pin, err := c.pin()
	if err != nil {
		return o, "", nil, err
	}
	if err := c.yk.VerifyPIN(pin); err != nil {
		return o, "", nil, c.authErr(doing, err)
	}
	return o, pin, c.managementKey(pin), nil
}

// Generate makes an ECDSA P-256 key on the card (it never leaves it) and
// writes a self-signed certificate for it into the slot.
func (c *Card) Generate(o GenerateOptions) (*keys.HardwareKey, error) {
	o, pin, mk, err := c.prepare(o, "generate a key")
	if err != nil {
		return nil, err
	}
	pub, err := c.yk.GenerateKey(mk, o.Slot, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: o.PINPolicy, TouchPolicy: o.TouchPolicy})
	if err != nil {
		return nil, fmt.Errorf("generate a key in slot %s of YubiKey %d: %w", o.Slot, c.Serial, err)
	}
	hk, err := c.hardwareKey(o.Slot, pub, pin, o.TouchPolicy)
	if err != nil {
		return nil, err
	}
	if err := c.writeCert(o.Slot, pub, hk, o, mk); err != nil {
		return nil, err
	}
	return hk, nil
}

// Import copies an existing software ECDSA P-256 key into a slot, for
// teams that want a backup of the root (the key then exists outside the
// card too; attestation will not vouch for it), and writes a self-signed
// certificate for it.
func (c *Card) Import(key data.PrivateKey, o GenerateOptions) (*keys.HardwareKey, error) {
	priv, ok := key.CryptoSigner().(*ecdsa.PrivateKey)
	if !ok || priv.Curve.Params().BitSize != 256 {
		return nil, fmt.Errorf("only ECDSA P-256 keys can go on a YubiKey, not %s", key.Algorithm())
	}
	o, pin, mk, err := c.prepare(o, "import a key")
	if err != nil {
		return nil, err
	}
	if err := c.yk.SetPrivateKeyInsecure(mk, o.Slot, priv, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: o.PINPolicy, TouchPolicy: o.TouchPolicy}); err != nil {
		return nil, fmt.Errorf("import the key into slot %s of YubiKey %d: %w", o.Slot, c.Serial, err)
	}
	hk, err := c.hardwareKey(o.Slot, &priv.PublicKey, pin, o.TouchPolicy)
	if err != nil {
		return nil, err
	}
	if err := c.writeCert(o.Slot, &priv.PublicKey, hk, o, mk); err != nil {
		return nil, err
	}
	return hk, nil
}

func (c *Card) touch(slot piv.Slot, tp piv.TouchPolicy) {
	if c.opts.Touch != nil && (tp == piv.TouchPolicyAlways || tp == piv.TouchPolicyCached) {
		c.opts.Touch(c.Serial, slot.String())
	}
}

// writeCert self-signs a certificate for the slot's key (on the card)
// and stores it in the slot, where Info and Key find the public key.
func (c *Card) writeCert(slot piv.Slot, pub crypto.PublicKey, hk *keys.HardwareKey, o GenerateOptions, mk []byte) error {
	subject := o.Subject
	if subject == "" {
		subject = "signet"
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: subject},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, hk.CryptoSigner())
	if err != nil {
		return fmt.Errorf("self-sign the certificate of slot %s: %w", slot, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	if err := c.yk.SetCertificate(mk, slot, cert); err != nil {
		return fmt.Errorf("write the certificate of slot %s: %w", slot, err)
	}
	return nil
}

// touchSigner calls the touch notice before each signature.
type touchSigner struct {
	crypto.Signer
	before func()
}

func (t touchSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	t.before()
	return t.Signer.Sign(r, digest, opts)
}

func (c *Card) hardwareKey(slot piv.Slot, pub crypto.PublicKey, pin string, tp piv.TouchPolicy) (*keys.HardwareKey, error) {
	priv, err := c.yk.PrivateKey(slot, pub, piv.KeyAuth{PIN: pin})
	if err != nil {
		return nil, c.authErr("open slot "+slot.String(), err)
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("slot %s of YubiKey %d cannot sign", slot, c.Serial)
	}
	return keys.NewHardwareKey(touchSigner{Signer: s, before: func() { c.touch(slot, tp) }})
}

// Key returns the key in a slot, as a notary private key that signs on
// the card (asking for the PIN through the callback).
func (c *Card) Key(slot piv.Slot) (*keys.HardwareKey, error) {
	cert, err := c.yk.Certificate(slot)
	if err != nil {
		return nil, fmt.Errorf("slot %s of YubiKey %d holds no key (no certificate): generate one with signet yubikey generate", slot, c.Serial)
	}
	tp := piv.TouchPolicyNever
	if ki, err := c.yk.KeyInfo(slot); err == nil {
		tp = ki.TouchPolicy
	}
	pin, err := c.pin()
	if err != nil {
		return nil, err
	}
	return c.hardwareKey(slot, cert.PublicKey, pin, tp)
}

// CertificatePEM returns the slot's certificate as PEM (what `signet` or
// `notary delegation add` take to add a signer).
func (c *Card) CertificatePEM(slot piv.Slot) ([]byte, error) {
	cert, err := c.yk.Certificate(slot)
	if err != nil {
		return nil, fmt.Errorf("read the certificate of slot %s of YubiKey %d: %w", slot, c.Serial, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), nil
}

// Attest returns the attestation of a slot, verified up to roots (nil:
// Yubico's PIV root CA, as piv-go ships it).
func (c *Card) Attest(slot piv.Slot, roots *x509.CertPool) (*piv.Attestation, error) {
	intermediate, err := c.yk.AttestationCertificate()
	if err != nil {
		return nil, fmt.Errorf("read the attestation certificate of YubiKey %d: %w", c.Serial, err)
	}
	leaf, err := c.yk.Attest(slot)
	if err != nil {
		return nil, fmt.Errorf("attest slot %s of YubiKey %d: %w", slot, c.Serial, err)
	}
	a, err := (&piv.Verifier{Roots: roots}).Verify(intermediate, leaf)
	if err != nil {
		return nil, fmt.Errorf("attestation of slot %s of YubiKey %d does not verify: %w", slot, c.Serial, err)
	}
	if a.Serial != c.Serial {
		return nil, fmt.Errorf("attestation names serial %d, the card says %d", a.Serial, c.Serial)
	}
	return a, nil
}

// Setup changes the PIN and PUK from the factory defaults and sets a
// random management key stored PIN-protected on the card, as ykman does.
func (c *Card) Setup(newPIN, newPUK string) error {
	if len(newPIN) < 6 || len(newPIN) > 8 || len(newPUK) < 6 || len(newPUK) > 8 {
		return errors.New("PIN and PUK must be 6 to 8 characters")
	}
	mk := make([]byte, len(piv.DefaultManagementKey))
	if _, err := rand.Read(mk); err != nil {
		return err
	}
	if err := c.yk.SetManagementKey(piv.DefaultManagementKey, mk); err != nil {
		return fmt.Errorf("set the management key of YubiKey %d (was it set up already?): %w", c.Serial, err)
	}
	if err := c.yk.SetPIN(piv.DefaultPIN, newPIN); err != nil {
		return c.authErr("change the PIN", err)
	}
	if err := c.yk.SetPUK(piv.DefaultPUK, newPUK); err != nil {
		return c.authErr("change the PUK", err)
	}
	if err := c.yk.SetMetadata(mk, &piv.Metadata{ManagementKey: &mk}); err != nil {
		return fmt.Errorf("store the management key on YubiKey %d: %w", c.Serial, err)
	}
	return nil
}

// Reset erases the PIV application (keys, certificates, PIN, PUK). The
// card refuses unless PIN and PUK are blocked; Reset blocks them first.
func (c *Card) Reset() error {
	if err := c.yk.Reset(); err != nil {
		return fmt.Errorf("reset YubiKey %d: %w", c.Serial, err)
	}
	return nil
}

// SlotFor is where signet keeps a role's key: root in 9c (as notary's own
// YubiKey support does), the repository (targets) key in 9a, signer
// (delegation) keys in 9d.
func SlotFor(role string) piv.Slot {
	switch {
	case role == data.CanonicalRootRole.String():
		return piv.SlotSignature
	case role == data.CanonicalTargetsRole.String():
		return piv.SlotAuthentication
	default:
		return piv.SlotKeyManagement
	}
}

// Subject is the slot certificate's common name that records a key's role
// and repository, so the key store knows what each slot holds.
func Subject(role, gun string) string {
	if gun != "" {
		return "signet " + role + " " + gun
	}
	return "signet " + role
}

func parseSubject(cn string) (role, gun string, ok bool) {
	rest, ok := strings.CutPrefix(cn, "signet ")
	if !ok {
		return "", "", false
	}
	role, gun, _ = strings.Cut(rest, " ")
	if role == "" {
		return "", "", false
	}
	return role, gun, true
}

// KeyStore offers the card's signet keys (root in 9c, targets in 9a, a
// signer in 9d) to notary's CryptoService, so init, sign and rotation use
// the card. The role comes from each slot certificate's subject.
type KeyStore struct {
	Card   *Card
	loaded map[string]*keys.HardwareKey
}

var _ trustmanager.KeyStore = (*KeyStore)(nil)

type slotKey struct {
	slot piv.Slot
	info trustmanager.KeyInfo
}

// slots reads the slot certificates (no PIN needed).
func (ks *KeyStore) slots() map[string]slotKey {
	out := map[string]slotKey{}
	for _, slot := range []piv.Slot{piv.SlotSignature, piv.SlotAuthentication, piv.SlotKeyManagement} {
		cert, err := ks.Card.yk.Certificate(slot)
		if err != nil {
			continue
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			continue
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			continue
		}
		role, gun, ok := parseSubject(cert.Subject.CommonName)
		if !ok {
			// A root generated by other tools in 9c is still a root.
			if slot != piv.SlotSignature {
				continue
			}
			role = data.CanonicalRootRole.String()
		}
		out[data.NewECDSAPublicKey(der).ID()] = slotKey{slot: slot, info: trustmanager.KeyInfo{Role: data.RoleName(role), Gun: data.GUN(gun)}}
	}
	return out
}

// AddKey refuses: keys are generated on the card.
func (ks *KeyStore) AddKey(trustmanager.KeyInfo, data.PrivateKey) error {
	return errors.New("keys are generated on the YubiKey (signet yubikey generate), not added to it")
}

// GetKey returns the key with this ID, signing on the card.
func (ks *KeyStore) GetKey(id string) (data.PrivateKey, data.RoleName, error) {
	sk, ok := ks.slots()[id]
	if !ok {
		return nil, "", trustmanager.ErrKeyNotFound{KeyID: id}
	}
	if k, ok := ks.loaded[id]; ok {
		return k, sk.info.Role, nil
	}
	k, err := ks.Card.Key(sk.slot)
	if err != nil {
		return nil, "", err
	}
	if ks.loaded == nil {
		ks.loaded = map[string]*keys.HardwareKey{}
	}
	ks.loaded[id] = k
	return k, sk.info.Role, nil
}

// GetKeyInfo describes a key on the card.
func (ks *KeyStore) GetKeyInfo(id string) (trustmanager.KeyInfo, error) {
	sk, ok := ks.slots()[id]
	if !ok {
		return trustmanager.KeyInfo{}, trustmanager.ErrKeyNotFound{KeyID: id}
	}
	return sk.info, nil
}

// ListKeys lists the card's signet keys.
func (ks *KeyStore) ListKeys() map[string]trustmanager.KeyInfo {
	out := map[string]trustmanager.KeyInfo{}
	for id, sk := range ks.slots() {
		out[id] = sk.info
	}
	return out
}

// Slot returns the slot holding a key ID.
func (ks *KeyStore) Slot(id string) (string, bool) {
	sk, ok := ks.slots()[id]
	return sk.slot.String(), ok
}

// RemoveKey refuses: use signet yubikey reset.
func (ks *KeyStore) RemoveKey(string) error {
	return errors.New("keys on a YubiKey are removed by resetting it (signet yubikey reset)")
}

// Name names the store.
func (ks *KeyStore) Name() string { return fmt.Sprintf("YubiKey %d", ks.Card.Serial) }

func algName(a piv.Algorithm) string {
	switch a {
	case piv.AlgorithmEC256:
		return "ECCP256"
	case piv.AlgorithmEC384:
		return "ECCP384"
	case piv.AlgorithmEd25519:
		return "Ed25519"
	case piv.AlgorithmRSA2048:
		return "RSA2048"
	}
	return fmt.Sprintf("alg-%d", a)
}

func pinName(p piv.PINPolicy) string {
	return map[piv.PINPolicy]string{piv.PINPolicyNever: "never", piv.PINPolicyOnce: "once", piv.PINPolicyAlways: "always"}[p]
}

func touchName(t piv.TouchPolicy) string {
	return map[piv.TouchPolicy]string{piv.TouchPolicyNever: "never", piv.TouchPolicyAlways: "always", piv.TouchPolicyCached: "cached"}[t]
}
