//go:build sqlite_mattn

package trust

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/keys"
)

var writeSQLiteFixture = flag.Bool("write-sqlite-fixture", false,
	"write testdata/sqlite/mattn-v1.db and mattn-v1-trust (build with -tags sqlite_mattn)")

// TestWriteSQLiteFixture writes the fixture TestSQLiteFixtureFromMattn
// reads, with the real client and server over github.com/mattn/go-sqlite3:
//
//	go test -tags sqlite_mattn -run TestWriteSQLiteFixture ./trust/ -args -write-sqlite-fixture
func TestWriteSQLiteFixture(t *testing.T) {
	if !*writeSQLiteFixture {
		t.Skip("pass -write-sqlite-fixture to write the fixture")
	}
	ctx := context.Background()
	if err := os.Remove(fixtureDB); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.RemoveAll(fixtureTrustDir); err != nil {
		t.Fatal(err)
	}
	// Served from a temporary copy, then moved: the store's Close
	// checkpoints the WAL into the file.
	db := filepath.Join(t.TempDir(), "server.db")
	url, st := fixtureServer(t, db)
	trustDir := t.TempDir()

	app := openRepo(t, fixtureApp, url, trustDir, nil)
	for _, s := range fixtureSigned[fixtureApp][:2] {
		if _, err := app.Sign(ctx, []Target{s.target}); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := keys.Open(trustDir, testPassphrases())
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ks.Generate("targets/alice", "", "")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := app.PublicKey(alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openRepo(t, fixtureApp, url, trustDir, nil).AddSigner(ctx, "alice", []data.PublicKey{pub}); err != nil {
		t.Fatal(err)
	}
	if _, err := openRepo(t, fixtureApp, url, trustDir, nil).Sign(ctx, []Target{fixtureSigned[fixtureApp][2].target}); err != nil {
		t.Fatal(err)
	}
	if _, err := openRepo(t, fixtureTools, url, trustDir, nil).Sign(ctx, []Target{fixtureSigned[fixtureTools][0].target}); err != nil {
		t.Fatal(err)
	}
	for gun, signed := range fixtureSigned {
		for _, s := range signed {
			checkSigned(t, url, gun, s.target, s.role)
		}
	}

	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(db + suffix); err == nil {
			t.Fatalf("%s left after closing the store", filepath.Base(db+suffix))
		}
	}
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(fixtureDB), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fixtureDB, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// Only the key files: a reader starts with no cached trust data.
	copied := copyKeys(t, trustDir)
	if err := os.CopyFS(fixtureTrustDir, os.DirFS(copied)); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes) and %s", fixtureDB, len(raw), fixtureTrustDir)
}
