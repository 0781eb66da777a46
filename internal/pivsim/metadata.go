package pivsim

// metadata is Yubico's GET METADATA (firmware 5.3 and later): P2 is the
// PIN (80), PUK (81), management key (9b) or a key slot. The answer is a
// list of TLVs: 01 algorithm, 02 PIN and touch policy, 03 origin, 04 public
// key, 05 whether the value is the factory default, 06 total and remaining
// tries.
func (c *Card) metadata(cmd command) response {
	if !c.atLeast(5, 3, 0) {
		return status(swINSNotSupported)
	}
	if cmd.p1 != 0x00 {
		return status(swIncorrectP1P2)
	}
	var out []byte
	switch cmd.p2 {
	case refPIN, refPUK:
		s := c.pin
		if cmd.p2 == refPUK {
			s = c.puk
		}
		out = appendTLV(out, 0x01, []byte{0xff})
		out = appendTLV(out, 0x05, []byte{boolByte(s.value == s.initial)})
		out = appendTLV(out, 0x06, []byte{byte(s.max), byte(s.tries)})
	case refMgmKey:
		out = appendTLV(out, 0x01, []byte{c.mgm.alg})
		out = appendTLV(out, 0x02, []byte{0x00, c.mgm.touch})
		out = appendTLV(out, 0x05, []byte{boolByte(c.mgm.isDefault())})
	default:
		k := c.keys[cmd.p2]
		if k == nil {
			return status(swRefNotFound)
		}
		out = appendTLV(out, 0x01, []byte{k.alg})
		out = appendTLV(out, 0x02, []byte{k.pin, k.touch})
		out = appendTLV(out, 0x03, []byte{k.origin})
		out = appendTLV(out, 0x04, k.publicTLVs())
	}
	return success(out)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
