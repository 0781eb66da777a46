package mirror

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// blockingTransport answers each request with a body, announcing it on
// arrived.
type blockingTransport struct{ arrived chan *http.Request }

func (b blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b.arrived <- r
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

// TestLimiter: a third request waits until one of the two in flight has
// closed its body.
func TestLimiter(t *testing.T) {
	next := blockingTransport{arrived: make(chan *http.Request, 3)}
	l := newLimiter(next, 2)
	bodies := make(chan io.Closer, 3)
	for range 3 {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
			resp, err := l.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			bodies <- resp.Body
		}()
	}
	<-next.arrived
	<-next.arrived
	first := <-bodies
	<-bodies
	select {
	case <-next.arrived:
		t.Fatal("a third request was sent while two were in flight")
	default:
	}
	first.Close()
	first.Close() // a second close does not free a second slot
	<-next.arrived
	if got := l.count.Load(); got != 3 {
		t.Fatalf("counted %d requests, want 3", got)
	}
	if n := len(l.slots); n != 2 {
		t.Fatalf("%d slots held, want 2", n)
	}
}
