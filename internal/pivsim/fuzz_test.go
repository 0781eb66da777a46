package pivsim

import (
	"testing"
)

// FuzzApdu feeds arbitrary command APDUs to a card, in a session that
// has the PIN and management key, and checks that every answer ends in a
// status word.
func FuzzApdu(f *testing.F) {
	for _, seed := range []string{
		selectPIV, verifyDefault, verifyStatus, genP256,
		"00 87 11 9C 26 7C 24 82 00 81 20 " + "AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB AB",
		"00 DB 3F FF 0A 5C 03 5F C1 02 53 03 01 02 03",
		"00 CB 3F FF 05 5C 03 5F C1 02",
		"00 F7 00 9C 00", "00 F9 9C 00 00", "10 DB 3F FF 05 5C 03 5F C1 02",
		"00 FE 11 9A 22 06 20 1111111111111111111111111111111111111111111111111111111111111111",
		"00 CB 3F FF 00 00 05 5C 03 5F FF 01 00 00",
	} {
		f.Add(unhex(f, seed))
	}
	c := newTestCard(f, Options{})
	authMgm(f, c)
	expect(f, c, verifyDefault, swOK)
	f.Fuzz(func(t *testing.T, cmd []byte) {
		if r := c.Apdu(cmd); len(r) < 2 {
			t.Fatalf("answer %X to %X has no status word", r, cmd)
		}
	})
}

// FuzzParseTLVs checks that the TLV parser never reads out of bounds and
// that what it parses re-encodes to a parse of the same elements.
func FuzzParseTLVs(f *testing.F) {
	f.Add([]byte{0x7c, 0x02, 0x80, 0x00})
	f.Add([]byte{0x5c, 0x03, 0x5f, 0xc1, 0x05, 0x53, 0x82, 0x00, 0x01, 0x00})
	f.Add([]byte{0x7f, 0x49, 0x81, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		list, ok := parseTLVs(b)
		if !ok {
			return
		}
		var out []byte
		for _, e := range list {
			out = appendTLV(out, e.tag, e.value)
		}
		again, ok := parseTLVs(out)
		if !ok || len(again) != len(list) {
			t.Fatalf("re-encoding %X as %X does not parse back", b, out)
		}
	})
}
