package pivsim

import "bytes"

// Data object tags (SP 800-73-4 part 1 table 3, and Yubico's 5FFFxx).
const (
	objDiscovery   = 0x7e
	objAttestation = 0x5fff01 // certificate of the attestation key, slot f9
)

// discovery is the fixed Discovery Object a YubiKey returns: the PIV AID
// and PIN usage policy "PIV PIN only".
var discovery = []byte{
	0x4f, 0x0b, 0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
	0x5f, 0x2f, 0x02, 0x40, 0x00,
}

// pinProtected reports whether reading the object needs the PIN
// (SP 800-73-4 part 1 table 3: fingerprints, printed information, facial
// image, iris images). Yubico keeps its PIN-protected management key in
// printed information.
func pinProtected(tag uint32) bool {
	switch tag {
	case 0x5fc103, 0x5fc108, 0x5fc109, 0x5fc121:
		return true
	}
	return false
}

// writable reports whether PUT DATA may store tag: the PIV objects
// 5FC101-5FC123 and Yubico's 5FFF00-5FFF15.
func writable(tag uint32) bool {
	return tag >= 0x5fc101 && tag <= 0x5fc123 || tag >= 0x5fff00 && tag <= 0x5fff15
}

// objectTag reads the tag list 5C{tag} that starts GET DATA and PUT DATA
// and returns the tag and the TLVs after it.
func objectTag(data []byte) (uint32, []tlv, bool) {
	list, ok := parseTLVs(data)
	if !ok || len(list) == 0 || list[0].tag != 0x5c {
		return 0, nil, false
	}
	v := list[0].value
	if len(v) == 0 || len(v) > 3 {
		return 0, nil, false
	}
	var tag uint32
	for _, b := range v {
		tag = tag<<8 | uint32(b)
	}
	return tag, list[1:], true
}

// getData is GET DATA (SP 800-73-4 part 2 3.1.2): P1P2 3FFF, data 5C{tag},
// answer 53{object}.
func (c *Card) getData(cmd command) response {
	if cmd.p1 != 0x3f || cmd.p2 != 0xff {
		return status(swIncorrectP1P2)
	}
	tag, rest, ok := objectTag(cmd.data)
	if !ok || len(rest) != 0 {
		return status(swIncorrectData)
	}
	if tag == objDiscovery {
		return success(tlvBytes(objDiscovery, discovery))
	}
	if pinProtected(tag) && !c.pinVerified {
		return status(swSecurityNotSatisfied)
	}
	v, ok := c.objects[tag]
	if !ok {
		return status(swNotFound)
	}
	return success(tlvBytes(0x53, v))
}

// putData is PUT DATA (3.3.1): P1P2 3FFF, data 5C{tag} 53{object}. An
// empty object deletes it. It needs the management key.
func (c *Card) putData(cmd command) response {
	switch {
	case !c.mgmAuthed:
		return status(swSecurityNotSatisfied)
	case cmd.p1 != 0x3f || cmd.p2 != 0xff:
		return status(swIncorrectP1P2)
	}
	tag, rest, ok := objectTag(cmd.data)
	if !ok || len(rest) != 1 || rest[0].tag != 0x53 || !writable(tag) {
		return status(swIncorrectData)
	}
	v := rest[0].value
	switch {
	case len(v) > maxObjectSize:
		return status(swNoSpace)
	case len(v) == 0:
		delete(c.objects, tag)
	default:
		c.objects[tag] = bytes.Clone(v)
	}
	return status(swOK)
}
