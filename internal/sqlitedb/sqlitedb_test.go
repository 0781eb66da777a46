package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSettingsApplied reads back, on several pooled connections at once,
// the PRAGMAs Open promises: each driver spells them differently in its
// DSN, and a misspelt parameter may be silently ignored.
func TestSettingsApplied(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "a.db"))
	for i := range 3 {
		c, err := db.Conn(ctx) // held, so the pool opens a new one
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var mode string
		var sync, busy, fk int
		for _, p := range []struct {
			pragma string
			dst    any
		}{{"journal_mode", &mode}, {"synchronous", &sync}, {"busy_timeout", &busy}, {"foreign_keys", &fk}} {
			if err := c.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.dst); err != nil {
				t.Fatalf("PRAGMA %s: %v", p.pragma, err)
			}
		}
		// synchronous 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
		if mode != "wal" || sync != 2 || busy != int(BusyTimeout.Milliseconds()) || fk != 0 {
			t.Errorf("connection %d (%s): journal_mode=%s synchronous=%d busy_timeout=%d foreign_keys=%d, want wal 2 %d 0",
				i, Driver, mode, sync, busy, fk, BusyTimeout.Milliseconds())
		}
	}
}

// TestTransactionsBeginImmediate: a transaction holds the write lock from
// BEGIN, so a second one waits at BEGIN until the first ends (with
// deferred transactions both would begin, and the second writer would
// fail on its first write instead of waiting).
func TestTransactionsBeginImmediate(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "a.db"))
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (x integer)`); err != nil {
		t.Fatal(err)
	}
	first, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback()
	begun := make(chan error, 1)
	go func() {
		second, err := db.BeginTx(ctx, nil)
		if err == nil {
			_, err = second.ExecContext(ctx, `INSERT INTO t VALUES (2)`)
			if err == nil {
				err = second.Commit()
			}
		}
		begun <- err
	}()
	select {
	case err := <-begun:
		t.Fatalf("a second transaction began beside the first (%v): transactions are not IMMEDIATE", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := first.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-begun; err != nil {
		t.Fatalf("second transaction after the first committed: %v", err)
	}
}

// TestErrorsClassified makes the driver's real errors and checks what
// IsBusy and IsUniqueViolation say of each: the store retries on the
// first and reports a lost race on the second.
func TestErrorsClassified(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	db := open(t, path)
	for _, q := range []string{
		`CREATE TABLE files (id integer PRIMARY KEY AUTOINCREMENT, gun varchar(255) NOT NULL, version integer NOT NULL, UNIQUE (gun, version))`,
		`CREATE TABLE keys (key_id varchar(255) PRIMARY KEY, role varchar(255) NOT NULL)`,
		`INSERT INTO files (gun, version) VALUES ('a', 1)`,
		`INSERT INTO keys (key_id, role) VALUES ('k', 'timestamp')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	// Another process holds the write lock; this connection does not wait.
	other := open(t, path)
	holder, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `PRAGMA busy_timeout = 0`); err != nil {
		t.Fatal(err)
	}
	tx, busyErr := c.BeginTx(ctx, nil)
	if busyErr == nil {
		tx.Rollback()
		t.Fatal("BEGIN while another connection holds the write lock succeeded")
	}
	holder.Rollback()

	tests := []struct {
		name         string
		err          error
		busy, unique bool
	}{
		{"locked", busyErr, true, false},
		{"duplicate unique key", exec(db, `INSERT INTO files (gun, version) VALUES ('a', 1)`), false, true},
		{"duplicate primary key", exec(db, `INSERT INTO keys (key_id, role) VALUES ('k', 'snapshot')`), false, true},
		{"duplicate integer primary key", exec(db, `INSERT INTO files (id, gun, version) VALUES (1, 'b', 1)`), false, true},
		{"not null", exec(db, `INSERT INTO files (gun) VALUES ('c')`), false, false},
		{"syntax", exec(db, `INSERT INTO nowhere VALUES (1)`), false, false},
		{"other error", errors.New("database is locked"), false, false},
		{"nil", nil, false, false},
	}
	for _, tc := range tests {
		if tc.err == nil && tc.name != "nil" {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		wrapped := tc.err
		if wrapped != nil {
			wrapped = errors.Join(errors.New("store update"), tc.err)
		}
		if got := IsBusy(wrapped); got != tc.busy {
			t.Errorf("%s: IsBusy(%v) = %v, want %v", tc.name, tc.err, got, tc.busy)
		}
		if got := IsUniqueViolation(wrapped); got != tc.unique {
			t.Errorf("%s: IsUniqueViolation(%v) = %v, want %v", tc.name, tc.err, got, tc.unique)
		}
	}
}

func exec(db *sql.DB, q string) error {
	_, err := db.Exec(q)
	return err
}

// TestTimesStoredAsText: a time is written as TimeLayout text, as every
// build writes it, and reads back as the same instant, also from a row
// another build wrote.
func TestTimesStoredAsText(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "a.db"))
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id integer PRIMARY KEY, at datetime NULL)`); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 4, 11, 38, 123456789, time.UTC)
	if _, err := db.ExecContext(ctx, `INSERT INTO t (id, at) VALUES (1, $1)`, at); err != nil {
		t.Fatal(err)
	}
	// As github.com/mattn/go-sqlite3 wrote it, whole seconds.
	if _, err := db.ExecContext(ctx, `INSERT INTO t (id, at) VALUES (2, '2026-11-30 23:59:59+00:00')`); err != nil {
		t.Fatal(err)
	}
	var text, typ string
	if err := db.QueryRowContext(ctx, `SELECT CAST(at AS TEXT), typeof(at) FROM t WHERE id = 1`).Scan(&text, &typ); err != nil {
		t.Fatal(err)
	}
	if want := "2026-12-02 04:11:38.123456789+00:00"; text != want || typ != "text" {
		t.Errorf("stored %s %q, want text %q", typ, text, want)
	}
	for id, want := range map[int]time.Time{1: at, 2: time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC)} {
		var got sql.NullTime
		if err := db.QueryRowContext(ctx, `SELECT at FROM t WHERE id = $1`, id).Scan(&got); err != nil {
			t.Fatalf("row %d: %v", id, err)
		}
		if !got.Valid || !got.Time.Equal(want) {
			t.Errorf("row %d: read %v, want %v", id, got.Time, want)
		}
	}
}
