//go:build nopcsc || (!cgo && !windows)

// Package yubikey is built without PC/SC: no YubiKey support. That is the
// build with -tags nopcsc, and every build without cgo (CGO_ENABLED=0) but
// Windows', where piv-go reaches winscard.dll without cgo.
package yubikey

import "errors"

// Supported reports whether this binary was built with PC/SC.
const Supported = false

// ErrUnsupported is returned by every operation.
var ErrUnsupported = errors.New("this signet was built without YubiKey support (-tags nopcsc, or without cgo on Linux and macOS): use a build with PC/SC")

// Cards reports that YubiKeys are not supported.
func Cards() ([]string, error) { return nil, ErrUnsupported }
