package trust

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/signet-project/signet/internal/sqlitedb"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/trust/server"
)

const testPass = "trust test passphrase"

func testPassphrases() *keys.Retriever {
	return &keys.Retriever{Getenv: func(k string) string {
		switch k {
		case "SIGNET_ROOT_PASSPHRASE", "SIGNET_REPOSITORY_PASSPHRASE", "SIGNET_DELEGATION_PASSPHRASE":
			return testPass
		}
		return ""
	}}
}

// openRepo opens gun on server with trustDir; rt (nil for the default)
// reaches the server.
func openRepo(t *testing.T, gun, srv, trustDir string, rt http.RoundTripper) *Repo {
	t.Helper()
	r, err := Open(gun, Options{TrustDir: trustDir, Server: srv, Transport: rt, Passphrases: testPassphrases()})
	if err != nil {
		t.Fatalf("open %s: %v", gun, err)
	}
	return r
}

func randomTarget(t *testing.T, tag string) Target {
	t.Helper()
	sum := make([]byte, 32)
	if _, err := rand.Read(sum); err != nil {
		t.Fatal(err)
	}
	return Target{Tag: tag, SHA256: sum, Size: 1234}
}

// copyKeys makes a trust dir holding the key files of from (another CI
// machine with the same keys and no cached trust data).
func copyKeys(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(filepath.Join(from, "private"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(to, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, "private", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, "private", e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// signedTags lists the tags the server's trust data signs, read with a
// fresh trust dir.
func signedTags(t *testing.T, gun, srv string) []string {
	t.Helper()
	r := openRepo(t, gun, srv, t.TempDir(), nil)
	all, err := r.nr.ListTargets()
	if err != nil {
		t.Fatalf("list targets of %s: %v", gun, err)
	}
	var tags []string
	for _, tg := range all {
		tags = append(tags, tg.Name)
	}
	sort.Strings(tags)
	return tags
}

// TestConcurrentSignsAllSucceed: CI jobs signing different tags of one
// repository at the same time all succeed (the losers of each race fetch
// the new trust data and sign again), and every tag ends up signed.
func TestConcurrentSignsAllSucceed(t *testing.T) {
	srv := testservers.TrustServer(t)
	gun := "registry.example.com/team/race"
	admin := t.TempDir()
	ctx := context.Background()
	if _, err := openRepo(t, gun, srv, admin, nil).Sign(ctx, []Target{randomTarget(t, "base")}); err != nil {
		t.Fatalf("first sign: %v", err)
	}
	// Each job may lose a race only to another job's success, so n jobs
	// need at most n attempts.
	const jobs = 6
	if defaultRetry.attempts < jobs {
		t.Fatalf("retry policy allows %d attempts, fewer than the %d racing jobs", defaultRetry.attempts, jobs)
	}
	repos := make([]*Repo, jobs)
	targets := make([]Target, jobs)
	want := []string{"base"}
	var retries countHandler
	for i := range repos {
		repos[i] = openRepo(t, gun, srv, copyKeys(t, admin), nil)
		repos[i].log = slog.New(&retries)
		targets[i] = randomTarget(t, fmt.Sprintf("job%d", i))
		want = append(want, targets[i].Tag)
	}
	start := make(chan struct{})
	errs := make([]error, jobs)
	var wg sync.WaitGroup
	for i := range repos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = repos[i].Sign(ctx, []Target{targets[i]})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("job %d: %v", i, err)
		}
	}
	sort.Strings(want)
	if got := signedTags(t, gun, srv); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("signed tags %v, want %v", got, want)
	}
	t.Logf("%d jobs, %d retries after a conflict", jobs, retries.n.Load())
}

// countHandler counts log records.
type countHandler struct{ n atomic.Int64 }

func (h *countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h *countHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h *countHandler) WithGroup(string) slog.Handler             { return h }

// interferer is a transport that, before a POST (a publish) goes out,
// lets another publisher publish first, so the POST meets a version
// conflict at the real trust server.
type interferer struct {
	next   http.RoundTripper
	times  int // how many POSTs to interfere with
	other  func(n int) error
	mu     sync.Mutex
	posts  int
	others []error
}

func (f *interferer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost {
		f.mu.Lock()
		f.posts++
		n := f.posts
		f.mu.Unlock()
		if n <= f.times {
			f.others = append(f.others, f.other(n))
		}
	}
	return f.next.RoundTrip(req)
}

func TestSignAndRevokeRetryAfterConflict(t *testing.T) {
	srv := testservers.TrustServer(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		conflicts int // publishes by the other party, one before each POST
		attempts  int
		wantErr   []string // empty: success
		wantPosts int
	}{
		{name: "one conflict then success", conflicts: 1, attempts: 3, wantPosts: 2},
		{name: "conflicts every time", conflicts: 99, attempts: 3, wantPosts: 3,
			wantErr: []string{"answered 400 VERSION", "fetch the latest metadata and retry", "tried 3 times"}},
	}
	for i, tc := range tests {
		for _, op := range []string{"sign", "revoke"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				gun := fmt.Sprintf("registry.example.com/team/conflict%d-%s", i, op)
				admin := t.TempDir()
				if _, err := openRepo(t, gun, srv, admin, nil).Sign(ctx, []Target{randomTarget(t, "old")}); err != nil {
					t.Fatal(err)
				}
				other := openRepo(t, gun, srv, copyKeys(t, admin), nil)
				f := &interferer{next: http.DefaultTransport, times: tc.conflicts, other: func(n int) error {
					_, err := other.Sign(ctx, []Target{randomTarget(t, fmt.Sprintf("other%d", n))})
					return err
				}}
				r := openRepo(t, gun, srv, copyKeys(t, admin), f)
				r.retry = retryPolicy{attempts: tc.attempts}
				var err error
				want := map[string]bool{"old": true}
				if op == "sign" {
					_, err = r.Sign(ctx, []Target{randomTarget(t, "mine")})
					want["mine"] = true
				} else {
					_, err = r.Revoke(ctx, []string{"old"})
					delete(want, "old")
				}
				for _, oerr := range f.others {
					if oerr != nil {
						t.Fatalf("the other publisher failed: %v", oerr)
					}
				}
				if f.posts != tc.wantPosts {
					t.Errorf("%d publishes tried, want %d", f.posts, tc.wantPosts)
				}
				if len(tc.wantErr) > 0 {
					if err == nil || strings.Contains(err.Error(), "\n") {
						t.Fatalf("%s: %v, want one line with %q", op, err, tc.wantErr)
					}
					for _, w := range tc.wantErr {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("%s: %v, want %q", op, err, w)
						}
					}
					if !IsConflict(err) {
						t.Errorf("IsConflict(%v) = false", err)
					}
					t.Logf("%s: %v", op, err)
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				for n := 1; n <= min(tc.conflicts, f.posts); n++ {
					want[fmt.Sprintf("other%d", n)] = true
				}
				var wantTags []string
				for tag := range want {
					wantTags = append(wantTags, tag)
				}
				sort.Strings(wantTags)
				if got := signedTags(t, gun, srv); strings.Join(got, ",") != strings.Join(wantTags, ",") {
					t.Fatalf("signed tags %v, want %v", got, wantTags)
				}
			})
		}
	}
}

// TestServerMessageReachesError: the trust server's code and message
// reach the error, for a failed publish (500) and a refused read (403),
// where notary's client says only "unable to reach trust server at this
// time".
func TestServerMessageReachesError(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "trust.db")
	st, err := server.OpenStore(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(ctx, server.Options{Store: st, KeyPassphrase: testservers.Passphrase, GUNPrefixes: []string{"registry.example.com/"}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	gun := "registry.example.com/team/store"
	dir := t.TempDir()
	if _, err := openRepo(t, gun, hs.URL, dir, nil).Sign(ctx, []Target{randomTarget(t, "v1")}); err != nil {
		t.Fatal(err)
	}
	// The database refuses every later targets version, as a full disk
	// would: the server answers 500 UPDATING.
	db, err := sqlitedb.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON tuf_files WHEN NEW.role = 'targets' AND NEW.version > 1
		BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		gun  string
		want string
	}{
		{"failed store", gun, "answered 500 UPDATING: storing the update failed; retry later"},
		{"refused repository", "elsewhere.example.com/app", `answered 403 SIGNET_GUN_NOT_ALLOWED: repository "elsewhere.example.com/app" is not served here`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openRepo(t, tc.gun, hs.URL, dir, nil).Sign(ctx, []Target{randomTarget(t, "v2")})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("sign: %v\nwant one line with %q", err, tc.want)
			}
			if IsConflict(err) {
				t.Fatalf("IsConflict(%v) = true", err)
			}
			t.Logf("sign: %v", err)
		})
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		body, code, msg string
	}{
		{`{"errors":[{"code":"VERSION","message":"update is out of date","detail":{}}]}`, "VERSION", "update is out of date"},
		{`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":"token expired"}]}`, "UNAUTHORIZED", "authentication required: token expired"},
		{`{"errors":[{"code":"X","message":"two\nlines"}]}`, "X", "two lines"},
		{"upstream connect error", "", "upstream connect error"},
		{"<html><body>Bad Gateway</body></html>", "", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		code, msg := parseAnswer([]byte(tc.body))
		if code != tc.code || msg != tc.msg {
			t.Errorf("parseAnswer(%q) = %q, %q; want %q, %q", tc.body, code, msg, tc.code, tc.msg)
		}
	}
}

// TestSignLosesFirstPublishRace: two publishers with their own keys sign
// a new repository at once. The loser learns why it cannot sign, and its
// trust dir pins the winner's root (the one on the server), not the
// unpublished root it made.
func TestSignLosesFirstPublishRace(t *testing.T) {
	srv := testservers.TrustServer(t)
	ctx := context.Background()
	gun := "registry.example.com/team/newrace"
	winnerDir, loserDir := t.TempDir(), t.TempDir()
	winner := openRepo(t, gun, srv, winnerDir, nil)
	f := &interferer{next: http.DefaultTransport, times: 1, other: func(int) error {
		_, err := winner.Sign(ctx, []Target{randomTarget(t, "winner")})
		return err
	}}
	loser := openRepo(t, gun, srv, loserDir, f)
	_, err := loser.Sign(ctx, []Target{randomTarget(t, "loser")})
	if len(f.others) != 1 || f.others[0] != nil {
		t.Fatalf("the winner's sign: %v", f.others)
	}
	if err == nil || !strings.Contains(err.Error(), "another publisher created the trust data of "+gun+" at the same time") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("the loser's sign: %v", err)
	}
	t.Logf("loser: %v", err)
	want, err := os.ReadFile(filepath.Join(cacheDir(winnerDir, gun), "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(cacheDir(loserDir, gun), "root.json"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the loser's cached root is not the server's (%v)", err)
	}
	if got := signedTags(t, gun, srv); strings.Join(got, ",") != "winner" {
		t.Fatalf("signed tags %v, want [winner]", got)
	}
}
