package pivsim

// Status words (ISO/IEC 7816-4 5.6, SP 800-73-4 part 2 table 6 and
// Yubico's PIV extensions).
const (
	swOK                     = 0x9000
	swMoreData               = 0x6100 // low byte: bytes left, 0 meaning 256 or more
	swVerifyFail             = 0x63c0 // low nibble: retries left
	swWrongLength            = 0x6700
	swLastCommandExpected    = 0x6883
	swSecurityNotSatisfied   = 0x6982
	swAuthBlocked            = 0x6983
	swConditionsNotSatisfied = 0x6985
	swIncorrectData          = 0x6a80
	swFuncNotSupported       = 0x6a81
	swNotFound               = 0x6a82
	swNoSpace                = 0x6a84
	swIncorrectP1P2          = 0x6a86
	swRefNotFound            = 0x6a88
	swINSNotSupported        = 0x6d00
	swCLANotSupported        = 0x6e00
)

// Instructions. The 0xf7-0xff range is Yubico's
// (https://developers.yubico.com/PIV/Introduction/Yubico_extensions.html).
const (
	insVerify          = 0x20
	insChangeReference = 0x24
	insResetRetry      = 0x2c
	insGenerate        = 0x47
	insAuthenticate    = 0x87
	insSelect          = 0xa4
	insGetResponse     = 0xc0
	insGetData         = 0xcb
	insPutData         = 0xdb
	insGetMetadata     = 0xf7
	insGetSerial       = 0xf8
	insAttest          = 0xf9
	insSetPINRetries   = 0xfa
	insReset           = 0xfb
	insGetVersion      = 0xfd
	insImportKey       = 0xfe
	insSetMgmKey       = 0xff
)

// command is a parsed command APDU (ISO/IEC 7816-4 5.1).
type command struct {
	cla, ins, p1, p2 byte
	data             []byte
	extended         bool // extended length fields: answer in one piece
}

// parseCommand decodes the four cases of short and extended APDUs. It
// returns swWrongLength when the length fields do not match the size.
func parseCommand(b []byte) (command, uint16) {
	if len(b) < 4 {
		return command{}, swWrongLength
	}
	c := command{cla: b[0], ins: b[1], p1: b[2], p2: b[3]}
	body := b[4:]
	switch {
	case len(body) <= 1: // case 1, or case 2 short (Le only)
		return c, swOK
	case body[0] != 0: // short Lc
		lc := int(body[0])
		rest := body[1:]
		if len(rest) != lc && len(rest) != lc+1 {
			return command{}, swWrongLength
		}
		c.data = rest[:lc]
		return c, swOK
	case len(body) < 3:
		return command{}, swWrongLength
	case len(body) == 3: // case 2 extended
		c.extended = true
		return c, swOK
	default: // extended Lc
		lc := int(body[1])<<8 | int(body[2])
		rest := body[3:]
		if lc == 0 || (len(rest) != lc && len(rest) != lc+2) {
			return command{}, swWrongLength
		}
		c.data = rest[:lc]
		c.extended = true
		return c, swOK
	}
}

// response is the result of one command before response chaining.
type response struct {
	data []byte
	sw   uint16
}

func success(data []byte) response { return response{data: data, sw: swOK} }
func status(sw uint16) response    { return response{sw: sw} }
func withSW(data []byte, sw uint16) []byte {
	return append(data, byte(sw>>8), byte(sw))
}
