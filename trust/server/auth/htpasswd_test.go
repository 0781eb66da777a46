package auth

import (
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// hash returns a bcrypt hash of password with the given prefix ("$2y$"...).
func hash(t testing.TB, password, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + strings.TrimPrefix(string(h), "$2a$")
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHtpasswd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, strings.Join([]string{
		"# signet writers",
		"alice:" + hash(t, "alice-secret", "$2y$"),
		"",
		"bob:" + hash(t, "bob-secret", "$2a$") + "\r",
		"  carol:" + hash(t, "carol-secret", "$2b$") + "  ",
	}, "\n"))
	h, err := NewHtpasswd(path, "signet trust")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		user     string // "" for no credentials
		password string
		header   string // raw Authorization header instead of user and password
		gun      string
		actions  []string
		want     error
	}{
		{name: "2y entry", user: "alice", password: "alice-secret"},
		{name: "2a entry with CRLF", user: "bob", password: "bob-secret"},
		{name: "2b entry with spaces", user: "carol", password: "carol-secret"},
		{name: "any actions", user: "alice", password: "alice-secret", actions: []string{"*"}},
		{name: "ping", user: "alice", password: "alice-secret", gun: "-"},
		{name: "wrong password", user: "alice", password: "bob-secret", want: ErrInvalidCredentials},
		{name: "empty password", user: "alice", password: "", want: ErrInvalidCredentials},
		{name: "unknown user", user: "mallory", password: "alice-secret", want: ErrInvalidCredentials},
		{name: "comment is no user", user: "# signet writers", password: "", want: ErrInvalidCredentials},
		{name: "no credentials", want: ErrNoCredentials},
		{name: "bearer token", header: "Bearer abc.def.ghi", want: ErrNoCredentials},
		{name: "malformed basic", header: "Basic !!!", want: ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v2/"+gun+"/_trust/tuf/", nil)
			switch {
			case tt.header != "":
				r.Header.Set("Authorization", tt.header)
			case tt.user != "":
				r.SetBasicAuth(tt.user, tt.password)
			}
			g, actions := gun, []string{"push", "pull"}
			if tt.gun == "-" {
				g = ""
			}
			if tt.actions != nil {
				actions = tt.actions
			}
			err := h.Authorize(r, g, actions...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Authorize: %v, want nil", err)
				}
				return
			}
			var ce *ChallengeError
			if !errors.As(err, &ce) || !errors.Is(err, tt.want) {
				t.Fatalf("Authorize: %v, want *ChallengeError wrapping %v", err, tt.want)
			}
			if got, want := ce.Header(), `Basic realm="signet trust"`; got != want {
				t.Errorf("Header() = %s, want %s", got, want)
			}
			if tt.password != "" && strings.Contains(err.Error(), tt.password) {
				t.Errorf("error contains the password: %v", err)
			}
		})
	}
}

func TestNewHtpasswdRefuses(t *testing.T) {
	good := "alice:" + hash(t, "secret", "$2y$") + "\n"
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
	}{
		{"apr1", good + "bob:$apr1$x9Qw6Vqe$0ZpYrSgnDNVo2B3aHuc2N/\n", []string{"line 2", `"bob"`, "MD5 (apr1)", "htpasswd -B"}},
		{"sha1", "# comment\n\n" + good + "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", []string{"line 4", "SHA-1", "htpasswd -B"}},
		{"crypt", "bob:rqXexS6ZhobKA\n", []string{"line 1", "DES crypt", "htpasswd -B"}},
		{"sha512-crypt", "bob:$6$salt$hash\n", []string{"line 1", "SHA-512-crypt"}},
		{"plain text", "bob:password\n", []string{"line 1", "plain-text", "htpasswd -B"}},
		{"malformed bcrypt", "bob:$2y$10$short\n", []string{"line 1", "malformed bcrypt", "htpasswd -B"}},
		{"bcrypt cost out of range", "bob:$2y$99$" + dummyHashBody + "\n", []string{"line 1", "malformed bcrypt"}},
		{"no colon", good + "bob\n", []string{"line 2", "user:hash"}},
		{"empty user", ":" + hash(t, "x", "$2y$") + "\n", []string{"line 1", "user:hash"}},
		{"duplicate user", good + good, []string{"line 2", "twice"}},
		{"too large", good + strings.Repeat("#", MaxHtpasswdSize), []string{"larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "htpasswd")
			writeFile(t, path, tt.content)
			_, err := NewHtpasswd(path, "")
			if err == nil {
				t.Fatal("NewHtpasswd succeeded, want error")
			}
			msg := err.Error()
			for _, w := range append(tt.want, path) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line", msg)
			}
			if strings.Contains(msg, "$apr1$x9Qw") || strings.Contains(msg, "W6ph5Mm5") {
				t.Errorf("error %q contains the hash", msg)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		_, err := NewHtpasswd(filepath.Join(t.TempDir(), "missing"), "")
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("NewHtpasswd: %v, want not-exist error", err)
		}
	})
}

// costRecorder is an Htpasswd comparator that records the bcrypt cost of
// each hash compared, and refuses every password.
type costRecorder struct {
	mu    sync.Mutex
	costs []int
}

func (c *costRecorder) compare(hash, _ []byte) error {
	cost, err := bcrypt.Cost(hash)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.costs = append(c.costs, cost)
	c.mu.Unlock()
	return bcrypt.ErrMismatchedHashAndPassword
}

// take returns the costs recorded since the last call.
func (c *costRecorder) take() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.costs
	c.costs = nil
	return out
}

// TestHtpasswdUnknownUserCost checks, by the hashes compared rather than
// by the clock, that a wrong password costs an unknown user what it costs
// a known one: one bcrypt comparison, at the cost of one of the file's
// users; each unknown name always the same cost, on every replica; and
// unknown names spread over all the costs of the file, so that no cost
// marks a name as unknown (before, unknown users all took the highest).
func TestHtpasswdUnknownUserCost(t *testing.T) {
	h5, err := bcrypt.GenerateFromPassword([]byte("bob-pw"), 5)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		content   string
		known     map[string]int // user to the cost of their hash
		wantCosts []int          // the costs unknown names take
	}{
		{"one cost", "alice:" + hash(t, "alice-pw", "$2y$") + "\n", map[string]int{"alice": bcrypt.MinCost}, []int{bcrypt.MinCost}},
		{"mixed costs", "alice:" + hash(t, "alice-pw", "$2y$") + "\nbob:" + string(h5) + "\n", map[string]int{"alice": bcrypt.MinCost, "bob": 5}, []int{bcrypt.MinCost, 5}},
		{"no users", "# nobody yet\n", nil, []int{bcrypt.DefaultCost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "htpasswd")
			writeFile(t, path, tt.content)
			replicas := make([]*Htpasswd, 2)
			rec := &costRecorder{}
			for i := range replicas {
				h, err := NewHtpasswd(path, "")
				if err != nil {
					t.Fatal(err)
				}
				h.compare = rec.compare
				replicas[i] = h
			}
			try := func(h *Htpasswd, user string) int {
				t.Helper()
				r := httptest.NewRequest("GET", "/", nil)
				r.SetBasicAuth(user, "wrong")
				if err := h.Authorize(r, gun, "pull"); !errors.Is(err, ErrInvalidCredentials) {
					t.Fatalf("%s with a wrong password: %v, want invalid credentials", user, err)
				}
				costs := rec.take()
				if len(costs) != 1 {
					t.Fatalf("%s: %d bcrypt comparisons, want 1", user, len(costs))
				}
				return costs[0]
			}
			for user, cost := range tt.known {
				if got := try(replicas[0], user); got != cost {
					t.Errorf("known user %s compared at cost %d, want their own %d", user, got, cost)
				}
			}
			seen := map[int]bool{}
			for i := range 64 {
				user := fmt.Sprintf("nobody-%d", i)
				cost := try(replicas[0], user)
				if !slices.Contains(tt.wantCosts, cost) {
					t.Fatalf("unknown user %s compared at cost %d, not a cost of the file %v", user, cost, tt.wantCosts)
				}
				if again, other := try(replicas[0], user), try(replicas[1], user); again != cost || other != cost {
					t.Fatalf("unknown user %s compared at cost %d, then %d, and %d on another replica", user, cost, again, other)
				}
				seen[cost] = true
			}
			if len(seen) != len(tt.wantCosts) {
				t.Errorf("64 unknown names took costs %v, want all of %v", slices.Sorted(maps.Keys(seen)), tt.wantCosts)
			}
		})
	}
}

func TestHtpasswdReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	alice := "alice:" + hash(t, "alice-secret", "$2y$") + "\n"
	bob := "bob:" + hash(t, "bob-secret", "$2y$") + "\n"
	writeFile(t, path, alice)
	h, err := NewHtpasswd(path, "")
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	h.now = func() time.Time { return now }
	h.checked = now

	// mtime moves the file's modification time forward, as an edit would.
	mtime := time.Now()
	touch := func() {
		t.Helper()
		mtime = mtime.Add(time.Second)
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name    string
		change  func()
		advance time.Duration
		user    string
		allowed bool
		errNil  bool
	}{
		{"initial alice", nil, 0, "alice", true, true},
		{"initial bob", nil, 0, "bob", false, true},
		{"bob added, checked within a second", func() { writeFile(t, path, alice+bob); touch() }, 500 * time.Millisecond, "bob", false, true},
		{"bob added, a second later", nil, time.Second, "bob", true, true},
		{"file broken: old users stay", func() { writeFile(t, path, alice+bob+"eve:$apr1$abc$def\n"); touch() }, time.Second, "bob", true, false},
		{"file broken: still reported", nil, time.Second, "alice", true, false},
		{"file fixed, alice removed", func() { writeFile(t, path, bob); touch() }, time.Second, "alice", false, true},
		{"file fixed, bob kept", nil, 0, "bob", true, true},
		{"file removed: old users stay", func() { os.Remove(path) }, time.Second, "bob", true, false},
		{"file back", func() { writeFile(t, path, alice); touch() }, time.Second, "alice", true, true},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		now = now.Add(s.advance)
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(s.user, s.user+"-secret")
		err := h.Authorize(r, gun, "push", "pull")
		if got := err == nil; got != s.allowed {
			t.Errorf("%s: allowed = %v (%v), want %v", s.name, got, err, s.allowed)
		}
		if got := h.Err() == nil; got != s.errNil {
			t.Errorf("%s: Err() = %v, want nil: %v", s.name, h.Err(), s.errNil)
		}
		if !s.errNil && h.Err() != nil && !strings.Contains(h.Err().Error(), path) {
			t.Errorf("%s: Err() = %v, does not name the file", s.name, h.Err())
		}
	}
}

func TestHtpasswdConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	content := "alice:" + hash(t, "alice-secret", "$2y$") + "\n"
	writeFile(t, path, content)
	h, err := NewHtpasswd(path, "")
	if err != nil {
		t.Fatal(err)
	}
	// Every call of the clock is a second later, so every Authorize looks
	// at the file, which a writer keeps replacing.
	var ticks atomic.Int64
	h.now = func() time.Time { return t0.Add(time.Duration(ticks.Add(1)) * time.Second) }

	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := path + ".tmp"
			writeFile(t, tmp, content+fmt.Sprintf("# %d\n", i))
			if err := os.Rename(tmp, path); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	done := make(chan error)
	for i := range 8 {
		go func() {
			r := httptest.NewRequest("GET", "/", nil)
			r.SetBasicAuth("alice", "alice-secret")
			var err error
			for range 5 {
				if e := h.Authorize(r, gun, "pull"); e != nil {
					err = fmt.Errorf("goroutine %d: %w", i, e)
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	close(stop)
	<-wrote
}
