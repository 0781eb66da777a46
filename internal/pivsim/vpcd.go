package pivsim

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// DefaultVPCDPort is the TCP port vpcd, the virtual smart card reader
// driver for pcscd (Debian package vsmartcard-vpcd), listens on for its
// first card slot; the second slot is on the next port.
const DefaultVPCDPort = 35963

// vpcd control messages: one-byte messages from the reader. Only
// vpcdATR expects an answer.
const (
	vpcdPowerOff = 0x00
	vpcdPowerOn  = 0x01
	vpcdReset    = 0x02
	vpcdATR      = 0x04
)

// ConnectVPCD inserts the card into a vpcd reader slot: it dials vpcd at
// addr (host:port, such as "127.0.0.1:35963") and serves it with
// ServeVPCD until ctx is done (then it returns nil, the card removed) or
// the connection fails. vpcd takes one card per slot and accepts the next
// one only when the present card leaves; until then the connection waits.
func (c *Card) ConnectVPCD(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to vpcd %q: %w", addr, err)
	}
	return c.ServeVPCD(ctx, conn)
}

// ServeVPCD speaks vpcd's protocol on conn, which it closes when it
// returns: every message is a two-byte big-endian length and that many
// bytes; a one-byte message is a control message (00 power off, 01 power
// on, 02 reset, 04 send the ATR), anything longer a command APDU for the
// card, answered in the same framing. It returns nil when ctx is done and
// an error when the reader hangs up or the connection fails.
//
// On TCP connections (a *net.TCPConn, or a type wrapping one that keeps
// its SetNoDelay and SyscallConn methods) it sets TCP_NODELAY and, on
// Linux, TCP_QUICKACK after every read. vpcd sends the length and the
// body of a message in two writes: with the length's acknowledgement
// delayed (Linux waits up to 40 ms), Nagle's algorithm holds the body in
// vpcd's socket until it comes, and every APDU takes some 44 ms instead of
// a fraction of one.
func (c *Card) ServeVPCD(ctx context.Context, conn net.Conn) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	var src io.Reader = conn
	if tcp, ok := conn.(tcpConn); ok {
		tcp.SetNoDelay(true)
		src = &ackReader{conn: tcp, off: &c.noQuickAck}
	}
	r := bufio.NewReader(src)
	var hdr [2]byte
	buf := make([]byte, 0, 512)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return serveErr(ctx, conn, err)
		}
		msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(r, msg); err != nil {
			return serveErr(ctx, conn, err)
		}

		var answer []byte
		switch {
		case len(msg) == 0:
			continue
		case len(msg) > 1:
			answer = c.Apdu(msg)
		case msg[0] == vpcdATR:
			answer = c.ATR()
		case msg[0] == vpcdPowerOff, msg[0] == vpcdPowerOn, msg[0] == vpcdReset:
			c.powerCycle()
			continue
		default:
			continue // unknown control message: vpcd expects no answer
		}
		// One write per answer, length and data together.
		buf = binary.BigEndian.AppendUint16(buf[:0], uint16(len(answer)))
		buf = append(buf, answer...)
		if _, err := conn.Write(buf); err != nil {
			return serveErr(ctx, conn, err)
		}
	}
}

// tcpConn is a *net.TCPConn, or a type that wraps one.
type tcpConn interface {
	net.Conn
	SetNoDelay(bool) error
	SyscallConn() (syscall.RawConn, error)
}

// ackReader reads from a TCP connection and sets TCP_QUICKACK after every
// read, since Linux clears it by itself.
type ackReader struct {
	conn tcpConn
	off  *atomic.Bool
}

func (a *ackReader) Read(p []byte) (int, error) {
	n, err := a.conn.Read(p)
	if !a.off.Load() {
		setQuickAck(a.conn)
	}
	return n, err
}

func serveErr(ctx context.Context, conn net.Conn, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("serve vpcd %q: reader closed the connection: %w", conn.RemoteAddr(), err)
	}
	return fmt.Errorf("serve vpcd %q: %w", conn.RemoteAddr(), err)
}
