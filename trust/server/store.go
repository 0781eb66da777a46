package server

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/sqlitedb"
)

// Dialect names the SQL database behind a Store.
type Dialect string

// Supported dialects.
const (
	SQLite   Dialect = "sqlite3"
	Postgres Dialect = "postgres"
)

// Store keeps TUF metadata in the same tables notary-server uses
// (tuf_files, changefeed), so an existing notary-server database can be
// served, plus signet's own tables of server-managed keys and of change
// counters per repository (changecount.go), which a trigger on tuf_files
// keeps. It implements
// notary's storage.MetaStore over database/sql; unlike notary's
// SQLStorage it inserts rows plainly inside one transaction, so two
// publishes that race for one version cannot both succeed: the database's
// unique key (gun, role, version) refuses the loser.
type Store struct {
	db      *sql.DB
	dialect Dialect
	now     func() time.Time
	// readChanges reads a repository's change counter (changecount.go),
	// prepared once: it runs on every metadata read.
	readChanges *sql.Stmt
	// tightened lists the SQLite files whose mode OpenStore narrowed to
	// 0600; New logs them.
	tightened []modeChange
}

var _ storage.MetaStore = (*Store)(nil)

// OpenStore opens (and creates the schema of) the database named by dsn:
// a postgres:// or postgresql:// URL for PostgreSQL, anything else is a
// path to an SQLite file (an optional sqlite:// prefix is accepted).
func OpenStore(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{now: time.Now}
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres database: %w", err)
		}
		db.SetMaxOpenConns(20)
		s.db, s.dialect = db, Postgres
	default:
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return nil, errors.New("open sqlite database: empty path: pass --db FILE or --data-dir DIR")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create database folder %q: %w", filepath.Dir(path), err)
		}
		tightened, err := privateSQLiteFiles(path)
		if err != nil {
			return nil, err
		}
		s.tightened = tightened
		// Transactions take the write lock at BEGIN (IMMEDIATE) so the
		// busy timeout applies; WAL lets readers run beside one writer;
		// synchronous=FULL syncs the WAL at every commit, so a publish the
		// client was told succeeded survives a power loss (NORMAL may
		// lose the last commits). See sqlitedb.Open.
		db, err := sqlitedb.Open(path)
		if err != nil {
			return nil, err
		}
		s.db, s.dialect = db, SQLite
	}
	if err := s.connect(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	stmt, err := s.db.PrepareContext(ctx, readChangesQuery)
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("prepare change counter read on %s database: %w", s.dialect, err)
	}
	s.readChanges = stmt
	return s, nil
}

// sqliteBusyWait is how long connecting waits for other processes that
// hold an SQLite database locked, as the busy timeout does for statements.
const sqliteBusyWait = sqlitedb.BusyTimeout

// connect opens a first connection. Opening an SQLite connection switches
// the database to WAL mode, which needs the database to itself: a replica
// starting beside another is told "database is locked" at once, without
// the busy timeout, so it tries again for up to sqliteBusyWait.
func (s *Store) connect(ctx context.Context) error {
	deadline := time.Now().Add(sqliteBusyWait)
	wait := 5 * time.Millisecond
	for {
		err := s.db.PingContext(ctx)
		if err == nil || s.dialect != SQLite || !isBusy(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: another process kept it locked for %v; stop that process or try again", err, sqliteBusyWait)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite refusing for a lock held elsewhere.
func isBusy(err error) bool { return sqlitedb.IsBusy(err) }

// Dialect reports which database the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the database.
func (s *Store) Close() error {
	s.readChanges.Close() //nolint:errcheck // closing the database reports what matters
	return s.db.Close()
}

// CheckHealth pings the database.
func (s *Store) CheckHealth(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM tuf_files WHERE id < 0").Scan(&n); err != nil {
		return fmt.Errorf("query %s database: %w", s.dialect, err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	var stmts []string
	switch s.dialect {
	case Postgres:
		stmts = []string{
			`CREATE TABLE IF NOT EXISTS tuf_files (
				id serial PRIMARY KEY,
				created_at timestamp NULL DEFAULT NULL,
				updated_at timestamp NULL DEFAULT NULL,
				deleted_at timestamp NULL DEFAULT NULL,
				gun varchar(255) NOT NULL,
				role varchar(255) NOT NULL,
				version integer NOT NULL,
				data bytea NOT NULL,
				sha256 char(64) DEFAULT NULL,
				UNIQUE (gun, role, version))`,
			`CREATE INDEX IF NOT EXISTS tuf_files_sha256_idx ON tuf_files(sha256)`,
			`CREATE TABLE IF NOT EXISTS changefeed (
				id serial PRIMARY KEY,
				created_at timestamp DEFAULT CURRENT_TIMESTAMP,
				gun varchar(255) NOT NULL,
				version integer NOT NULL,
				sha256 char(64) DEFAULT NULL,
				category varchar(20) NOT NULL DEFAULT 'update')`,
			`CREATE INDEX IF NOT EXISTS idx_changefeed_gun ON changefeed (gun)`,
			`CREATE TABLE IF NOT EXISTS signet_server_keys (
				key_id varchar(255) PRIMARY KEY,
				gun varchar(255) NOT NULL,
				role varchar(255) NOT NULL,
				encrypted_pem bytea NOT NULL,
				created_at timestamp NOT NULL)`,
		}
	default:
		stmts = []string{
			`CREATE TABLE IF NOT EXISTS tuf_files (
				id integer PRIMARY KEY AUTOINCREMENT,
				created_at datetime NULL,
				updated_at datetime NULL,
				deleted_at datetime NULL,
				gun varchar(255) NOT NULL,
				role varchar(255) NOT NULL,
				version integer NOT NULL,
				data blob NOT NULL,
				sha256 varchar(64) NULL,
				UNIQUE (gun, role, version))`,
			`CREATE INDEX IF NOT EXISTS tuf_files_sha256_idx ON tuf_files(sha256)`,
			`CREATE TABLE IF NOT EXISTS changefeed (
				id integer PRIMARY KEY AUTOINCREMENT,
				created_at datetime NULL,
				gun varchar(255) NOT NULL,
				version integer NOT NULL,
				sha256 varchar(64) NULL,
				category varchar(20) NOT NULL DEFAULT 'update')`,
			`CREATE INDEX IF NOT EXISTS idx_changefeed_gun ON changefeed (gun)`,
			`CREATE TABLE IF NOT EXISTS signet_server_keys (
				key_id varchar(255) PRIMARY KEY,
				gun varchar(255) NOT NULL,
				role varchar(255) NOT NULL,
				encrypted_pem blob NOT NULL,
				created_at datetime NOT NULL)`,
		}
	}
	stmts = append(stmts, changeSchema(s.dialect)...)
	// Replicas started together on a new database all create the schema:
	// one transaction under a lock (SQLite's write lock, taken at BEGIN;
	// a PostgreSQL advisory lock, as DDL there is transactional too), so
	// each waits for the one before and then finds the tables made.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create %s schema: begin: %w", s.dialect, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := s.lock(ctx, tx, schemaLockKey); err != nil {
		return fmt.Errorf("create %s schema: %w", s.dialect, err)
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create %s schema: %w", s.dialect, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create %s schema: commit: %w", s.dialect, err)
	}
	return nil
}

// schemaLockKey is the PostgreSQL advisory lock held while the schema is
// created or migrated ("signet" in ASCII).
const schemaLockKey int64 = 0x7369676e6574

// lock takes a lock named by key until tx ends. On PostgreSQL it is a
// transaction-scoped advisory lock; on SQLite the transaction already
// holds the database's write lock (BEGIN IMMEDIATE), which serialises
// every writer.
func (s *Store) lock(ctx context.Context, tx *sql.Tx, key int64) error {
	if s.dialect != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, key); err != nil {
		return fmt.Errorf("take advisory lock %d: %w", key, err)
	}
	return nil
}

// lockKey names the advisory lock of one thing, such as the server key of
// a repository and role, by a 64-bit hash of its parts.
func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		io.WriteString(h, p) //nolint:errcheck // hash writes never fail
		h.Write([]byte{0})   //nolint:errcheck
	}
	return int64(h.Sum64())
}

// modeChange records a file whose permissions were narrowed.
type modeChange struct {
	path string
	was  fs.FileMode
}

// privateSQLiteFiles makes the SQLite database at path private to the
// server's user, since it holds the encrypted server keys: it creates the
// file 0600 if it does not exist (SQLite would create it 0644, less the
// umask), and narrows an existing database, -wal or -shm file readable
// or writable by others to 0600. SQLite gives new -wal and -shm files the
// database file's mode. It returns the files it narrowed.
func privateSQLiteFiles(path string) ([]modeChange, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	var changed []modeChange
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("check mode of database file %q: %w", p, err)
		}
		if fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, 0o600); err != nil {
			return nil, fmt.Errorf("database file %q is %v, open to other users, and cannot be made 0600 (run chmod 600 on it as its owner): %w", p, fi.Mode().Perm(), err)
		}
		changed = append(changed, modeChange{path: p, was: fi.Mode().Perm()})
	}
	return changed, nil
}

// isUniqueViolation reports whether err is the database refusing a
// duplicate (gun, role, version) or key ID.
func isUniqueViolation(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "23505"
	}
	return sqlitedb.IsUniqueViolation(err)
}

// UpdateCurrent stores one new version of a role.
func (s *Store) UpdateCurrent(gun data.GUN, update storage.MetaUpdate) error {
	return s.UpdateMany(gun, []storage.MetaUpdate{update})
}

// UpdateMany stores all updates in one transaction, or none of them, and
// counts a change of gun (changecount.go). Each
// must be newer than every stored version of its role; otherwise, or if a
// concurrent writer won the same version, it returns storage.ErrOldVersion.
func (s *Store) UpdateMany(gun data.GUN, updates []storage.MetaUpdate) error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin update of %q: %w", gun, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := countChange(ctx, tx, gun.String()); err != nil {
		return err
	}
	now := s.now().UTC()
	for _, u := range updates {
		var newer int
		err := tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM tuf_files WHERE gun = $1 AND role = $2 AND version >= $3`,
			gun.String(), u.Role.String(), u.Version).Scan(&newer)
		if err != nil {
			return fmt.Errorf("check version of %s %q: %w", u.Role, gun, err)
		}
		if newer > 0 {
			return storage.ErrOldVersion{}
		}
		sum := sha256.Sum256(u.Data)
		hexSum := hex.EncodeToString(sum[:])
		_, err = tx.ExecContext(ctx,
			`INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			now, now, gun.String(), u.Role.String(), u.Version, u.Data, hexSum)
		if err != nil {
			if isUniqueViolation(err) {
				return storage.ErrOldVersion{}
			}
			return fmt.Errorf("store %s version %d of %q: %w", u.Role, u.Version, gun, err)
		}
		if u.Role == data.CanonicalTimestampRole {
			_, err = tx.ExecContext(ctx,
				`INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, $3, $4, 'update')`,
				now, gun.String(), u.Version, hexSum)
			if err != nil {
				return fmt.Errorf("record change of %q: %w", gun, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		if isUniqueViolation(err) {
			return storage.ErrOldVersion{}
		}
		return fmt.Errorf("commit update of %q: %w", gun, err)
	}
	return nil
}

func (s *Store) getOne(query string, args ...any) (*time.Time, []byte, error) {
	var (
		t   sql.NullTime
		out []byte
	)
	err := s.db.QueryRow(query, args...).Scan(&t, &out)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, storage.ErrNotFound{}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read metadata: %w", err)
	}
	if !t.Valid {
		return nil, out, nil
	}
	return &t.Time, out, nil
}

// GetCurrent returns the newest version of a role.
func (s *Store) GetCurrent(gun data.GUN, role data.RoleName) (*time.Time, []byte, error) {
	return s.getOne(`SELECT updated_at, data FROM tuf_files WHERE gun = $1 AND role = $2 AND deleted_at IS NULL ORDER BY version DESC LIMIT 1`,
		gun.String(), role.String())
}

// GetChecksum returns the version of a role whose bytes have this sha256.
func (s *Store) GetChecksum(gun data.GUN, role data.RoleName, checksum string) (*time.Time, []byte, error) {
	return s.getOne(`SELECT created_at, data FROM tuf_files WHERE gun = $1 AND role = $2 AND sha256 = $3 AND deleted_at IS NULL LIMIT 1`,
		gun.String(), role.String(), strings.ToLower(checksum))
}

// GetVersion returns one version of a role.
func (s *Store) GetVersion(gun data.GUN, role data.RoleName, version int) (*time.Time, []byte, error) {
	return s.getOne(`SELECT created_at, data FROM tuf_files WHERE gun = $1 AND role = $2 AND version = $3 AND deleted_at IS NULL`,
		gun.String(), role.String(), version)
}

// Delete removes all metadata of a GUN and records the deletion in the
// changefeed if there was any.
func (s *Store) Delete(gun data.GUN) error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin delete of %q: %w", gun, err)
	}
	defer tx.Rollback() //nolint:errcheck
	if err := countChange(ctx, tx, gun.String()); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM tuf_files WHERE gun = $1`, gun.String())
	if err != nil {
		return fmt.Errorf("delete metadata of %q: %w", gun, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO changefeed (created_at, gun, version, category) VALUES ($1, $2, 0, 'deletion')`,
			s.now().UTC(), gun.String()); err != nil {
			return fmt.Errorf("record deletion of %q: %w", gun, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit delete of %q: %w", gun, err)
	}
	return nil
}

// GetChanges implements the changefeed as notary-server does: changes after
// changeID (0 or "" from the start, -1 from the newest backwards), at most
// records of them (negative: the ones before changeID), oldest first.
func (s *Store) GetChanges(changeID string, records int, filterName string) ([]storage.Change, error) {
	var id int64
	if changeID != "" {
		var err error
		id, err = strconv.ParseInt(changeID, 10, 32)
		if err != nil {
			return nil, storage.ErrBadQuery{}
		}
	}
	reversed := id < 0
	if records < 0 {
		reversed = true
		records = -records
	}
	q := `SELECT id, created_at, gun, version, COALESCE(sha256, ''), category FROM changefeed WHERE 1 = 1`
	var args []any
	if filterName != "" {
		args = append(args, filterName)
		q += fmt.Sprintf(" AND gun = $%d", len(args))
	}
	if reversed {
		if id > 0 {
			args = append(args, id)
			q += fmt.Sprintf(" AND id < $%d", len(args))
		}
		q += " ORDER BY id DESC"
	} else {
		args = append(args, id)
		q += fmt.Sprintf(" AND id > $%d ORDER BY id ASC", len(args))
	}
	args = append(args, records)
	q += fmt.Sprintf(" LIMIT $%d", len(args))
	rows, err := s.db.Query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("read changefeed: %w", err)
	}
	defer rows.Close()
	changes := []storage.Change{}
	for rows.Next() {
		var (
			c       storage.Change
			rowID   int64
			created sql.NullTime
		)
		if err := rows.Scan(&rowID, &created, &c.GUN, &c.Version, &c.SHA256, &c.Category); err != nil {
			return nil, fmt.Errorf("read changefeed row: %w", err)
		}
		c.ID = strconv.FormatInt(rowID, 10)
		c.CreatedAt = created.Time
		c.SHA256 = strings.TrimSpace(c.SHA256)
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read changefeed: %w", err)
	}
	if reversed {
		for i, j := 0, len(changes)-1; i < j; i, j = i+1, j-1 {
			changes[i], changes[j] = changes[j], changes[i]
		}
	}
	return changes, nil
}
