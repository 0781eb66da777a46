package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"
)

// TestHardwareKeySignsAsNotary: a crypto.Signer (here a software ECDSA
// key standing in for a card) wrapped as HardwareKey produces signatures
// notary's verifier accepts, and has the key ID notary computes.
func TestHardwareKeySignsAsNotary(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hk, err := NewHardwareKey(k)
	if err != nil {
		t.Fatal(err)
	}
	soft, err := utils.ECDSAToPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if hk.ID() != soft.ID() {
		t.Fatalf("key ID %s, notary computes %s", hk.ID(), soft.ID())
	}
	for i := 0; i < 50; i++ { // covers r or s with leading zero bytes
		msg := []byte{byte(i), 1, 2, 3}
		sig, err := hk.Sign(rand.Reader, msg, nil)
		if err != nil || len(sig) != 64 {
			t.Fatalf("sign: %d bytes, %v", len(sig), err)
		}
		if err := signed.Verifiers[data.ECDSASignature].Verify(hk.PublicKey, sig, msg); err != nil {
			t.Fatalf("notary rejects the hardware signature: %v", err)
		}
	}
	if _, err := DERToRaw([]byte{0x30, 0x01}, 32); err == nil {
		t.Fatal("malformed DER accepted")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewHardwareKey(p384); err == nil {
		t.Fatal("P-384 accepted")
	}
}
