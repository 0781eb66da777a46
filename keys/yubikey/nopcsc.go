//go:build nopcsc

// Package yubikey is built without PC/SC (-tags nopcsc): no YubiKey
// support.
package yubikey

import "errors"

// Supported reports whether this binary was built with PC/SC.
const Supported = false

// ErrUnsupported is returned by every operation.
var ErrUnsupported = errors.New("this signet was built without YubiKey support (-tags nopcsc): use a build with PC/SC")

// Cards reports that YubiKeys are not supported.
func Cards() ([]string, error) { return nil, ErrUnsupported }
