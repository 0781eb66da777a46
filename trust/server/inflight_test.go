package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"
)

// onlyReader hides a reader's type, so that nothing can tell its length.
type onlyReader struct{ io.Reader }

// TestUpdateBytesInFlightLimit holds one large update in flight (its body
// not yet all sent) and checks that updates that would take the server
// past its budget of bytes in flight are answered 503 with Retry-After,
// whether their length is known or not, that an update that fits still
// goes through, and that the budget is given back when requests end.
func TestUpdateBytesInFlightLimit(t *testing.T) {
	const (
		gun     = "registry.example.com/team/app"
		budget  = 64 << 10
		holding = 40 << 10 // left: 24 KiB
	)
	ts, srv := startServer(t, filepath.Join(t.TempDir(), "server.db"), Options{
		Limits: Limits{MaxRequestBytes: 48 << 10, MaxBytesInFlight: budget},
	})
	p := newPublisher(t, ts.URL, gun)
	mustPost(t, ts.URL, gun, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})

	// The holder: an update of known length whose body arrives slowly.
	// The handler is called directly, so that once the first write to the
	// pipe returns, the handler is reading the body and has reserved it.
	pr, pw := io.Pipe()
	hold := httptest.NewRequest(http.MethodPost, "/v2/"+gun+"/_trust/tuf/", pr)
	hold.ContentLength = holding
	hold.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	held := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, hold)
		held <- rec.Code
	}()
	if _, err := io.WriteString(pw, "--b\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := srv.inflight.inFlight(); got != holding {
		t.Fatalf("bytes in flight with the holder reading: %d, want %d", got, holding)
	}

	big, ct := encodeUpdate(t, file{"targets.json", bytes.Repeat([]byte("x"), 30<<10)})
	tests := []struct {
		name   string
		body   io.Reader
		length int64
	}{
		{"known length over what is left", bytes.NewReader(big), int64(len(big))},
		{"unknown length (chunked) over what is left", onlyReader{bytes.NewReader(big)}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/v2/"+gun+"/_trust/tuf/", tc.body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ct)
			req.ContentLength = tc.length // -1: sent chunked
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			body, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
				t.Fatalf("status %d, body %s: not one notary error", resp.StatusCode, body)
			}
			msg := e.Errors[0].Message
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != fmt.Sprint(retryAfterBusy) ||
				e.Errors[0].Code != "SIGNET_BUSY" || !strings.Contains(msg, "--max-bytes-in-flight") || !strings.Contains(msg, "retry") ||
				strings.Contains(msg, "\n") {
				t.Fatalf("got %d Retry-After %q %s %q; want 503 Retry-After %d SIGNET_BUSY with one line naming the limit and the fix",
					resp.StatusCode, resp.Header.Get("Retry-After"), e.Errors[0].Code, msg, retryAfterBusy)
			}
		})
	}
	// A small publish fits beside the holder.
	p.addTarget(data.CanonicalTargetsRole, "v2")
	mustPost(t, ts.URL, gun, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})

	// The holder's client goes away; its bytes are given back.
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if code := <-held; code != http.StatusBadRequest {
		t.Fatalf("broken holder answered %d, want 400", code)
	}
	if got := srv.inflight.inFlight(); got != 0 {
		t.Fatalf("bytes in flight after every request ended: %d, want 0", got)
	}
	p.addTarget(data.CanonicalTargetsRole, "v3")
	mustPost(t, ts.URL, gun, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
}
