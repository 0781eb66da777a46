package pivsim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// reader plays vpcd on one end of a connection.
type reader struct {
	t    *testing.T
	conn net.Conn
}

func (r *reader) send(msg []byte) {
	r.t.Helper()
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	if _, err := r.conn.Write(append(frame, msg...)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *reader) recv() []byte {
	r.t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(r.conn, hdr[:]); err != nil {
		r.t.Fatal(err)
	}
	msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(r.conn, msg); err != nil {
		r.t.Fatal(err)
	}
	return msg
}

// TestServeVPCD speaks vpcd's protocol to a card over TCP, as pcscd's
// vpcd driver does: ATR requests, power control without answers, APDUs.
func TestServeVPCD(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := newTestCard(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.ConnectVPCD(ctx, l.Addr().String()) }()
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := &reader{t, conn}

	r.send([]byte{vpcdATR})
	if got := r.recv(); !bytes.Equal(got, c.ATR()) {
		t.Errorf("ATR = %X, want %X", got, c.ATR())
	}
	r.send([]byte{vpcdPowerOn})
	r.send([]byte{0x7f}) // unknown control message: ignored
	r.send(unhex(t, selectPIV))
	if got := r.recv(); !bytes.HasSuffix(got, []byte{0x90, 0x00}) {
		t.Errorf("SELECT answered %X", got)
	}
	r.send(unhex(t, verifyDefault))
	if got := r.recv(); !bytes.Equal(got, []byte{0x90, 0x00}) {
		t.Errorf("VERIFY answered %X", got)
	}
	// A reset ends the session: the application and the PIN are gone.
	r.send([]byte{vpcdReset})
	r.send(unhex(t, verifyStatus))
	if got := r.recv(); !bytes.Equal(got, []byte{0x6d, 0x00}) {
		t.Errorf("VERIFY after reset answered %X, want 6D00", got)
	}
	r.send(unhex(t, selectPIV))
	r.recv()
	r.send(unhex(t, verifyStatus))
	if got := r.recv(); !bytes.Equal(got, []byte{0x63, 0xc3}) {
		t.Errorf("VERIFY status after reset answered %X, want 63C3", got)
	}
	r.send([]byte{vpcdPowerOff})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ConnectVPCD after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ConnectVPCD did not return after cancel")
	}
}

// TestServeVPCDHangUp checks that a reader hanging up ends ServeVPCD with
// an error.
func TestServeVPCDHangUp(t *testing.T) {
	cardEnd, readerEnd := net.Pipe()
	c := newTestCard(t, Options{})
	done := make(chan error, 1)
	go func() { done <- c.ServeVPCD(context.Background(), cardEnd) }()
	r := &reader{t, readerEnd}
	r.send([]byte{vpcdATR})
	r.recv()
	readerEnd.Close()
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Errorf("ServeVPCD after hang-up = %v, want io.EOF", err)
	}
}

// TestConnectVPCDRefused checks the error when no vpcd listens.
func TestConnectVPCDRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newTestCard(t, Options{})
	if err := c.ConnectVPCD(context.Background(), addr); err == nil {
		t.Error("ConnectVPCD to a closed port succeeded")
	}
}
