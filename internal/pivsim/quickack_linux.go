package pivsim

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setQuickAck turns on TCP_QUICKACK, which Linux turns off again by
// itself, so it is set after every read.
func setQuickAck(c syscall.Conn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
}
