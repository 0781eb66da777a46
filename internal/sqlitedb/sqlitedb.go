// Package sqlitedb opens the trust server's SQLite database files through
// the database/sql driver this build links, with the settings the server
// relies on, and classifies that driver's errors.
//
// The default build links modernc.org/sqlite, SQLite translated to Go, so
// signet builds without cgo for every platform. The build tag sqlite_mattn
// links github.com/mattn/go-sqlite3 (cgo) instead, the driver signet used
// until 2026-12, and sqlite_ncruces github.com/ncruces/go-sqlite3 (SQLite
// compiled to WebAssembly, translated to Go): bench/sqlite.sh compares the
// three, and testdata/sqlite holds a database the mattn build wrote. Every
// driver reads and writes the same file format, and stores times as the
// same text (TimeLayout), so a database moves between builds unchanged.
package sqlitedb

import (
	"database/sql"
	"fmt"
	"time"
)

// BusyTimeout is how long a statement waits for a lock that another
// connection or process holds before it fails as busy (IsBusy).
const BusyTimeout = 10 * time.Second

// TimeLayout is how times are stored: as text, in the layout
// github.com/mattn/go-sqlite3 writes ("2026-12-02 04:11:38.5+00:00"), which
// SQLite's date functions read.
const TimeLayout = "2006-01-02 15:04:05.999999999-07:00"

// Open opens the SQLite database file at path, creating it if it does not
// exist. Every connection of the pool has:
//
//   - journal_mode=WAL: readers run beside one writer;
//   - synchronous=FULL: the WAL is synced at every commit, so a commit
//     survives a power loss;
//   - busy_timeout=BusyTimeout;
//   - transactions that begin IMMEDIATE: a transaction takes the write lock
//     at BEGIN, so writers queue on the busy timeout rather than fail when
//     they upgrade a read lock;
//   - foreign_keys off, SQLite's default (the schemas have none);
//   - times stored as TimeLayout text.
//
// Like sql.Open it only checks its arguments: the first use connects.
func Open(path string) (*sql.DB, error) {
	db, err := sql.Open(driverName, dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	return db, nil
}

// Driver names the SQLite driver of this build (its Go module).
const Driver = driverModule

// IsBusy reports whether err is SQLite refusing for a lock held elsewhere
// (SQLITE_BUSY or SQLITE_LOCKED, with any extended code).
func IsBusy(err error) bool {
	code, ok := errorCode(err)
	return ok && (code&0xff == codeBusy || code&0xff == codeLocked)
}

// IsUniqueViolation reports whether err is SQLite refusing a row whose
// unique key or primary key another row has
// (SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY).
func IsUniqueViolation(err error) bool {
	code, ok := errorCode(err)
	return ok && (code == codeConstraintUnique || code == codeConstraintPrimaryKey)
}

// SQLite's result codes (https://sqlite.org/rescode.html).
const (
	codeBusy                 = 5
	codeLocked               = 6
	codeConstraintUnique     = 19 | 8<<8 // 2067
	codeConstraintPrimaryKey = 19 | 6<<8 // 1555
)
