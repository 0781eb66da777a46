package trust

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/signet-project/signet/internal/sqlitedb"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/trust/server"
	"github.com/signet-project/signet/trust/verify"
)

// The SQLite fixture: a trust server database written by signet built
// with github.com/mattn/go-sqlite3 (cgo), the driver of every release
// before 2026-12, and the key files of the publisher who wrote it. See
// testdata/sqlite/README.md; sqlite_fixture_mattn_test.go writes it.
var (
	fixtureDB       = filepath.Join("..", "testdata", "sqlite", "mattn-v1.db")
	fixtureTrustDir = filepath.Join("..", "testdata", "sqlite", "mattn-v1-trust")
)

const (
	fixtureApp   = "registry.example.com/fixture/app"   // v1, v2 in targets; v3 by signer alice
	fixtureTools = "registry.example.com/fixture/tools" // latest in targets
)

// fixtureTarget is the target the fixture signs as gun:tag: its digest is
// the sha256 of that name, so a reader can check it.
func fixtureTarget(gun, tag string, size int64) Target {
	sum := sha256.Sum256([]byte("signet sqlite fixture " + gun + ":" + tag))
	return Target{Tag: tag, SHA256: sum[:], Size: size}
}

// fixtureSigned lists what the fixture signs, per repository: each tag's
// target and the role docker decides it by.
var fixtureSigned = map[string][]struct {
	target Target
	role   string
}{
	fixtureApp: {
		{fixtureTarget(fixtureApp, "v1", 1001), "targets"},
		{fixtureTarget(fixtureApp, "v2", 1002), "targets"},
		{fixtureTarget(fixtureApp, "v3", 1003), "targets/releases"},
	},
	fixtureTools: {
		{fixtureTarget(fixtureTools, "latest", 2001), "targets"},
	},
}

// fixtureServer serves a copy of the database at db, as `signet server`
// would after an upgrade, and returns its URL and store.
func fixtureServer(t *testing.T, db string) (string, *server.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := server.OpenStore(ctx, db)
	if err != nil {
		t.Fatalf("open the fixture database: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(ctx, server.Options{Store: st, KeyPassphrase: testservers.Passphrase})
	if err != nil {
		t.Fatalf("serve the fixture database: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs.URL, st
}

// checkSigned reads gun with a fresh trust dir through the engine and
// checks that tag resolves to want, decided by role.
func checkSigned(t *testing.T, url, gun string, want Target, role string) {
	t.Helper()
	res, err := Read(context.Background(), gun, ReadOptions{TrustDir: t.TempDir(), Server: url, AllDelegations: true})
	if err != nil {
		t.Fatalf("read %s: %v", gun, err)
	}
	got, by, err := res.Decide(gun, want.Tag, verify.Rule{})
	if err != nil {
		t.Fatalf("%s:%s: %v", gun, want.Tag, err)
	}
	if string(got.SHA256) != string(want.SHA256) || got.Length != want.Size || by != role {
		t.Errorf("%s:%s is sha256:%x (%d bytes) by %s, want sha256:%x (%d bytes) by %s",
			gun, want.Tag, got.SHA256, got.Length, by, want.SHA256, want.Size, role)
	}
}

// TestSQLiteFixtureFromMattn: a database written by the cgo driver of
// earlier releases opens with this build's driver through the normal
// store and server, serves what was signed (targets and a delegation),
// takes new publishes, and stores times as the earlier build did.
func TestSQLiteFixtureFromMattn(t *testing.T) {
	ctx := context.Background()
	raw, err := os.ReadFile(fixtureDB)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "server.db")
	if err := os.WriteFile(db, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	url, st := fixtureServer(t, db)
	t.Logf("SQLite driver: %s", sqlitedb.Driver)

	for gun, signed := range fixtureSigned {
		for _, s := range signed {
			checkSigned(t, url, gun, s.target, s.role)
		}
	}
	// The changefeed's times, written by the earlier build, read back.
	before, err := st.GetChanges("0", 1000, "")
	if err != nil {
		t.Fatalf("changefeed: %v", err)
	}
	if len(before) == 0 {
		t.Fatal("the fixture's changefeed is empty")
	}
	for _, c := range before {
		if c.CreatedAt.Year() < 2026 {
			t.Errorf("change %s of %s: created_at %v", c.ID, c.GUN, c.CreatedAt)
		}
	}

	// Publish with the fixture's keys: into targets/releases and
	// targets/alice with alice's key, into targets with the repository
	// key, and a new repository (new server keys in the old table).
	keys := copyKeys(t, fixtureTrustDir)
	updates := []struct {
		gun   string
		t     Target
		roles string
	}{
		{fixtureApp, fixtureTarget(fixtureApp, "v4", 1004), "[targets/alice targets/releases]"},
		{fixtureTools, fixtureTarget(fixtureTools, "v2", 2002), "[targets]"},
		{"registry.example.com/fixture/new", fixtureTarget("registry.example.com/fixture/new", "v1", 3001), "[targets]"},
	}
	for _, u := range updates {
		res, err := openRepo(t, u.gun, url, keys, nil).Sign(ctx, []Target{u.t})
		if err != nil {
			t.Fatalf("sign %s:%s on the fixture: %v", u.gun, u.t.Tag, err)
		}
		slices.Sort(res.Roles)
		if got := fmt.Sprint(res.Roles); got != u.roles {
			t.Errorf("%s:%s signed into %s, want %s", u.gun, u.t.Tag, got, u.roles)
		}
		role := "targets"
		if u.gun == fixtureApp {
			role = "targets/releases"
		}
		checkSigned(t, url, u.gun, u.t, role)
	}
	for gun, signed := range fixtureSigned {
		for _, s := range signed {
			checkSigned(t, url, gun, s.target, s.role)
		}
	}

	// Old and new rows hold times as the same text.
	after, err := st.GetChanges("0", 1000, "")
	if err != nil || len(after) <= len(before) {
		t.Fatalf("changefeed after the publishes: %d changes (%d before), %v", len(after), len(before), err)
	}
	sqlDB, err := sqlitedb.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	rows, err := sqlDB.QueryContext(ctx, `SELECT id, CAST(created_at AS TEXT) FROM changefeed UNION ALL SELECT id, CAST(created_at AS TEXT) FROM tuf_files`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	layout := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})?\+00:00$`)
	n := 0
	for rows.Next() {
		var id int
		var text string
		if err := rows.Scan(&id, &text); err != nil {
			t.Fatal(err)
		}
		if !layout.MatchString(text) {
			t.Errorf("row %d: created_at %q is not in the layout %s", id, text, sqlitedb.TimeLayout)
		}
		n++
	}
	if err := rows.Err(); err != nil || n == 0 {
		t.Fatalf("read times: %d rows, %v", n, err)
	}
}
