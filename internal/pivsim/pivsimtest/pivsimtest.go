//go:build !nopcsc && cgo && unix

package pivsimtest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
	"golang.org/x/sys/unix"

	"github.com/signet-project/signet/internal/pivsim"
	"github.com/signet-project/signet/internal/testenv"
)

// EnvVPCD names the environment variable with vpcd's address: host:port,
// or a port on 127.0.0.1.
const EnvVPCD = "SIGNET_TEST_VPCD"

// ReaderPrefix starts the names of vpcd's readers in PC/SC.
const ReaderPrefix = "Virtual PCD"

// VPCDAddr returns vpcd's address from $SIGNET_TEST_VPCD, or calls
// testenv.Require when it is unset.
func VPCDAddr(t testing.TB) string {
	t.Helper()
	v := os.Getenv(EnvVPCD)
	if v == "" {
		testenv.Require(t, "pcscd with vpcd", "%s is not set; run: export %s=127.0.0.1:$(scripts/start-pcscd.sh)", EnvVPCD, EnvVPCD)
	}
	if _, err := strconv.Atoi(v); err == nil {
		return net.JoinHostPort("127.0.0.1", v)
	}
	return v
}

// Insert puts card into vpcd's first slot at VPCDAddr, waits until PC/SC
// shows it and returns the name of its reader. The card is removed when
// the test ends; close any piv.YubiKey opened on it before then (register
// the Close with t.Cleanup after Insert).
func Insert(t testing.TB, card *pivsim.Card) string {
	t.Helper()
	return InsertAt(t, card, VPCDAddr(t))
}

// InsertAt is Insert with vpcd's address given: host:port of a vpcd slot.
func InsertAt(t testing.TB, card *pivsim.Card, addr string) string {
	t.Helper()
	lockSlot(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	var d net.Dialer
	tcp, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		cancel()
		testenv.Require(t, "pcscd with vpcd", "connect to vpcd %s: %v; start it with scripts/start-pcscd.sh", addr, err)
	}
	conn := &watchedConn{TCPConn: tcp.(*net.TCPConn), seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- card.ServeVPCD(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("pivsimtest: card %d: %v", card.Serial(), err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("pivsimtest: card %d still connected to vpcd 10 s after removal", card.Serial())
		}
	})

	// vpcd accepts a card only after pcscd has seen the previous one leave,
	// and pcscd polls every 400 ms. Until vpcd speaks to this card, the
	// reader may still show the previous one, and opening that (piv.Open
	// leaks the handle when SELECT fails) would block the reader.
	deadline := time.Now().Add(15 * time.Second)
	select {
	case <-conn.seen:
	case err := <-done:
		t.Fatalf("pivsimtest: insert card %d into vpcd %s: %v", card.Serial(), addr, err)
	case <-time.After(time.Until(deadline)):
		t.Fatalf("pivsimtest: vpcd %s did not take card %d within 15 s: is another card in its slot (another test process)?", addr, card.Serial())
	}
	for {
		select {
		case err := <-done:
			t.Fatalf("pivsimtest: card %d in vpcd %s: %v", card.Serial(), addr, err)
		default:
		}
		reader, err := findReader(card.Serial())
		if err == nil {
			return reader
		}
		if time.Now().After(deadline) {
			t.Fatalf("pivsimtest: card %d did not appear in a %q reader of pcscd within 15 s: %v", card.Serial(), ReaderPrefix, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watchedConn is a vpcd connection that closes seen when vpcd first sends
// something. It keeps the *net.TCPConn methods ServeVPCD uses for
// TCP_NODELAY and TCP_QUICKACK.
type watchedConn struct {
	*net.TCPConn
	once sync.Once
	seen chan struct{}
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		c.once.Do(func() { close(c.seen) })
	}
	return n, err
}

// lockSlot waits for and takes a lock on the vpcd slot addr, shared by
// all test processes on the machine (go test runs packages in parallel),
// until the test ends.
func lockSlot(t testing.TB, addr string) {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' {
			return r
		}
		return '_'
	}, addr)
	path := filepath.Join(os.TempDir(), "signet-vpcd-"+name+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("pivsimtest: open lock file: %v", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("pivsimtest: lock vpcd slot %s (%s): %v", addr, path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { f.Close() }) // closing drops the lock
}

// lockWait is how long Insert waits for other test processes to leave the
// vpcd slot.
const lockWait = 5 * time.Minute

// findReader returns the vpcd reader holding the card with the given
// serial number.
func findReader(serial uint32) (string, error) {
	readers, err := piv.Cards()
	if err != nil {
		return "", err
	}
	errs := []error{errors.New("no card with that serial number")}
	for _, r := range readers {
		if !strings.HasPrefix(r, ReaderPrefix) {
			continue
		}
		yk, err := piv.Open(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := yk.Serial()
		yk.Close()
		if err == nil && s == serial {
			return r, nil
		}
	}
	return "", errors.Join(errs...)
}
