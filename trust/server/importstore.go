package server

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"
)

// importConflictError is an import the stored trust data contradicts:
// other bytes for a role and version, or newer data under an older
// timestamp.
type importConflictError struct{ msg string }

func (e *importConflictError) Error() string { return e.msg }

// replaceHint ends a conflict of diverged data with the way out.
const replaceHint = "to replace the server's copy, delete the repository's trust data here (DELETE /v2/<gun>/_trust/tuf/) and import again"

func importConflict(format string, args ...any) error {
	return &importConflictError{msg: fmt.Sprintf(format, args...)}
}

// importReport says what became of each imported file.
type importReport struct {
	stored, unchanged, skipped []roleVersion
}

// heldFiles is the sha256 of every stored (role, version) of a GUN.
type heldFiles map[data.RoleName]map[int]string

func (h heldFiles) newest(role data.RoleName) int {
	n := 0
	for v := range h[role] {
		n = max(n, v)
	}
	return n
}

// importPlan decides, from what the server holds, what to do with each
// imported file (files are verified and sorted):
//   - the same bytes are held at that role and version: unchanged;
//   - the server holds a newer root or timestamp than the import (the
//     repository was taken over, or a later import ran): skipped, since
//     an older set must never be mixed into a newer one; for root, any
//     version older than the server's current root is skipped too, as
//     the import was verified from that root onwards;
//   - other bytes at that role and version: a conflict;
//   - a newer version of a role under an older timestamp: the data has
//     diverged, a conflict;
//   - otherwise: stored.
func importPlan(held heldFiles, files []storage.MetaUpdate, anchor rootRef) (insert []storage.MetaUpdate, rep importReport, err error) {
	importedRoot, importedTS := 0, 0
	for _, f := range files {
		switch f.Role {
		case data.CanonicalRootRole:
			importedRoot = max(importedRoot, f.Version)
		case data.CanonicalTimestampRole:
			importedTS = f.Version
		}
	}
	heldRoot := held.newest(data.CanonicalRootRole)
	// The chain was verified from the root the server held before this
	// transaction (or from the import's own oldest root); another replica
	// may have stored or deleted roots since.
	if anchor.version > 0 && held[data.CanonicalRootRole][anchor.version] != anchor.sum ||
		heldRoot > anchor.version && heldRoot <= importedRoot && !hasVersion(files, data.CanonicalRootRole, heldRoot) {
		return nil, rep, importConflict("the server's root changed during the import: retry the import")
	}
	superseded := heldRoot > importedRoot || held.newest(data.CanonicalTimestampRole) > importedTS
	for _, f := range files {
		rv := roleVersion{Role: f.Role.String(), Version: f.Version}
		sum := sha256.Sum256(f.Data)
		heldSum, ok := held[f.Role][f.Version]
		switch {
		case ok && heldSum == hex.EncodeToString(sum[:]):
			rep.unchanged = append(rep.unchanged, rv)
		case superseded && f.Role != data.CanonicalRootRole,
			!ok && f.Role == data.CanonicalRootRole && f.Version < heldRoot,
			!ok && superseded:
			rv.Reason = reasonDestinationNewer
			rep.skipped = append(rep.skipped, rv)
		case ok:
			return nil, rep, importConflict("%s version %d differs from the one the server holds: the trust data has diverged; %s", f.Role, f.Version, replaceHint)
		case held.newest(f.Role) > f.Version:
			return nil, rep, importConflict("the server holds %s version %d, newer than the imported version %d, under an older timestamp: the trust data has diverged; %s", f.Role, held.newest(f.Role), f.Version, replaceHint)
		default:
			insert = append(insert, f)
			rep.stored = append(rep.stored, rv)
		}
	}
	return insert, rep, nil
}

func hasVersion(files []storage.MetaUpdate, role data.RoleName, version int) bool {
	for _, f := range files {
		if f.Role == role && f.Version == version {
			return true
		}
	}
	return false
}

// rootRef names the stored root an import was verified from; the zero
// value means the import's own oldest root.
type rootRef struct {
	version int
	sum     string
}

// importFiles stores verified imported files in one transaction, as
// importPlan decides, with a changefeed entry if anything was stored. On
// PostgreSQL the transaction holds an advisory lock per GUN, so imports
// of one repository through several replicas run one after the other (on
// SQLite the write lock taken at BEGIN does the same); a publish racing
// it through another replica loses on the unique key, or makes this
// import a conflict to retry.
func (s *Store) importFiles(ctx context.Context, gun data.GUN, files []storage.MetaUpdate, anchor rootRef) (*importReport, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin import of %q: %w", gun, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := s.lock(ctx, tx, lockKey("tuf_files", gun.String())); err != nil {
		return nil, fmt.Errorf("import %q: %w", gun, err)
	}
	if err := countChange(ctx, tx, gun.String()); err != nil {
		return nil, err
	}
	held, err := readHeld(ctx, tx, gun)
	if err != nil {
		return nil, err
	}
	insert, rep, err := importPlan(held, files, anchor)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	for _, u := range insert {
		sum := sha256.Sum256(u.Data)
		_, err := tx.ExecContext(ctx,
			`INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			now, now, gun.String(), u.Role.String(), u.Version, u.Data, hex.EncodeToString(sum[:]))
		if isUniqueViolation(err) {
			return nil, importConflict("a concurrent update stored %s version %d first: retry the import", u.Role, u.Version)
		}
		if err != nil {
			return nil, fmt.Errorf("store imported %s version %d of %q: %w", u.Role, u.Version, gun, err)
		}
	}
	if len(insert) > 0 {
		if err := recordImport(ctx, tx, gun, now); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		if isUniqueViolation(err) {
			return nil, importConflict("a concurrent update of the repository won: retry the import")
		}
		return nil, fmt.Errorf("commit import of %q: %w", gun, err)
	}
	rep.stored = nonNil(rep.stored)
	rep.unchanged = nonNil(rep.unchanged)
	rep.skipped = nonNil(rep.skipped)
	return &rep, nil
}

func nonNil(l []roleVersion) []roleVersion {
	if l == nil {
		return []roleVersion{}
	}
	return l
}

// readHeld reads the sha256 of every stored file of a GUN.
func readHeld(ctx context.Context, tx *sql.Tx, gun data.GUN) (heldFiles, error) {
	rows, err := tx.QueryContext(ctx, `SELECT role, version, COALESCE(sha256, '') FROM tuf_files WHERE gun = $1 AND deleted_at IS NULL`, gun.String())
	if err != nil {
		return nil, fmt.Errorf("read stored files of %q: %w", gun, err)
	}
	defer rows.Close()
	held := heldFiles{}
	for rows.Next() {
		var (
			role    string
			version int
			sum     string
		)
		if err := rows.Scan(&role, &version, &sum); err != nil {
			return nil, fmt.Errorf("read stored files of %q: %w", gun, err)
		}
		r := data.RoleName(role)
		if held[r] == nil {
			held[r] = map[int]string{}
		}
		held[r][version] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stored files of %q: %w", gun, err)
	}
	return held, nil
}

// recordImport adds a changefeed entry for the GUN's current timestamp.
func recordImport(ctx context.Context, tx *sql.Tx, gun data.GUN, now any) error {
	var (
		version int
		sum     sql.NullString
	)
	err := tx.QueryRowContext(ctx,
		`SELECT version, sha256 FROM tuf_files WHERE gun = $1 AND role = $2 ORDER BY version DESC LIMIT 1`,
		gun.String(), data.CanonicalTimestampRole.String()).Scan(&version, &sum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read current timestamp of %q: %w", gun, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO changefeed (created_at, gun, version, sha256, category) VALUES ($1, $2, $3, $4, 'update')`,
		now, gun.String(), version, sum); err != nil {
		return fmt.Errorf("record import of %q: %w", gun, err)
	}
	return nil
}
