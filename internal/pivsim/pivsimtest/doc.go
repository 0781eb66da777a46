// Package pivsimtest inserts simulated PIV cards (package pivsim) into the
// vpcd reader of a running pcscd, so that tests drive them through
// libpcsclite and pcscd with piv-go or yubico-piv-tool exactly as they
// would a YubiKey.
//
// pcscd with vpcd is started by scripts/start-pcscd.sh, which prints the
// port vpcd listens on; tests find it in $SIGNET_TEST_VPCD:
//
//	export SIGNET_TEST_VPCD=127.0.0.1:$(scripts/start-pcscd.sh)
//
// Without it, tests that need it are skipped, or fail under
// SIGNET_REQUIRE_ALL=1 (see internal/testenv).
//
// vpcd holds one card per slot: Insert takes a file lock on the slot
// (in os.TempDir) until the test ends, so that test binaries running in
// parallel (go test ./...) take turns, and waits up to five minutes for
// it. Tests of one binary that insert cards must not call t.Parallel.
//
// The package needs PC/SC (piv-go through cgo and libpcsclite) and a Unix
// system: without cgo, or with -tags nopcsc, it is empty.
package pivsimtest
