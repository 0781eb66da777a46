//go:build !linux

package pivsim

import "syscall"

// setQuickAck does nothing: TCP_QUICKACK is Linux's.
func setQuickAck(syscall.Conn) {}
