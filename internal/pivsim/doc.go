// Package pivsim simulates a YubiKey's PIV application, so that code built
// on piv-go (and tools such as yubico-piv-tool) can be tested without
// hardware.
//
// A Card holds what a YubiKey 5 keeps: PIN and PUK with retry counters,
// the management key (3DES or AES), asymmetric keys in slots 9a, 9c, 9d,
// 9e and 82-95 with PIN and touch policies, data objects such as
// certificates and the PIN-protected management key, and an attestation
// key in slot f9 whose certificate chains to a simulated root CA.
// Card.Apdu answers the command APDUs piv-go sends (see the handlers for
// the list), with YubiKey's status words.
//
// Card.ConnectVPCD plugs the card into vpcd, the virtual reader driver of
// the vsmartcard project, loaded by a real pcscd (scripts/start-pcscd.sh
// starts one). Everything above the reader then runs as with a real card:
// libpcsclite, pcscd, piv-go, yubico-piv-tool. Package
// internal/pivsim/pivsimtest does that for tests.
//
// Not simulated: secure messaging (SCP11), biometric verification
// (YubiKey Bio), MOVE KEY and DELETE KEY (firmware 5.7), the OTP, FIDO and
// OpenPGP applications, and the timing of real hardware.
package pivsim
