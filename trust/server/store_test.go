package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/internal/testlog"
)

// TestSQLiteCommitsAreDurable checks that every pooled SQLite connection
// syncs the WAL at each commit (synchronous=FULL): with NORMAL, a power
// loss may drop publishes the client was told succeeded.
func TestSQLiteCommitsAreDurable(t *testing.T) {
	ctx := context.Background()
	st, err := OpenStore(ctx, filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Hold several connections at once so the pool opens new ones.
	const conns = 4
	var held []interface{ Close() error }
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range conns {
		c, err := st.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		var sync int
		var mode string
		if err := c.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		// 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
		if sync != 2 || mode != "wal" {
			t.Fatalf("connection %d: synchronous=%d journal_mode=%s, want 2 (FULL) and wal", i, sync, mode)
		}
	}
}

// TestSQLiteFileModes checks that the database, which holds the encrypted
// server keys, and its -wal and -shm files are private to the server's
// user: new ones are made 0600, and an existing one open to others is
// narrowed to 0600 with a warning naming it.
func TestSQLiteFileModes(t *testing.T) {
	tests := []struct {
		name     string
		before   func(t *testing.T, path string) // prepares the folder
		wantWarn bool
	}{
		{"new database", func(*testing.T, string) {}, false},
		{"--db outside the data dir, existing file 0644", func(t *testing.T, path string) {
			// An earlier version created it 0644; it is reopened.
			st, err := OpenStore(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"empty file 0666 made by an operator", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o666); err != nil { // past the umask
				t.Fatal(err)
			}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "shared", "server.db")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.before(t, path)
			logs := &testlog.Buffer{}
			ts, _ := startServer(t, path, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			// A publish creates server keys and leaves -wal and -shm open.
			const gun = "registry.example.com/team/app"
			p := newPublisher(t, ts.URL, gun)
			mustPost(t, ts.URL, gun, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != 0o600 {
					t.Errorf("%s is %v, want -rw-------", filepath.Base(f), got)
				}
			}
			warned := strings.Contains(logs.String(), "made it 0600") && strings.Contains(logs.String(), path)
			if warned != tc.wantWarn {
				t.Errorf("warning logged = %v, want %v; logs:\n%s", warned, tc.wantWarn, logs)
			}
		})
	}
}

// TestKeyPassphraseGeneratedOnce races replicas to generate the key
// passphrase of a new data dir: all get the one that ends up in the file,
// which is whole and 0600.
func TestKeyPassphraseGeneratedOnce(t *testing.T) {
	const rounds, replicas = 10, 4
	for round := range rounds {
		dir := filepath.Join(t.TempDir(), "data")
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			got   = make([]string, replicas)
			errs  = make([]error, replicas)
		)
		for i := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i], _, errs[i] = KeyPassphrase("", "", dir)
			}()
		}
		close(start)
		wg.Wait()
		b, err := os.ReadFile(filepath.Join(dir, "server-key-passphrase"))
		if err != nil {
			t.Fatal(err)
		}
		inFile := strings.TrimSpace(string(b))
		for i := range replicas {
			if errs[i] != nil || got[i] != inFile || len(inFile) < MinKeyPassphraseLen {
				t.Fatalf("round %d, replica %d: passphrase %q, %v; file holds %q", round, i, got[i], errs[i], inFile)
			}
		}
		fi, err := os.Stat(filepath.Join(dir, "server-key-passphrase"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("passphrase file mode %v, %v; want 0600", fi.Mode().Perm(), err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("data dir holds %d files, want only the passphrase file: %v", len(entries), names(entries))
		}
	}
}

func names(entries []fs.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestStoreClassifiesDatabaseErrors: the store tells a lost race (a row
// whose unique or primary key is taken) and a lock held by another
// process apart from other failures, with the SQLite driver this build
// links and with PostgreSQL; and adding a server key that is already
// stored succeeds, as replicas racing to store one rely on.
func TestStoreClassifiesDatabaseErrors(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := dsn(t)
			st, err := OpenStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			exec := func(q string, args ...any) error {
				_, err := st.db.ExecContext(ctx, q, args...)
				return err
			}
			now := time.Now().UTC()
			const file = `INSERT INTO tuf_files (gun, role, version, data) VALUES ($1, $2, $3, $4)`
			const key = `INSERT INTO signet_server_keys (key_id, gun, role, encrypted_pem, created_at) VALUES ($1, $2, $3, $4, $5)`
			if err := exec(file, "g", "targets", 1, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := exec(key, "k", "g", "timestamp", []byte("x"), now); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name   string
				err    error
				unique bool
			}{
				{"same gun, role and version", exec(file, "g", "targets", 1, []byte("y")), true},
				{"same key ID", exec(key, "k", "g", "snapshot", []byte("y"), now), true},
				{"missing data", exec(`INSERT INTO tuf_files (gun, role, version) VALUES ('g', 'targets', 2)`), false},
			}
			for _, tc := range tests {
				if tc.err == nil {
					t.Fatalf("%s: stored", tc.name)
				}
				wrapped := fmt.Errorf("store: %w", tc.err)
				if isUniqueViolation(wrapped) != tc.unique || isBusy(wrapped) {
					t.Errorf("%s: %v: isUniqueViolation = %v, isBusy = %v; want %v, false", tc.name, tc.err, isUniqueViolation(wrapped), isBusy(wrapped), tc.unique)
				}
			}

			// The key store decrypts a stored key at start: drop the fake.
			if err := exec(`DELETE FROM signet_server_keys WHERE key_id = 'k'`); err != nil {
				t.Fatal(err)
			}
			ks, err := newKeyStore(ctx, st, testPassphrase)
			if err != nil {
				t.Fatal(err)
			}
			priv, err := utils.GenerateECDSAKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			info := trustmanager.KeyInfo{Gun: "g", Role: data.CanonicalTimestampRole}
			for i := range 2 {
				if err := ks.AddKey(info, priv); err != nil {
					t.Fatalf("AddKey %d of a key: %v", i+1, err)
				}
			}

			if st.Dialect() != SQLite {
				return
			}
			// Another process holds the write lock, and this connection
			// does not wait for it.
			other, err := OpenStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			holder, err := other.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback()
			c, err := st.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.ExecContext(ctx, `PRAGMA busy_timeout = 0`); err != nil {
				t.Fatal(err)
			}
			tx, err := c.BeginTx(ctx, nil)
			if err == nil {
				tx.Rollback()
				t.Fatal("began a transaction while another process holds the write lock")
			}
			if !isBusy(fmt.Errorf("begin: %w", err)) || isUniqueViolation(err) {
				t.Errorf("%v: isBusy = %v, isUniqueViolation = %v; want true, false", err, isBusy(err), isUniqueViolation(err))
			}
		})
	}
}
