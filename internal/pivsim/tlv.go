package pivsim

// BER-TLV as PIV uses it (SP 800-73-4 part 2, appendix A): tags of one to
// three bytes, lengths in short form or long form with up to three length
// bytes.

// tlv is one parsed tag-length-value element. value aliases the input.
type tlv struct {
	tag   uint32
	value []byte
}

// parseTLVs splits b into a sequence of TLV elements. It reports false if b
// is not exactly a sequence of well-formed elements.
func parseTLVs(b []byte) ([]tlv, bool) {
	var out []tlv
	for len(b) > 0 {
		tag, n, ok := readTag(b)
		if !ok {
			return nil, false
		}
		b = b[n:]
		l, n, ok := readLen(b)
		if !ok || l > len(b)-n {
			return nil, false
		}
		b = b[n:]
		out = append(out, tlv{tag: tag, value: b[:l]})
		b = b[l:]
	}
	return out, true
}

func readTag(b []byte) (tag uint32, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	tag = uint32(b[0])
	n = 1
	if b[0]&0x1f != 0x1f {
		return tag, n, true
	}
	for ; n < len(b) && n < 3; n++ { // PIV tags have at most three bytes
		tag = tag<<8 | uint32(b[n])
		if b[n]&0x80 == 0 {
			return tag, n + 1, true
		}
	}
	return 0, 0, false
}

func readLen(b []byte) (l, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	if b[0] < 0x80 {
		return int(b[0]), 1, true
	}
	k := int(b[0] & 0x7f)
	if k == 0 || k > 3 || len(b) < 1+k {
		return 0, 0, false
	}
	for _, c := range b[1 : 1+k] {
		l = l<<8 | int(c)
	}
	return l, 1 + k, true
}

// find returns the value of the first element with the given tag.
func find(list []tlv, tag uint32) ([]byte, bool) {
	for _, e := range list {
		if e.tag == tag {
			return e.value, true
		}
	}
	return nil, false
}

// appendTLV appends tag, the DER-minimal length of value, and value to dst.
func appendTLV(dst []byte, tag uint32, value []byte) []byte {
	switch {
	case tag > 0xffff:
		dst = append(dst, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xff:
		dst = append(dst, byte(tag>>8), byte(tag))
	default:
		dst = append(dst, byte(tag))
	}
	n := len(value)
	switch {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n < 0x100:
		dst = append(dst, 0x81, byte(n))
	case n < 0x10000:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, value...)
}

// tlvBytes is appendTLV onto nothing.
func tlvBytes(tag uint32, value []byte) []byte {
	return appendTLV(nil, tag, value)
}
