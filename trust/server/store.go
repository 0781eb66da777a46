package server

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"
	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"
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
// served, plus signet's own table of server-managed keys. It implements
// notary's storage.MetaStore over database/sql; unlike notary's
// SQLStorage it inserts rows plainly inside one transaction, so two
// publishes that race for one version cannot both succeed: the database's
// unique key (gun, role, version) refuses the loser.
type Store struct {
	db      *sql.DB
	dialect Dialect
	now     func() time.Time
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
		// _txlock=immediate takes the write lock at BEGIN so the busy
		// timeout applies; WAL lets readers run beside one writer.
		db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate&_synchronous=NORMAL")
		if err != nil {
			return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
		}
		s.db, s.dialect = db, SQLite
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// Dialect reports which database the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

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
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create %s schema: %w", s.dialect, err)
		}
	}
	return nil
}

// isUniqueViolation reports whether err is the database refusing a
// duplicate (gun, role, version) or key ID.
func isUniqueViolation(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "23505"
	}
	var sqErr sqlite3.Error
	if errors.As(err, &sqErr) {
		return sqErr.ExtendedCode == sqlite3.ErrConstraintUnique || sqErr.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	return false
}

// UpdateCurrent stores one new version of a role.
func (s *Store) UpdateCurrent(gun data.GUN, update storage.MetaUpdate) error {
	return s.UpdateMany(gun, []storage.MetaUpdate{update})
}

// UpdateMany stores all updates in one transaction, or none of them. Each
// must be newer than every stored version of its role; otherwise, or if a
// concurrent writer won the same version, it returns storage.ErrOldVersion.
func (s *Store) UpdateMany(gun data.GUN, updates []storage.MetaUpdate) error {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin update of %q: %w", gun, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
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
