package auth

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestHtpasswdBcryptBounded sends 48 logins with wrong passwords at once
// to the real trust server and holds every password comparison until
// /healthz, /readyz and /_notary_server/health have answered: the
// comparisons in flight never exceed the bound, health answers while all
// slots are taken, and every login is refused once released. The
// comparator is replaced so that slots are held for as long as the test
// needs, not for as long as bcrypt takes.
func TestHtpasswdBcryptBounded(t *testing.T) {
	const logins = 48
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, "alice:"+hash(t, "alice-pw", "$2y$")+"\n")
	h, err := NewHtpasswd(path, "")
	if err != nil {
		t.Fatal(err)
	}
	bound := cap(h.slots)
	if bound < 1 || bound >= logins {
		t.Fatalf("bcrypt bound %d; this test wants 1 <= bound < %d", bound, logins)
	}
	var (
		inFlight, most, calls atomic.Int64
		entered               = make(chan struct{}, logins)
		release               = make(chan struct{})
	)
	h.compare = func(hash, password []byte) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		calls.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		entered <- struct{}{}
		<-release
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	ts := startTrustServer(t, h)

	var wg sync.WaitGroup
	codes := make(chan int, logins)
	for i := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v2/"+gun+"/_trust/tuf/", nil)
			user := "alice"
			if i%2 == 1 {
				user = fmt.Sprintf("nobody-%d", i)
			}
			req.SetBasicAuth(user, "wrong")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for range bound {
		<-entered
	}
	// Every slot is taken and the other logins wait; health still answers.
	// The timeout only keeps a broken server from hanging the test.
	client := &http.Client{Timeout: time.Minute}
	for _, p := range []string{"/healthz", "/readyz", "/_notary_server/health"} {
		resp, err := client.Get(ts.URL + p)
		if err != nil {
			t.Fatalf("GET %s with every bcrypt slot taken: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s with every bcrypt slot taken: %d", p, resp.StatusCode)
		}
	}
	close(release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusUnauthorized {
			t.Errorf("wrong login answered %d, want 401", code)
		}
	}
	if got := calls.Load(); got != logins {
		t.Errorf("%d comparisons for %d logins", got, logins)
	}
	if got := most.Load(); got > int64(bound) {
		t.Errorf("%d comparisons ran at once, over the bound of %d", got, bound)
	}
}
