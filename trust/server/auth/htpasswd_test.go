package auth

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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

func TestHtpasswdDummyCost(t *testing.T) {
	h6, err := bcrypt.GenerateFromPassword([]byte("x"), 6)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		want    int
	}{
		{"min cost", "a:" + hash(t, "x", "$2y$") + "\n", bcrypt.MinCost},
		{"highest cost wins", "a:" + hash(t, "x", "$2y$") + "\nb:" + string(h6) + "\n", 6},
		{"no users", "# nobody yet\n", bcrypt.DefaultCost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "htpasswd")
			writeFile(t, path, tt.content)
			h, err := NewHtpasswd(path, "")
			if err != nil {
				t.Fatal(err)
			}
			// Unknown users cost as much as the most costly known one.
			if got, err := bcrypt.Cost(h.dummy); err != nil || got != tt.want {
				t.Errorf("dummy cost = %d, %v; want %d", got, err, tt.want)
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
