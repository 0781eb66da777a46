package pivsim

import (
	"bytes"
	"testing"
)

// TestChaining stores a large object with command chaining and reads it
// back with GET RESPONSE and with one extended APDU.
func TestChaining(t *testing.T) {
	c := newTestCard(t, Options{})
	authMgm(t, c)
	obj := bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes
	put := append(unhex(t, "5C 03 5F C1 05"), tlvBytes(0x53, obj)...)

	for i := 0; len(put) > 0; i++ {
		n := min(len(put), 255)
		cla := byte(0x10)
		if n == len(put) {
			cla = 0x00
		}
		if _, sw := send(t, c, apduBytes(cla, insPutData, 0x3f, 0xff, put[:n])); sw != swOK {
			t.Fatalf("piece %d: status %04X", i, sw)
		}
		put = put[n:]
	}

	get := unhex(t, "00 CB 3F FF 05 5C 03 5F C1 05")
	want := tlvBytes(0x53, obj)
	// Short APDU: 256 bytes at a time, 61xx telling what is left.
	data, sw := send(t, c, get)
	if sw != swMoreData|0x00 || len(data) != 256 {
		t.Fatalf("first piece: %d bytes, status %04X; want 256 bytes, 6100", len(data), sw)
	}
	var sws []uint16
	for sw&0xff00 == swMoreData {
		var more []byte
		more, sw = send(t, c, unhex(t, "00 C0 00 00 00"))
		data = append(data, more...)
		sws = append(sws, sw)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("GET RESPONSE pieces assemble %d bytes, want %d", len(data), len(want))
	}
	if wantSW := []uint16{0x6100, 0x61ec, 0x9000}; !equalSW(sws, wantSW) {
		t.Errorf("GET RESPONSE status words %04X, want %04X", sws, wantSW)
	}
	// Another command drops what was left.
	send(t, c, get)
	expect(t, c, "00 FD 00 00 00", swOK)
	expect(t, c, "00 C0 00 00 00", swConditionsNotSatisfied)

	// Extended APDU: all at once.
	ext := unhex(t, "00 CB 3F FF 00 00 05 5C 03 5F C1 05 00 00")
	data, sw = send(t, c, ext)
	if sw != swOK || !bytes.Equal(data, want) {
		t.Errorf("extended GET DATA: %d bytes, status %04X; want %d bytes, 9000", len(data), sw, len(want))
	}
	expect(t, c, "00 FD 00 00 00 00 00", swOK) // case 2 extended
	expect(t, c, "00 FD 00 00 00 00", swWrongLength)
}

func equalSW(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLimits checks the caps on untrusted input.
func TestLimits(t *testing.T) {
	c := newTestCard(t, Options{})
	authMgm(t, c)
	big := append(unhex(t, "5C 03 5F C1 05"), tlvBytes(0x53, make([]byte, maxObjectSize+1))...)
	if _, sw := send(t, c, append(unhex(t, "00 DB 3F FF 00"), append([]byte{byte(len(big) >> 8), byte(len(big))}, big...)...)); sw != swNoSpace {
		t.Errorf("oversized object: status %04X, want 6A84", sw)
	}
	piece := apduBytes(0x10, insPutData, 0x3f, 0xff, make([]byte, 255))
	var sw uint16
	for range maxChainData/255 + 2 {
		if _, sw = send(t, c, piece); sw != swOK {
			break
		}
	}
	if sw != swWrongLength {
		t.Errorf("endless chain: status %04X, want 6700", sw)
	}
}
