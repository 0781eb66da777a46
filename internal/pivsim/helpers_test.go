package pivsim

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

// APDUs the tests use often.
const (
	selectPIV     = "00 A4 04 00 05 A0 00 00 03 08"
	verifyDefault = "00 20 00 80 08 31 32 33 34 35 36 FF FF"
	verifyWrong   = "00 20 00 80 08 30 30 30 30 30 30 FF FF"
	verifyStatus  = "00 20 00 80 00"
	genP256       = "00 47 00 9C 05 AC 03 80 01 11"
)

// unhex decodes hex with spaces.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// send runs one APDU and splits the answer into data and status word.
func send(t testing.TB, c *Card, cmd []byte) ([]byte, uint16) {
	t.Helper()
	r := c.Apdu(cmd)
	if len(r) < 2 {
		t.Fatalf("answer %x to %x has no status word", r, cmd)
	}
	n := len(r) - 2
	return r[:n], uint16(r[n])<<8 | uint16(r[n+1])
}

// expect sends cmd (hex) and checks the status word, returning the data.
func expect(t testing.TB, c *Card, cmd string, sw uint16) []byte {
	t.Helper()
	data, got := send(t, c, unhex(t, cmd))
	if got != sw {
		t.Fatalf("%s: status %04X, want %04X (data %X)", cmd, got, sw, data)
	}
	return data
}

// sendAll sends cmd and collects a chained answer with GET RESPONSE.
func sendAll(t testing.TB, c *Card, cmd []byte) ([]byte, uint16) {
	t.Helper()
	data, sw := send(t, c, cmd)
	for sw&0xff00 == swMoreData {
		var more []byte
		more, sw = send(t, c, []byte{0x00, insGetResponse, 0x00, 0x00, 0x00})
		data = append(data, more...)
	}
	return data, sw
}

var (
	caOnce sync.Once
	ca     *CA
	caErr  error
)

// newTestCard makes a card with the tests' shared CA, already selected.
func newTestCard(t testing.TB, opts Options) *Card {
	t.Helper()
	caOnce.Do(func() { ca, caErr = NewCA() })
	if caErr != nil {
		t.Fatal(caErr)
	}
	if opts.CA == nil {
		opts.CA = ca
	}
	if opts.Serial == 0 {
		opts.Serial = 12345678
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, c, selectPIV, swOK)
	return c
}

// authMgm authenticates with the default management key (3DES, or
// AES-192 from firmware 5.7) as piv-go and yubico-piv-tool do: witness,
// then witness decrypted and a challenge.
func authMgm(t testing.TB, c *Card) {
	t.Helper()
	alg := c.defaultMgmKey().alg
	var block cipher.Block
	var err error
	if alg == alg3DES {
		block, err = des.NewTripleDESCipher(defaultMgmKeyBytes)
	} else {
		block, err = aes.NewCipher(defaultMgmKeyBytes)
	}
	if err != nil {
		t.Fatal(err)
	}
	n := byte(block.BlockSize())
	resp, sw := send(t, c, []byte{0x00, 0x87, alg, 0x9b, 0x04, 0x7c, 0x02, 0x80, 0x00})
	if sw != swOK || len(resp) != int(n)+4 || !bytes.Equal(resp[:4], []byte{0x7c, n + 2, 0x80, n}) {
		t.Fatalf("witness answer %X %04X", resp, sw)
	}
	witness := make([]byte, n)
	block.Decrypt(witness, resp[4:])
	challenge := bytes.Repeat([]byte{0x42}, int(n))
	tmpl := appendTLV(tlvBytes(0x80, witness), 0x81, challenge)
	resp, sw = send(t, c, apduBytes(0x00, 0x87, alg, 0x9b, tlvBytes(0x7c, tmpl)))
	want := make([]byte, n)
	block.Encrypt(want, challenge)
	if sw != swOK || !bytes.Equal(resp, tlvBytes(0x7c, tlvBytes(0x82, want))) {
		t.Fatalf("challenge answer %X %04X", resp, sw)
	}
}

// apduBytes builds a short APDU.
func apduBytes(cla, ins, p1, p2 byte, data []byte) []byte {
	out := []byte{cla, ins, p1, p2}
	if len(data) > 0 {
		out = append(out, byte(len(data)))
		out = append(out, data...)
	}
	return out
}
