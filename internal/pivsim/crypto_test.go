package pivsim

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"testing"
)

// publicKey decodes the public key of a GENERATE answer, 7F49{...}.
func publicKey(t *testing.T, alg byte, resp []byte) crypto.PublicKey {
	t.Helper()
	outer, ok := parseTLVs(resp)
	if !ok || len(outer) != 1 || outer[0].tag != 0x7f49 {
		t.Fatalf("GENERATE answer %X is not 7F49{...}", resp)
	}
	in, ok := parseTLVs(outer[0].value)
	if !ok {
		t.Fatalf("malformed public key %X", outer[0].value)
	}
	if n, ok := find(in, 0x81); ok {
		e, _ := find(in, 0x82)
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	pt, _ := find(in, 0x86)
	switch alg {
	case algEd25519:
		return ed25519.PublicKey(pt)
	case algX25519:
		k, err := ecdh.X25519().NewPublicKey(pt)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k, err := ecdsa.ParseUncompressedPublicKey(curve(alg), pt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// generate makes a key with PIN and touch policy never in slot.
func generate(t *testing.T, c *Card, slot, alg byte) crypto.PublicKey {
	t.Helper()
	resp, sw := sendAll(t, c, apduBytes(0, insGenerate, 0, slot,
		tlvBytes(0xac, []byte{0x80, 1, alg, 0xaa, 1, pinNever, 0xab, 1, touchNever})))
	if sw != swOK {
		t.Fatalf("GENERATE %02X in %02X: status %04X", alg, slot, sw)
	}
	return publicKey(t, alg, resp)
}

// operate runs GENERAL AUTHENTICATE with input under tag (81 sign, 85
// ECDH) and returns the result, using command chaining for long input.
func operate(t *testing.T, c *Card, slot, alg byte, tag uint32, input []byte) ([]byte, uint16) {
	t.Helper()
	data := tlvBytes(0x7c, appendTLV([]byte{0x82, 0x00}, tag, input))
	for len(data) > 255 {
		if _, sw := send(t, c, apduBytes(0x10, insAuthenticate, alg, slot, data[:255])); sw != swOK {
			t.Fatalf("chained GENERAL AUTHENTICATE: status %04X", sw)
		}
		data = data[255:]
	}
	resp, sw := sendAll(t, c, apduBytes(0, insAuthenticate, alg, slot, data))
	if sw != swOK {
		return nil, sw
	}
	outer, _ := parseTLVs(resp)
	in, _ := parseTLVs(outer[0].value)
	out, _ := find(in, 0x82)
	return out, sw
}

// pkcs1 pads a SHA-256 digest for an RSA signature as the host does
// (RFC 8017 9.2).
func pkcs1(size int, digest []byte) []byte {
	prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	t := append(prefix, digest...)
	em := append([]byte{0x00, 0x01}, bytes.Repeat([]byte{0xff}, size-3-len(t))...)
	return append(append(em, 0x00), t...)
}

// TestSign generates a key of every algorithm and checks its signatures
// with the public key GENERATE returned.
func TestSign(t *testing.T) {
	msg := []byte("signet")
	digest := sha256.Sum256(msg)
	tests := []struct {
		name  string
		alg   byte
		input []byte
		check func(pub crypto.PublicKey, sig []byte) bool
	}{
		{"ECCP256", algECCP256, digest[:], func(pub crypto.PublicKey, sig []byte) bool {
			return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig)
		}},
		{"ECCP256 short digest", algECCP256, digest[:20], func(pub crypto.PublicKey, sig []byte) bool {
			return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:20], sig)
		}},
		{"ECCP384", algECCP384, func() []byte { d := sha512.Sum384(msg); return d[:] }(), func(pub crypto.PublicKey, sig []byte) bool {
			d := sha512.Sum384(msg)
			return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig)
		}},
		{"RSA1024", algRSA1024, pkcs1(128, digest[:]), func(pub crypto.PublicKey, sig []byte) bool {
			return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig) == nil
		}},
		{"RSA2048", algRSA2048, pkcs1(256, digest[:]), func(pub crypto.PublicKey, sig []byte) bool {
			return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig) == nil
		}},
		{"Ed25519", algEd25519, msg, func(pub crypto.PublicKey, sig []byte) bool {
			return ed25519.Verify(pub.(ed25519.PublicKey), msg, sig)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, Options{Version: [3]byte{5, 7, 1}})
			authMgm(t, c)
			pub := generate(t, c, slotAuthentication, tt.alg)
			sig, sw := operate(t, c, slotAuthentication, tt.alg, 0x81, tt.input)
			if sw != swOK {
				t.Fatalf("sign: status %04X", sw)
			}
			if !tt.check(pub, sig) {
				t.Errorf("signature %X does not verify", sig)
			}
		})
	}
}

// TestRSADecrypt decrypts with the raw RSA operation and rejects input of
// the wrong size or out of range.
func TestRSADecrypt(t *testing.T) {
	c := newTestCard(t, Options{})
	authMgm(t, c)
	pub := generate(t, c, slotKeyManagement, algRSA1024).(*rsa.PublicKey)
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	pt, sw := operate(t, c, slotKeyManagement, algRSA1024, 0x81, ct)
	if sw != swOK || !bytes.HasSuffix(pt, []byte("\x00secret")) || pt[0] != 0 || pt[1] != 2 {
		t.Errorf("decrypt = %X, %04X", pt, sw)
	}
	for _, bad := range [][]byte{ct[1:], append(ct, 0), bytes.Repeat([]byte{0xff}, 128)} {
		if _, sw := operate(t, c, slotKeyManagement, algRSA1024, 0x81, bad); sw != swIncorrectData {
			t.Errorf("input of %d bytes: status %04X, want 6A80", len(bad), sw)
		}
	}
}

// TestECDH checks key agreement on P-256 and X25519 against the host's
// side of it.
func TestECDH(t *testing.T) {
	for _, alg := range []byte{algECCP256, algECCP384, algX25519} {
		c := newTestCard(t, Options{Version: [3]byte{5, 7, 1}})
		authMgm(t, c)
		pub := generate(t, c, slotKeyManagement, alg)
		var cardPub *ecdh.PublicKey
		var err error
		switch p := pub.(type) {
		case *ecdsa.PublicKey:
			cardPub, err = p.ECDH()
		case *ecdh.PublicKey:
			cardPub = p
		}
		if err != nil {
			t.Fatal(err)
		}
		peer, err := cardPub.Curve().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, sw := operate(t, c, slotKeyManagement, alg, 0x85, peer.PublicKey().Bytes())
		want, err := peer.ECDH(cardPub)
		if sw != swOK || err != nil || !bytes.Equal(got, want) {
			t.Errorf("alg %02X: ECDH = %X, %04X; want %X", alg, got, sw, want)
		}
		if _, sw := operate(t, c, slotKeyManagement, alg, 0x85, []byte{0x04, 0x01}); sw != swIncorrectData {
			t.Errorf("alg %02X: ECDH with a bad point: status %04X, want 6A80", alg, sw)
		}
	}
}

// TestImport imports keys of each type and checks that the card signs
// with them and reports them as imported.
func TestImport(t *testing.T) {
	digest := sha256.Sum256([]byte("imported"))

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ecKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		alg   byte
		data  []byte
		input []byte
		check func(sig []byte) bool
	}{
		{"ECCP256", algECCP256, tlvBytes(0x06, d), digest[:], func(sig []byte) bool {
			return ecdsa.VerifyASN1(&ecKey.PublicKey, digest[:], sig)
		}},
		{"RSA1024", algRSA1024, appendTLV(tlvBytes(0x01, rsaKey.Primes[0].Bytes()), 0x02, rsaKey.Primes[1].Bytes()), pkcs1(128, digest[:]), func(sig []byte) bool {
			return rsa.VerifyPKCS1v15(&rsaKey.PublicKey, crypto.SHA256, digest[:], sig) == nil
		}},
		{"Ed25519", algEd25519, tlvBytes(0x07, edKey.Seed()), []byte("imported"), func(sig []byte) bool {
			return ed25519.Verify(edKey.Public().(ed25519.PublicKey), []byte("imported"), sig)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, Options{Version: [3]byte{5, 7, 1}})
			authMgm(t, c)
			data := append(tt.data, 0xaa, 1, pinNever, 0xab, 1, touchNever)
			if _, sw := send(t, c, apduBytes(0, insImportKey, tt.alg, 0x82, data)); sw != swOK {
				t.Fatalf("IMPORT: status %04X", sw)
			}
			sig, sw := operate(t, c, 0x82, tt.alg, 0x81, tt.input)
			if sw != swOK || !tt.check(sig) {
				t.Errorf("signature %X (status %04X) does not verify", sig, sw)
			}
			md := expect(t, c, "00 F7 00 82 00", swOK)
			list, _ := parseTLVs(md)
			if origin, _ := find(list, 0x03); !bytes.Equal(origin, []byte{originImported}) {
				t.Errorf("origin %X, want 02 (imported)", origin)
			}
		})
	}
}

// TestAttest checks an attestation certificate: it chains through the
// slot f9 certificate to the root and carries Yubico's extensions.
func TestAttest(t *testing.T) {
	c := newTestCard(t, Options{Serial: 7654321, Version: [3]byte{5, 4, 3}, FormFactor: 2})
	authMgm(t, c)
	expect(t, c, "00 47 00 9A 0B AC 09 80 01 11 AA 01 02 AB 01 03", swOK)
	der, sw := sendAll(t, c, unhex(t, "00 F9 9A 00 00"))
	if sw != swOK {
		t.Fatalf("ATTEST: status %04X", sw)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	obj, sw := sendAll(t, c, unhex(t, "00 CB 3F FF 05 5C 03 5F FF 01"))
	if sw != swOK {
		t.Fatalf("GET DATA 5FFF01: status %04X", sw)
	}
	outer, _ := parseTLVs(obj)
	in, _ := parseTLVs(outer[0].value)
	f9DER, _ := find(in, 0x70)
	f9, err := x509.ParseCertificate(f9DER)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(f9)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.ca.Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("attestation does not chain to the root: %v", err)
	}
	if leaf.Subject.CommonName != "YubiKey PIV Attestation 9a" {
		t.Errorf("subject %q", leaf.Subject.CommonName)
	}
	want := map[string][]byte{
		oidFirmware.String():   {5, 4, 3},
		oidSerial.String():     func() []byte { b, _ := asn1.Marshal(7654321); return b }(),
		oidPolicy.String():     {pinOnce, touchCached},
		oidFormFactor.String(): {2},
	}
	for _, e := range leaf.Extensions {
		if w, ok := want[e.Id.String()]; ok {
			if !bytes.Equal(e.Value, w) {
				t.Errorf("extension %s = %X, want %X", e.Id, e.Value, w)
			}
			delete(want, e.Id.String())
		}
	}
	if len(want) > 0 {
		t.Errorf("missing extensions %v", want)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(c.keys[slotAuthentication].public()) {
		t.Error("attested key differs from the slot's")
	}
}
