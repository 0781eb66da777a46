package pivsim

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// step is one APDU and the status word it must get, or an action.
type step struct {
	cmd  string // hex APDU
	sw   uint16
	data string // if set, the answer data must start with it (hex)
	do   func(t *testing.T, c *Card)
}

func mgm() step                    { return step{do: func(t *testing.T, c *Card) { authMgm(t, c) }} }
func pinOK() step                  { return step{cmd: verifyDefault, sw: swOK} }
func power() step                  { return step{do: func(t *testing.T, c *Card) { c.powerCycle() }} }
func sel() step                    { return step{cmd: selectPIV, sw: swOK} }
func s(cmd string, sw uint16) step { return step{cmd: cmd, sw: sw} }

// TestApdu runs APDU sequences on fresh cards and checks every status
// word, command by command.
func TestApdu(t *testing.T) {
	v57 := Options{Version: [3]byte{5, 7, 1}}
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		// Framing, SELECT and the YubiKey commands.
		{name: "select answers the property template", steps: []step{
			{cmd: selectPIV, sw: swOK, data: "61 11 4F 06 00 00 10 00 01 00 79 07 4F 05 A0 00 00 03 08"},
			s("00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00", swOK),
			s("00 A4 04 00 04 A0 00 00 03", swNotFound),
			s("00 A4 04 00 05 A0 00 00 03 09", swNotFound),
			s("00 A4 00 00 05 A0 00 00 03 08", swIncorrectP1P2),
		}},
		{name: "no application before select", steps: []step{
			power(), s("00 FD 00 00 00", swINSNotSupported), sel(), s("00 FD 00 00 00", swOK),
		}},
		{name: "framing errors", steps: []step{
			s("00 FD 00", swWrongLength),
			s("00 20 00 80 08 31 32", swWrongLength),
			s("80 FD 00 00 00", swCLANotSupported),
			s("00 99 00 00 00", swINSNotSupported),
			s("00 C0 00 00 00", swConditionsNotSatisfied),
		}},
		{name: "version and serial", steps: []step{
			{cmd: "00 FD 00 00 00", sw: swOK, data: "05 04 03"},
			{cmd: "00 F8 00 00 00", sw: swOK, data: "00 BC 61 4E"},
		}},
		{name: "serial on firmware 4 comes from the OTP application", opts: Options{Version: [3]byte{4, 3, 7}}, steps: []step{
			s("00 F8 00 00 00", swINSNotSupported),
			{cmd: "00 A4 04 00 08 A0 00 00 05 27 20 01 01", sw: swOK, data: "04 03 07"},
			{cmd: "00 01 10 00 00", sw: swOK, data: "00 BC 61 4E"},
			s("00 F7 00 9B 00", swINSNotSupported),
		}},
		{name: "management application reports the form factor", opts: Options{FormFactor: 3}, steps: []step{
			{cmd: "00 A4 04 00 08 A0 00 00 05 27 47 11 17", sw: swOK, data: "35 2E 34 2E 33"},
			{cmd: "00 1D 00 00 00", sw: swOK, data: "0E 02 04 00 BC 61 4E 04 01 03 05 03 05 04 03"},
			s("00 FD 00 00 00", swINSNotSupported),
		}},

		// PIN and PUK.
		{name: "verify counts down and a right PIN restores the count", steps: []step{
			s(verifyStatus, 0x63c3),
			s(verifyWrong, 0x63c2),
			s(verifyStatus, 0x63c2),
			pinOK(),
			s(verifyStatus, swOK),
			s(verifyWrong, 0x63c2),
			s(verifyStatus, 0x63c2),
			pinOK(),
			s(verifyStatus, swOK),
		}},
		{name: "verify blocks after three failures", steps: []step{
			s(verifyWrong, 0x63c2), s(verifyWrong, 0x63c1), s(verifyWrong, 0x63c0),
			s(verifyWrong, swAuthBlocked), s(verifyDefault, swAuthBlocked), s(verifyStatus, swAuthBlocked),
		}},
		{name: "verify rejects bad parameters", steps: []step{
			s("00 20 00 80 06 31 32 33 34 35 36", swIncorrectData),
			s("00 20 00 81 08 31 32 33 34 35 36 37 38", swRefNotFound),
			s("00 20 01 80 08 31 32 33 34 35 36 FF FF", swIncorrectP1P2),
			s(verifyStatus, 0x63c3),
		}},
		{name: "verify with P1 FF forgets the PIN", steps: []step{
			pinOK(), s("00 20 FF 80 00", swOK), s(verifyStatus, 0x63c3),
		}},
		{name: "power cycle and select forget the PIN", steps: []step{
			pinOK(), power(), sel(), s(verifyStatus, 0x63c3),
			pinOK(), sel(), s(verifyStatus, 0x63c3),
		}},
		{name: "change PIN", steps: []step{
			s("00 24 00 80 10 30 30 30 30 30 30 FF FF 36 35 34 33 32 31 FF FF", 0x63c2),
			s("00 24 00 80 10 31 32 33 34 35 36 FF FF 36 35 34 33 32 FF FF FF", swIncorrectData),
			s("00 24 00 80 10 31 32 33 34 35 36 FF FF 36 35 34 33 32 FF 31 FF", swIncorrectData),
			s("00 24 00 80 0F 31 32 33 34 35 36 FF FF 36 35 34 33 32 31 FF", swIncorrectData),
			s("00 24 00 80 10 31 32 33 34 35 36 FF FF 36 35 34 33 32 31 FF FF", swOK),
			s(verifyDefault, 0x63c2),
			s("00 20 00 80 08 36 35 34 33 32 31 FF FF", swOK),
			s("00 24 00 82 10 31 32 33 34 35 36 FF FF 36 35 34 33 32 31 FF FF", swRefNotFound),
		}},
		{name: "change PUK and block it", steps: []step{
			// A wrong old value counts even when the new one is too short.
			s("00 24 00 81 10 30 30 30 30 30 30 30 30 31 32 FF FF FF FF FF FF", 0x63c2),
			s("00 24 00 81 10 31 32 33 34 35 36 37 38 38 37 36 35 34 33 32 31", swOK),
			s("00 24 00 81 10 31 32 33 34 35 36 37 38 38 37 36 35 34 33 32 31", 0x63c2),
			s("00 24 00 81 10 31 32 33 34 35 36 37 38 38 37 36 35 34 33 32 31", 0x63c1),
			s("00 24 00 81 10 31 32 33 34 35 36 37 38 38 37 36 35 34 33 32 31", 0x63c0),
			s("00 24 00 81 10 38 37 36 35 34 33 32 31 31 32 33 34 35 36 37 38", swAuthBlocked),
		}},
		{name: "unblock the PIN with the PUK", steps: []step{
			s(verifyWrong, 0x63c2), s(verifyWrong, 0x63c1), s(verifyWrong, 0x63c0),
			s("00 2C 00 80 10 30 30 30 30 30 30 30 30 31 32 33 34 35 36 FF FF", 0x63c2),
			s("00 2C 00 81 10 31 32 33 34 35 36 37 38 31 32 33 34 35 36 FF FF", swRefNotFound),
			s("00 2C 00 80 10 31 32 33 34 35 36 37 38 31 32 33 34 35 36 FF FF", swOK),
			s(verifyStatus, 0x63c3),
			pinOK(),
		}},
		{name: "set PIN retries needs management key and PIN", steps: []step{
			s("00 FA 05 04 00", swSecurityNotSatisfied),
			mgm(), s("00 FA 05 04 00", swSecurityNotSatisfied),
			pinOK(), s("00 FA 00 04 00", swIncorrectP1P2),
			s("00 FA 05 04 00", swOK),
			{cmd: "00 F7 00 80 00", sw: swOK, data: "01 01 FF 05 01 01 06 02 05 05"},
			{cmd: "00 F7 00 81 00", sw: swOK, data: "01 01 FF 05 01 01 06 02 04 04"},
		}},

		// RESET.
		{name: "reset needs PIN and PUK blocked", steps: []step{
			s("00 FB 00 00 00", swConditionsNotSatisfied),
			s(verifyWrong, 0x63c2), s(verifyWrong, 0x63c1), s(verifyWrong, 0x63c0),
			s("00 FB 00 00 00", swConditionsNotSatisfied),
			s("00 2C 00 80 10 30 30 30 30 30 30 30 30 31 32 33 34 35 36 FF FF", 0x63c2),
			s("00 2C 00 80 10 30 30 30 30 30 30 30 30 31 32 33 34 35 36 FF FF", 0x63c1),
			s("00 2C 00 80 10 30 30 30 30 30 30 30 30 31 32 33 34 35 36 FF FF", 0x63c0),
			s("00 FB 00 00 00", swOK),
			s(verifyStatus, 0x63c3), pinOK(),
		}},
		{name: "reset deletes keys and objects but not the attestation key", steps: []step{
			mgm(), s(genP256, swOK),
			s("00 DB 3F FF 0A 5C 03 5F C1 02 53 03 01 02 03", swOK),
			s(verifyWrong, 0x63c2), s(verifyWrong, 0x63c1), s(verifyWrong, 0x63c0),
			s("00 24 00 81 10 30 30 30 30 30 30 30 30 31 32 33 34 35 36 37 38", 0x63c2),
			s("00 24 00 81 10 30 30 30 30 30 30 30 30 31 32 33 34 35 36 37 38", 0x63c1),
			s("00 24 00 81 10 30 30 30 30 30 30 30 30 31 32 33 34 35 36 37 38", 0x63c0),
			s("00 FB 00 00 00", swOK),
			s("00 F7 00 9C 00", swRefNotFound),
			s("00 CB 3F FF 05 5C 03 5F C1 02", swNotFound),
			s("00 F7 00 F9 00", swOK),
			s("00 CB 3F FF 05 5C 03 5F FF 01", swMoreData),
			s(genP256, swSecurityNotSatisfied),
			mgm(), s(genP256, swOK),
		}},

		// Management key.
		{name: "management key challenge-response", steps: []step{
			s("00 87 03 9B 16 7C 14 80 08 01 02 03 04 05 06 07 08 81 08 01 02 03 04 05 06 07 08", swIncorrectData),
			s("00 87 03 9B 04 7C 02 80 00", swOK),
			s("00 87 03 9B 16 7C 14 80 08 01 02 03 04 05 06 07 08 81 08 01 02 03 04 05 06 07 08", swSecurityNotSatisfied),
			s("00 87 0A 9B 04 7C 02 80 00", swIncorrectP1P2),
			s("00 87 03 9B 04 7C 02 81 00", swIncorrectData),
			s("00 87 03 9B 03 7C 02 80", swIncorrectData),
			s("00 87 03 9B 05 7C 02 80 00", swWrongLength),
			s("00 87 03 9B 04 7D 02 80 00", swIncorrectData),
			s(genP256, swSecurityNotSatisfied),
			mgm(), s(genP256, swOK),
			sel(), s(genP256, swSecurityNotSatisfied),
		}},
		{name: "set management key", steps: []step{
			s("00 FF FF FF 1B 0A 9B 18 000102030405060708090A0B0C0D0E0F1011121314151617", swSecurityNotSatisfied),
			mgm(),
			s("00 FF FF FF 1B 0A 9B 17 000102030405060708090A0B0C0D0E0F1011121314151617", swIncorrectData),
			s("00 FF FF FF 1A 0A 9B 17 000102030405060708090A0B0C0D0E0F10111213141516", swIncorrectData),
			s("00 FF FF FF 13 0C 9B 10 000102030405060708090A0B0C0D0E0F", swIncorrectData),
			s("00 FF FF FF 1B 0A 9A 18 000102030405060708090A0B0C0D0E0F1011121314151617", swIncorrectData),
			s("00 FF FF FD 1B 0A 9B 18 000102030405060708090A0B0C0D0E0F1011121314151617", swIncorrectP1P2),
			s("00 FF FF FE 1B 0A 9B 18 000102030405060708090A0B0C0D0E0F1011121314151617", swOK),
			{cmd: "00 F7 00 9B 00", sw: swOK, data: "01 01 0A 02 02 00 02 05 01 00"},
			s("00 87 03 9B 04 7C 02 80 00", swIncorrectP1P2),
			{cmd: "00 87 0A 9B 04 7C 02 80 00", sw: swOK, data: "7C 12 80 10"},
		}},
		{name: "AES management keys need firmware 5.4", opts: Options{Version: [3]byte{5, 3, 0}}, steps: []step{
			mgm(),
			s("00 FF FF FF 1B 0A 9B 18 000102030405060708090A0B0C0D0E0F1011121314151617", swIncorrectData),
			s("00 FF FF FF 1B 03 9B 18 000102030405060708090A0B0C0D0E0F1011121314151617", swOK),
		}},
		{name: "firmware 5.7 defaults to AES-192", opts: v57, steps: []step{
			{cmd: "00 F7 00 9B 00", sw: swOK, data: "01 01 0A 02 02 00 01 05 01 01"},
			{cmd: "00 87 0A 9B 04 7C 02 80 00", sw: swOK, data: "7C 12 80 10"},
		}},

		// Keys.
		{name: "generate checks slot, algorithm and policies", steps: []step{
			mgm(),
			{cmd: genP256, sw: swOK, data: "7F 49 43 86 41 04"},
			{cmd: "00 47 00 9A 05 AC 03 80 01 14", sw: swOK, data: "7F 49 63 86 61 04"},
			s("00 47 00 9B 05 AC 03 80 01 11", swIncorrectP1P2),
			s("00 47 00 F9 05 AC 03 80 01 11", swIncorrectP1P2),
			s("00 47 01 9C 05 AC 03 80 01 11", swIncorrectP1P2),
			s("00 47 00 9C 05 AC 03 80 01 22", swIncorrectData),
			s("00 47 00 9C 05 AC 03 80 01 E0", swIncorrectData),
			s("00 47 00 9C 05 AC 03 81 01 11", swIncorrectData),
			s("00 47 00 9C 05 AB 03 80 01 11", swIncorrectData),
			s("00 47 00 9C 08 AC 06 80 01 11 AA 01 04", swIncorrectData),
			s("00 47 00 95 0B AC 09 80 01 11 AA 01 01 AB 01 03", swOK),
			{cmd: "00 F7 00 95 00", sw: swOK, data: "01 01 11 02 02 01 03 03 01 01 04 43 86 41 04"},
		}},
		{name: "default policies by slot", steps: []step{
			mgm(), s(genP256, swOK),
			s("00 47 00 9E 05 AC 03 80 01 11", swOK),
			s("00 47 00 9D 05 AC 03 80 01 11", swOK),
			{cmd: "00 F7 00 9C 00", sw: swOK, data: "01 01 11 02 02 03 01"},
			{cmd: "00 F7 00 9E 00", sw: swOK, data: "01 01 11 02 02 01 01"},
			{cmd: "00 F7 00 9D 00", sw: swOK, data: "01 01 11 02 02 02 01"},
		}},
		{name: "firmware 5.7 algorithms", opts: v57, steps: []step{
			mgm(),
			{cmd: "00 47 00 9A 05 AC 03 80 01 E0", sw: swOK, data: "7F 49 22 86 20"},
			{cmd: "00 47 00 9D 05 AC 03 80 01 E1", sw: swOK, data: "7F 49 22 86 20"},
		}},
		{name: "metadata", steps: []step{
			{cmd: "00 F7 00 80 00", sw: swOK, data: "01 01 FF 05 01 01 06 02 03 03"},
			s(verifyWrong, 0x63c2),
			{cmd: "00 F7 00 80 00", sw: swOK, data: "01 01 FF 05 01 01 06 02 03 02"},
			{cmd: "00 F7 00 81 00", sw: swOK, data: "01 01 FF 05 01 01 06 02 03 03"},
			{cmd: "00 F7 00 9B 00", sw: swOK, data: "01 01 03 02 02 00 01 05 01 01"},
			{cmd: "00 F7 00 F9 00", sw: swOK, data: "01 01 11 02 02 01 01 03 01 02"},
			s("00 F7 00 9C 00", swRefNotFound),
			s("00 F7 01 9C 00", swIncorrectP1P2),
		}},
		{name: "metadata needs firmware 5.3", opts: Options{Version: [3]byte{5, 2, 7}}, steps: []step{
			s("00 F7 00 9B 00", swINSNotSupported),
		}},

		// GENERAL AUTHENTICATE with slot keys.
		{name: "sign checks key and input", steps: []step{
			s("00 87 11 9C 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swIncorrectData),
			mgm(), s(genP256, swOK), pinOK(),
			s("00 87 14 9C 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swIncorrectData),
			s("00 87 11 9C 27 7C 25 82 00 81 21 "+strings.Repeat("AB", 33), swIncorrectData),
			s("00 87 11 9C 06 7C 04 81 02 AB AB", swIncorrectData),
			s("00 87 11 9C 0C 7C 0A 82 00 81 02 AB AB 85 02 AB AB", swIncorrectData),
			pinOK(),
			{cmd: "00 87 11 9C 16 7C 14 82 00 81 10 " + strings.Repeat("AB", 16), sw: swOK, data: "7C"},
		}},
		{name: "PIN policy once", steps: []step{
			mgm(), s("00 47 00 9A 08 AC 06 80 01 11 AA 01 02", swOK),
			s("00 87 11 9A 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swSecurityNotSatisfied),
			pinOK(),
			s("00 87 11 9A 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swOK),
			s("00 87 11 9A 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swOK),
			power(), sel(),
			s("00 87 11 9A 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swSecurityNotSatisfied),
		}},
		{name: "PIN policy always", steps: []step{
			mgm(), s(genP256, swOK), pinOK(),
			s("00 87 11 9C 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swOK),
			s("00 87 11 9C 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swSecurityNotSatisfied),
			pinOK(),
			s("00 87 11 9C 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swOK),
		}},
		{name: "PIN policy never", steps: []step{
			mgm(), s("00 47 00 9E 05 AC 03 80 01 11", swOK),
			s("00 87 11 9E 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swOK),
		}},
		{name: "touch refused", opts: Options{Touch: func(byte) bool { return false }}, steps: []step{
			mgm(), s("00 47 00 9E 08 AC 06 80 01 11 AB 01 02", swOK),
			s("00 87 11 9E 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swSecurityNotSatisfied),
			s("00 47 00 9D 08 AC 06 80 01 11 AB 01 01", swOK),
			s("00 87 11 9D 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swSecurityNotSatisfied),
			pinOK(),
			s("00 87 11 9D 26 7C 24 82 00 81 20 "+strings.Repeat("AB", 32), swOK),
			s("00 FF FF FE 1B 03 9B 18 010203040506070801020304050607080102030405060708", swOK),
			s("00 87 03 9B 04 7C 02 80 00", swOK),
			step{do: func(t *testing.T, c *Card) {
				defer func() {
					if recover() == nil {
						t.Error("management key with touch policy authenticated without a touch")
					}
				}()
				authMgm(&panicTB{t}, c)
			}},
		}},

		// Data objects.
		{name: "put and get data", steps: []step{
			s("00 DB 3F FF 0A 5C 03 5F C1 02 53 03 01 02 03", swSecurityNotSatisfied),
			mgm(),
			s("00 DB 3F FF 0A 5C 03 5F C1 02 53 03 01 02 03", swOK),
			{cmd: "00 CB 3F FF 05 5C 03 5F C1 02", sw: swOK, data: "53 03 01 02 03"},
			s("00 CB 3F FE 05 5C 03 5F C1 02", swIncorrectP1P2),
			s("00 DB 3F FF 0A 5C 03 5F C2 00 53 03 01 02 03", swIncorrectData),
			s("00 DB 3F FF 07 5C 03 5F C1 02 54 00", swIncorrectData),
			s("00 DB 3F FF 07 5C 03 5F C1 02 53 00", swOK),
			s("00 CB 3F FF 05 5C 03 5F C1 02", swNotFound),
			s("00 CB 3F FF 05 5C 03 5F C1 05", swNotFound),
			s("00 CB 3F FF 04 5C 02 5F C1", swNotFound),
			s("00 CB 3F FF 05 5C 04 5F C1 05", swIncorrectData),
		}},
		{name: "printed information needs the PIN", steps: []step{
			mgm(), s("00 DB 3F FF 0A 5C 03 5F C1 09 53 03 88 01 00", swOK),
			s("00 CB 3F FF 05 5C 03 5F C1 09", swSecurityNotSatisfied),
			pinOK(),
			{cmd: "00 CB 3F FF 05 5C 03 5F C1 09", sw: swOK, data: "53 03 88 01 00"},
		}},
		{name: "discovery object", steps: []step{
			{cmd: "00 CB 3F FF 03 5C 01 7E", sw: swOK, data: "7E 12 4F 0B A0 00 00 03 08 00 00 10 00 01 00 5F 2F 02 40 00"},
		}},

		// ATTEST.
		{name: "attest needs a generated key", steps: []step{
			s("00 F9 9C 00 00", swIncorrectData),
			s("00 F9 F9 00 00", swIncorrectData),
			mgm(),
			s("00 FE 11 9A 22 06 20 "+strings.Repeat("11", 32), swOK),
			s("00 F9 9A 00 00", swIncorrectData),
			s(genP256, swOK),
			s("00 F9 9C 01 00", swIncorrectP1P2),
			{cmd: "00 F9 9C 00 00", sw: swMoreData, data: "30 82"},
		}},

		// IMPORT.
		{name: "import checks its input", steps: []step{
			s("00 FE 11 9A 22 06 20 "+strings.Repeat("11", 32), swSecurityNotSatisfied),
			mgm(),
			s("00 FE 11 9B 22 06 20 "+strings.Repeat("11", 32), swIncorrectP1P2),
			s("00 FE 22 9A 22 06 20 "+strings.Repeat("11", 32), swIncorrectP1P2),
			s("00 FE 11 9A 21 06 1F "+strings.Repeat("11", 31), swIncorrectData),
			s("00 FE 11 9A 22 06 20 "+strings.Repeat("FF", 32), swIncorrectData),
			s("00 FE 11 9A 22 07 20 "+strings.Repeat("11", 32), swIncorrectData),
			s("00 FE 07 9A 06 01 01 03 02 01 05", swIncorrectData),
			s("00 FE 11 F9 22 06 20 "+strings.Repeat("11", 32), swOK),
			s("00 FE 11 9A 28 06 20 "+strings.Repeat("11", 32)+" AA 01 03 AB 01 02", swOK),
			{cmd: "00 F7 00 9A 00", sw: swOK, data: "01 01 11 02 02 03 02 03 01 02"},
		}},

		// Chaining.
		{name: "interrupted command chain", steps: []step{
			mgm(),
			s("10 DB 3F FF 05 5C 03 5F C1 02", swOK),
			s("00 CB 3F FF 05 5C 03 5F C1 02", swLastCommandExpected),
			s("00 DB 3F FF 05 53 03 01 02 03", swIncorrectData),
			s("10 DB 3F FF 05 5C 03 5F C1 02", swOK),
			s("00 DB 3F FF 05 53 03 01 02 03", swOK),
			{cmd: "00 CB 3F FF 05 5C 03 5F C1 02", sw: swOK, data: "53 03 01 02 03"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCard(t, tt.opts)
			for i, st := range tt.steps {
				if st.do != nil {
					st.do(t, c)
					continue
				}
				data, sw := send(t, c, unhex(t, st.cmd))
				if sw != st.sw && !(st.sw == swMoreData && sw&0xff00 == swMoreData) {
					t.Fatalf("step %d: %s: status %04X, want %04X (data %X)", i, st.cmd, sw, st.sw, data)
				}
				if want := unhex(t, st.data); !bytes.HasPrefix(data, want) {
					t.Fatalf("step %d: %s: data %X, want it to start with %X", i, st.cmd, data, want)
				}
			}
		})
	}
}

// panicTB turns Fatal into a panic, to test that a helper fails.
type panicTB struct{ testing.TB }

func (p *panicTB) Fatalf(format string, args ...any) { panic("fatal") }
func (p *panicTB) Fatal(args ...any)                 { panic("fatal") }
func (p *panicTB) Helper()                           {}

// TestTouchCache checks the "cached" touch policy: one touch lasts 15
// seconds of the card's clock.
func TestTouchCache(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	touches := 0
	c := newTestCard(t, Options{
		Now:   func() time.Time { return now },
		Touch: func(slot byte) bool { touches++; return slot == slotCardAuthentication },
	})
	authMgm(t, c)
	expect(t, c, "00 47 00 9E 08 AC 06 80 01 11 AB 01 03", swOK)
	sign := "00 87 11 9E 26 7C 24 82 00 81 20 " + strings.Repeat("AB", 32)
	for _, tt := range []struct {
		advance time.Duration
		touches int
	}{{0, 1}, {10 * time.Second, 1}, {4 * time.Second, 1}, {2 * time.Second, 2}, {time.Second, 2}} {
		now = now.Add(tt.advance)
		expect(t, c, sign, swOK)
		if touches != tt.touches {
			t.Fatalf("after %v more: %d touches asked, want %d", tt.advance, touches, tt.touches)
		}
	}
}
