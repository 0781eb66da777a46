package pivsim

import (
	"bytes"
	"encoding/binary"
)

// Application identifiers.
var (
	// The PIV AID (SP 800-73-4 part 1 2.2); SELECT may give a prefix of at
	// least the first five bytes (the RID and PIX start).
	aidPIV        = []byte{0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}
	aidManagement = []byte{0xa0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17}
	aidOTP        = []byte{0xa0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01, 0x01}
)

// pivAPT is the application property template SELECT answers with: the
// AID's PIX and the coexistent tag allocation authority (SP 800-73-4
// part 2 3.1.1).
var pivAPT = tlvBytes(0x61, append(
	tlvBytes(0x4f, aidPIV[5:]),
	tlvBytes(0x79, tlvBytes(0x4f, aidPIV[:5]))...,
))

// selectApplet is SELECT by name (ISO/IEC 7816-4 7.1.1). Selecting an
// application ends the PIN and management key session, as on a YubiKey.
func (c *Card) selectApplet(cmd command) response {
	if cmd.p1 != 0x04 {
		return status(swIncorrectP1P2)
	}
	aid := cmd.data
	switch {
	case len(aid) >= 5 && bytes.HasPrefix(aidPIV, aid):
		c.clearSession()
		c.applet = appletPIV
		return success(bytes.Clone(pivAPT))
	case bytes.Equal(aid, aidManagement):
		c.clearSession()
		c.applet = appletManagement
		return success([]byte(c.versionString()))
	case bytes.HasPrefix(aidOTP, aid) && len(aid) >= 7:
		c.clearSession()
		c.applet = appletOTP
		return success(c.otpStatus())
	}
	return status(swNotFound)
}

func (c *Card) versionString() string {
	v := c.version
	return string([]byte{'0' + v[0]%10, '.', '0' + v[1]%10, '.', '0' + v[2]%10})
}

// managementCommand answers the management application's READ CONFIG
// (0x1D) with the device information piv-go's FormFactor reads: a length
// byte, then 02 serial, 04 form factor, 05 firmware version.
func (c *Card) managementCommand(cmd command) response {
	if cmd.ins != 0x1d {
		return status(swINSNotSupported)
	}
	var info []byte
	info = appendTLV(info, 0x02, binary.BigEndian.AppendUint32(nil, c.serial))
	info = appendTLV(info, 0x04, []byte{c.formFactor})
	info = appendTLV(info, 0x05, c.version[:])
	return success(append([]byte{byte(len(info))}, info...))
}

// otpStatus is the status the OTP application answers SELECT with:
// version, programming sequence and touch level.
func (c *Card) otpStatus() []byte {
	return []byte{c.version[0], c.version[1], c.version[2], 0x00, 0x00, 0x00}
}

// otpCommand answers the OTP application's "get serial" (INS 01, P1 10),
// which YubiKeys before firmware 5 use instead of the PIV GET SERIAL.
func (c *Card) otpCommand(cmd command) response {
	if cmd.ins != 0x01 || cmd.p1 != 0x10 {
		return status(swINSNotSupported)
	}
	return success(binary.BigEndian.AppendUint32(nil, c.serial))
}
