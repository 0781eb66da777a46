//go:build !nopcsc && cgo && unix

package pivsim_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"

	"github.com/signet-project/signet/internal/pivsim"
	"github.com/signet-project/signet/internal/pivsim/pivsimtest"
)

// newCard makes a card with a fixed serial number, failing the test on
// error.
func newCard(t *testing.T, opts pivsim.Options) *pivsim.Card {
	t.Helper()
	c, err := pivsim.New(opts)
	if err != nil {
		t.Fatalf("pivsim.New: %v", err)
	}
	return c
}

// open inserts card into pcscd's vpcd reader and opens it with piv-go.
func open(t *testing.T, card *pivsim.Card) (*piv.YubiKey, string) {
	t.Helper()
	reader := pivsimtest.Insert(t, card)
	yk, err := piv.Open(reader)
	if err != nil {
		t.Fatalf("piv.Open(%q): %v", reader, err)
	}
	t.Cleanup(func() { yk.Close() })
	return yk, reader
}

// selfSigned returns a certificate for pub, signed by a throwaway key.
func selfSigned(t *testing.T, pub crypto.PublicKey, cn string) *x509.Certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestPIVGo drives a simulated card through libpcsclite, pcscd and vpcd
// with piv-go, step by step on one card.
func TestPIVGo(t *testing.T) {
	card := newCard(t, pivsim.Options{Serial: 21000001})
	yk, reader := open(t, card)
	mgmKey := piv.DefaultManagementKey

	t.Run("Cards", func(t *testing.T) {
		cards, err := piv.Cards()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(cards, reader) {
			t.Errorf("piv.Cards() = %q, want it to hold %q", cards, reader)
		}
	})

	t.Run("SerialVersion", func(t *testing.T) {
		serial, err := yk.Serial()
		if err != nil || serial != 21000001 {
			t.Errorf("Serial() = %d, %v; want 21000001", serial, err)
		}
		if v := yk.Version(); v != (piv.Version{Major: 5, Minor: 4, Patch: 3}) {
			t.Errorf("Version() = %+v, want 5.4.3", v)
		}
		ff, err := yk.FormFactor()
		if err != nil || ff != piv.FormfactorUSBAKeychain {
			t.Errorf("FormFactor() = %v, %v; want USB-A Keychain", ff, err)
		}
	})

	t.Run("VerifyPIN", func(t *testing.T) {
		for want := 2; want >= 1; want-- {
			err := yk.VerifyPIN("000000")
			var auth piv.AuthErr
			if !errors.As(err, &auth) || auth.Retries != want {
				t.Fatalf("VerifyPIN(wrong) = %v, want AuthErr{%d}", err, want)
			}
			if n, err := yk.Retries(); err != nil || n != want {
				t.Fatalf("Retries() = %d, %v; want %d", n, err, want)
			}
		}
		if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
			t.Fatalf("VerifyPIN(right): %v", err)
		}
		// A right PIN restores the tries; VERIFY without data says "verified".
		if err := yk.VerifyPIN("000000"); !errors.As(err, new(piv.AuthErr)) {
			t.Fatalf("VerifyPIN(wrong) = %v, want AuthErr", err)
		}
		if n, err := yk.Retries(); err != nil || n != 2 {
			t.Fatalf("Retries() = %d, %v; want 2 after one failure following success", n, err)
		}
		if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
			t.Fatalf("VerifyPIN(right): %v", err)
		}
	})

	t.Run("SetManagementKey", func(t *testing.T) {
		newKey := bytes.Repeat([]byte{0x5a}, 24)
		if err := yk.SetManagementKey([]byte("wrong key, 24 bytes long"), newKey); err == nil {
			t.Fatal("SetManagementKey with a wrong old key succeeded")
		}
		if err := yk.SetManagementKey(mgmKey, newKey); err != nil {
			t.Fatalf("SetManagementKey: %v", err)
		}
		// Firmware 5.4 takes a 24-byte key as AES-192.
		if _, err := yk.GenerateKey(mgmKey, piv.SlotAuthentication, piv.Key{Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever}); err == nil {
			t.Fatal("GenerateKey with the old management key succeeded")
		}
		mgmKey = newKey
	})

	var pub crypto.PublicKey
	t.Run("GenerateSign", func(t *testing.T) {
		var err error
		pub, err = yk.GenerateKey(mgmKey, piv.SlotSignature, piv.Key{
			Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever,
		})
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		info, err := yk.KeyInfo(piv.SlotSignature)
		if err != nil {
			t.Fatalf("KeyInfo: %v", err)
		}
		if info.Algorithm != piv.AlgorithmEC256 || info.PINPolicy != piv.PINPolicyOnce || info.Origin != piv.OriginGenerated {
			t.Errorf("KeyInfo = %+v", info)
		}
		if !info.PublicKey.(*ecdsa.PublicKey).Equal(pub) {
			t.Error("KeyInfo public key differs from GenerateKey's")
		}
		priv, err := yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{PIN: piv.DefaultPIN})
		if err != nil {
			t.Fatalf("PrivateKey: %v", err)
		}
		digest := sha256.Sum256([]byte("signet"))
		for range 2 { // the second signature uses the cached PIN
			sig, err := priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
				t.Fatal("signature does not verify")
			}
		}
	})

	t.Run("Certificate", func(t *testing.T) {
		if _, err := yk.Certificate(piv.SlotKeyManagement); !errors.Is(err, piv.ErrNotFound) {
			t.Errorf("Certificate(empty slot) = %v, want ErrNotFound", err)
		}
		cert := selfSigned(t, pub, "signet test")
		if err := yk.SetCertificate(mgmKey, piv.SlotSignature, cert); err != nil {
			t.Fatalf("SetCertificate: %v", err)
		}
		got, err := yk.Certificate(piv.SlotSignature)
		if err != nil {
			t.Fatalf("Certificate: %v", err)
		}
		if !bytes.Equal(got.Raw, cert.Raw) {
			t.Error("Certificate returned another certificate")
		}
	})

	t.Run("Attest", func(t *testing.T) {
		slotCert, err := yk.Attest(piv.SlotSignature)
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		f9, err := yk.AttestationCertificate()
		if err != nil {
			t.Fatalf("AttestationCertificate: %v", err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(card.AttestationRoot())
		a, err := (&piv.Verifier{Roots: roots}).Verify(f9, slotCert)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		want := piv.Attestation{
			Version: piv.Version{Major: 5, Minor: 4, Patch: 3}, Serial: 21000001,
			Formfactor: piv.FormfactorUSBAKeychain, PINPolicy: piv.PINPolicyOnce,
			TouchPolicy: piv.TouchPolicyNever, Slot: piv.SlotSignature,
		}
		if *a != want {
			t.Errorf("Verify = %+v, want %+v", *a, want)
		}
		if !slotCert.PublicKey.(*ecdsa.PublicKey).Equal(pub) {
			t.Error("attested public key differs from the slot's")
		}
		// Yubico's roots must not accept the simulator's chain.
		if _, err := piv.Verify(f9, slotCert); err == nil {
			t.Error("piv.Verify with Yubico's roots accepted a simulated attestation")
		}
		if _, err := yk.Attest(piv.SlotCardAuthentication); !errors.Is(err, piv.ErrNotFound) {
			t.Errorf("Attest(empty slot) = %v, want ErrNotFound", err)
		}
	})

	t.Run("Metadata", func(t *testing.T) {
		if err := yk.SetMetadata(mgmKey, &piv.Metadata{ManagementKey: &mgmKey}); err != nil {
			t.Fatalf("SetMetadata: %v", err)
		}
		m, err := yk.Metadata(piv.DefaultPIN)
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		if m.ManagementKey == nil || !bytes.Equal(*m.ManagementKey, mgmKey) {
			t.Errorf("Metadata().ManagementKey = %x, want %x", m.ManagementKey, mgmKey)
		}
	})

	t.Run("RSAChaining", func(t *testing.T) {
		pub, err := yk.GenerateKey(mgmKey, piv.SlotKeyManagement, piv.Key{
			Algorithm: piv.AlgorithmRSA2048, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever,
		})
		if err != nil {
			t.Fatalf("GenerateKey(RSA2048): %v", err)
		}
		rsaPub := pub.(*rsa.PublicKey)
		priv, err := yk.PrivateKey(piv.SlotKeyManagement, pub, piv.KeyAuth{})
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte("signet"))
		sig, err := priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("Sign(PKCS#1 v1.5): %v", err)
		}
		if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("PKCS#1 v1.5 signature: %v", err)
		}
		pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err = priv.(crypto.Signer).Sign(rand.Reader, digest[:], pss)
		if err != nil {
			t.Fatalf("Sign(PSS): %v", err)
		}
		if err := rsa.VerifyPSS(rsaPub, crypto.SHA256, digest[:], sig, pss); err != nil {
			t.Errorf("PSS signature: %v", err)
		}
		msg := []byte("a secret")
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, rsaPub, msg)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := priv.(crypto.Decrypter).Decrypt(rand.Reader, ct, nil)
		if err != nil || !bytes.Equal(pt, msg) {
			t.Errorf("Decrypt = %q, %v; want %q", pt, err, msg)
		}
		// An RSA certificate is longer than one APDU both ways.
		cert := selfSigned(t, pub, "rsa")
		if err := yk.SetCertificate(mgmKey, piv.SlotKeyManagement, cert); err != nil {
			t.Fatalf("SetCertificate: %v", err)
		}
		got, err := yk.Certificate(piv.SlotKeyManagement)
		if err != nil || !bytes.Equal(got.Raw, cert.Raw) {
			t.Fatalf("Certificate = %v; want the one set", err)
		}
	})

	t.Run("ECDHP384", func(t *testing.T) {
		pub, err := yk.GenerateKey(mgmKey, piv.SlotCardAuthentication, piv.Key{
			Algorithm: piv.AlgorithmEC384, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever,
		})
		if err != nil {
			t.Fatalf("GenerateKey(EC384): %v", err)
		}
		priv, err := yk.PrivateKey(piv.SlotCardAuthentication, pub, piv.KeyAuth{})
		if err != nil {
			t.Fatal(err)
		}
		peer, err := ecdh.P384().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, err := priv.(*piv.ECDSAPrivateKey).ECDH(peer.PublicKey())
		if err != nil {
			t.Fatalf("ECDH: %v", err)
		}
		cardPub, err := pub.(*ecdsa.PublicKey).ECDH()
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.ECDH(cardPub)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ECDH secrets differ (%v)", err)
		}
	})

	t.Run("PINChangeUnblock", func(t *testing.T) {
		if err := yk.SetPIN(piv.DefaultPIN, "654321"); err != nil {
			t.Fatalf("SetPIN: %v", err)
		}
		for range 3 {
			yk.VerifyPIN("000000")
		}
		if err := yk.VerifyPIN("654321"); !errors.As(err, new(piv.AuthErr)) {
			t.Fatalf("VerifyPIN on a blocked PIN = %v, want AuthErr", err)
		}
		if err := yk.Unblock(piv.DefaultPUK, piv.DefaultPIN); err != nil {
			t.Fatalf("Unblock: %v", err)
		}
		if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
			t.Fatalf("VerifyPIN after Unblock: %v", err)
		}
	})

	t.Run("Reset", func(t *testing.T) {
		if err := yk.Reset(); err != nil {
			t.Fatalf("Reset: %v", err)
		}
		if _, err := yk.KeyInfo(piv.SlotSignature); !errors.Is(err, piv.ErrNotFound) {
			t.Errorf("KeyInfo(9c) after Reset = %v, want ErrNotFound", err)
		}
		if _, err := yk.Certificate(piv.SlotSignature); !errors.Is(err, piv.ErrNotFound) {
			t.Errorf("Certificate(9c) after Reset = %v, want ErrNotFound", err)
		}
		if err := yk.VerifyPIN(piv.DefaultPIN); err != nil {
			t.Errorf("VerifyPIN(default) after Reset: %v", err)
		}
		if _, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{
			Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever,
		}); err != nil {
			t.Errorf("GenerateKey with the default management key after Reset: %v", err)
		}
		if _, err := yk.AttestationCertificate(); err != nil {
			t.Errorf("AttestationCertificate after Reset: %v", err)
		}
	})
}
