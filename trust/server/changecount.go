package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Every repository (GUN) has a change counter in signet_gun_changes that
// grows whenever any of its rows in tuf_files is inserted, updated or
// deleted. The read cache (readcache.go) tags what it keeps with the
// counter it read before loading, and serves it again only while the
// counter is unchanged: one primary-key read per request, which is what
// keeps replicas sharing a database from serving data older than an
// update another replica committed.
//
// A database trigger does the counting, so every writer counts: this
// server's publishes, imports, deletions and timestamp re-signing, an
// older signet replica during a rolling upgrade, notary-server, or an
// operator's SQL. The trigger's row is never deleted (a deleted
// repository's counter keeps growing), so a counter value names one state
// of a repository for good.
//
// Why not `SELECT max(id) FROM tuf_files WHERE gun = ...`: on PostgreSQL
// serial ids are handed out at insert, not at commit, so a transaction
// holding a lower id can commit after a reader saw a higher one, and the
// maximum would not move. A counter row is updated under its row lock and
// its value is read as committed.
//
// Why not LISTEN/NOTIFY alone: a notification arrives after the commit,
// asynchronously. A client that published through replica A and reads
// through replica B at once could be answered before B heard of it; and
// notifications sent while B's listening connection was down are lost.

// changeSchema returns the statements that create the change counters,
// run inside the schema transaction of migrate.
func changeSchema(d Dialect) []string {
	if d == Postgres {
		return []string{
			`CREATE TABLE IF NOT EXISTS signet_gun_changes (
				gun varchar(255) PRIMARY KEY,
				counter bigint NOT NULL)`,
			// The function and trigger are made only where missing, so a
			// restart needs no more rights than reads and writes, and
			// replacing a trigger would lock tuf_files against the
			// replicas already serving. The function runs with its
			// owner's rights (SECURITY DEFINER, with the schema fixed), so
			// a writer under another database role (notary-server, an
			// operator) need not be granted the counters table.
			`DO $do$
			BEGIN
				IF to_regprocedure('signet_count_gun_change()') IS NULL THEN
					CREATE FUNCTION signet_count_gun_change() RETURNS trigger
					LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
					BEGIN
						IF TG_OP <> 'INSERT' THEN
							INSERT INTO signet_gun_changes (gun, counter) VALUES (OLD.gun, 1)
								ON CONFLICT (gun) DO UPDATE SET counter = signet_gun_changes.counter + 1;
						END IF;
						IF TG_OP <> 'DELETE' THEN
							INSERT INTO signet_gun_changes (gun, counter) VALUES (NEW.gun, 1)
								ON CONFLICT (gun) DO UPDATE SET counter = signet_gun_changes.counter + 1;
						END IF;
						RETURN NULL;
					END
					$fn$;
				END IF;
				IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'signet_tuf_files_changed' AND tgrelid = 'tuf_files'::regclass) THEN
					CREATE TRIGGER signet_tuf_files_changed AFTER INSERT OR UPDATE OR DELETE ON tuf_files
						FOR EACH ROW EXECUTE FUNCTION signet_count_gun_change();
				END IF;
			END
			$do$`,
		}
	}
	const bump = `INSERT INTO signet_gun_changes (gun, counter) VALUES (%s.gun, 1)
		ON CONFLICT (gun) DO UPDATE SET counter = signet_gun_changes.counter + 1;`
	return []string{
		`CREATE TABLE IF NOT EXISTS signet_gun_changes (
			gun varchar(255) PRIMARY KEY,
			counter integer NOT NULL)`,
		`CREATE TRIGGER IF NOT EXISTS signet_tuf_files_inserted AFTER INSERT ON tuf_files BEGIN ` +
			fmt.Sprintf(bump, "NEW") + ` END`,
		`CREATE TRIGGER IF NOT EXISTS signet_tuf_files_updated AFTER UPDATE ON tuf_files BEGIN ` +
			fmt.Sprintf(bump, "OLD") + fmt.Sprintf(bump, "NEW") + ` END`,
		`CREATE TRIGGER IF NOT EXISTS signet_tuf_files_deleted AFTER DELETE ON tuf_files BEGIN ` +
			fmt.Sprintf(bump, "OLD") + ` END`,
	}
}

const (
	bumpChangeQuery  = `INSERT INTO signet_gun_changes (gun, counter) VALUES ($1, 1) ON CONFLICT (gun) DO UPDATE SET counter = signet_gun_changes.counter + 1`
	readChangesQuery = `SELECT counter FROM signet_gun_changes WHERE gun = $1`
)

// execer is a transaction or the database.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// countChange counts a change of gun. Write transactions call it first:
// on PostgreSQL it takes the counter row's lock before any row of
// tuf_files, so two writers of one repository queue on it in the same
// order, where the trigger alone (taking it after the first insert) could
// deadlock them.
func countChange(ctx context.Context, db execer, gun string) error {
	if _, err := db.ExecContext(ctx, bumpChangeQuery, gun); err != nil {
		return fmt.Errorf("count a change of %q: %w", gun, err)
	}
	return nil
}

// countChange counts a change of gun outside any update, so every
// replica's read cache drops what it holds of it.
func (s *Store) countChange(ctx context.Context, gun string) error {
	return countChange(ctx, s.db, gun)
}

// changeCount returns gun's change counter: 0 for a repository never
// written. It grows with every committed change of gun's metadata.
func (s *Store) changeCount(ctx context.Context, gun string) (int64, error) {
	var n int64
	err := s.readChanges.QueryRowContext(ctx, gun).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read change counter of %q: %w", gun, err)
	}
	return n, nil
}
