package server

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testenv"
)

// TestChangeCounter: every kind of write to tuf_files counts, by this
// server or any other writer, and the counter never goes back, not even
// when a repository is deleted.
func TestChangeCounter(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := dsn(t)
			st, err := OpenStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			// Opening it again (another replica, a restart) keeps one
			// trigger: each write counts as before.
			again, err := OpenStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			again.Close()
			const gun = "registry.example.com/team/counted"
			last := int64(0)
			step := func(what string, write func() error) {
				t.Helper()
				if err := write(); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				n, err := st.changeCount(ctx, gun)
				if err != nil {
					t.Fatal(err)
				}
				if n <= last {
					t.Fatalf("%s: change counter %d, was %d", what, n, last)
				}
				last = n
			}
			if n, err := st.changeCount(ctx, gun); err != nil || n != 0 {
				t.Fatalf("counter of a new repository: %d %v", n, err)
			}
			step("update", func() error {
				return st.UpdateMany(data.GUN(gun), []storage.MetaUpdate{storeUpdate(data.CanonicalRootRole, 1, []byte("{}")), storeUpdate(data.CanonicalTimestampRole, 1, []byte("{}"))})
			})
			step("insert by SQL", func() error {
				_, err := st.db.Exec(`INSERT INTO tuf_files (gun, role, version, data) VALUES ($1, 'targets', 1, $2)`, gun, []byte("{}"))
				return err
			})
			step("update by SQL", func() error {
				_, err := st.db.Exec(`UPDATE tuf_files SET data = $1 WHERE gun = $2 AND role = 'targets'`, []byte(`{"a":1}`), gun)
				return err
			})
			step("delete by SQL", func() error {
				_, err := st.db.Exec(`DELETE FROM tuf_files WHERE gun = $1 AND role = 'targets'`, gun)
				return err
			})
			step("delete", func() error { return st.Delete(data.GUN(gun)) })
			step("delete of nothing", func() error { return st.Delete(data.GUN(gun)) })
			step("update after delete", func() error {
				return st.UpdateMany(data.GUN(gun), []storage.MetaUpdate{storeUpdate(data.CanonicalRootRole, 1, []byte("{}"))})
			})
			step("key rotation", func() error { return st.countChange(ctx, gun) })
			// A refused update counts nothing.
			if err := st.UpdateMany(data.GUN(gun), []storage.MetaUpdate{storeUpdate(data.CanonicalRootRole, 1, []byte("{}"))}); err == nil {
				t.Fatal("stale update stored")
			}
			if n, _ := st.changeCount(ctx, gun); n != last {
				t.Fatalf("refused update moved the counter from %d to %d", last, n)
			}
			// Another repository's counter is its own.
			if n, _ := st.changeCount(ctx, gun+"2"); n != 0 {
				t.Fatalf("counter of an untouched repository: %d", n)
			}
		})
	}
}

// TestChangeCounterOtherRole: on PostgreSQL a writer under another
// database role, granted only tuf_files (notary-server sharing the
// database, an operator), can write, and its writes count: the trigger
// runs with the rights of signet's role.
func TestChangeCounterOtherRole(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.FreshPostgresDB(t)
	st, err := OpenStore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		testenv.Require(t, "a PostgreSQL DSN in URL form", "SIGNET_TEST_POSTGRES_DSN is not a URL (%v): this test names another role in it", err)
	}
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	role := "signet_t_writer_" + hex.EncodeToString(b[:])
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"GRANT SELECT, INSERT ON tuf_files TO " + role,
		"GRANT USAGE ON SEQUENCE tuf_files_id_seq TO " + role,
	} {
		if _, err := st.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := st.db.Exec(q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u.User = url.User(role)
	other, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const gun = "registry.example.com/team/other-role"
	if _, err := other.Exec(`INSERT INTO tuf_files (gun, role, version, data) VALUES ($1, 'root', 1, $2)`, gun, []byte("{}")); err != nil {
		t.Fatalf("write as a role granted only tuf_files: %v", err)
	}
	if _, err := other.Exec(`SELECT counter FROM signet_gun_changes`); err == nil {
		t.Fatal("the other role reads the counters table: the test grants too much")
	}
	if n, err := st.changeCount(ctx, gun); err != nil || n != 1 {
		t.Fatalf("change counter after the other role's write: %d, %v; want 1", n, err)
	}
}

// TestMixedPublishesThroughReplicas races, through two replicas on one
// database, a publish of targets and a delegation against a publish of
// the delegation alone, from the same state. The first inserts targets
// first, the second the delegation; both insert the delegation's version.
// Each write transaction takes the repository's change counter before
// any row (changecount.go), so one wins and the other is told VERSION,
// never a deadlock answered 500.
func TestMixedPublishesThroughReplicas(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			a, _ := startServer(t, db, Options{})
			b, _ := startServer(t, db, Options{})
			const gun = "registry.example.com/team/mixed"
			p := newPublisher(t, a.URL, gun)
			p.delegate(releasesDelegation)
			mustPost(t, a.URL, gun, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)},
				file{"targets/releases.json", p.signTargets(releasesDelegation)})
			for round := 0; round < 12; round++ {
				var cur, rel data.SignedTargets
				getJSON(t, a.URL+"/v2/"+gun+"/_trust/tuf/targets.json", &cur)
				getJSON(t, a.URL+"/v2/"+gun+"/_trust/tuf/targets/releases.json", &rel)
				p.repo.Targets[data.CanonicalTargetsRole].Signed.Version = cur.Signed.Version
				p.repo.Targets[releasesDelegation].Signed.Version = rel.Signed.Version
				p.addTarget(releasesDelegation, fmt.Sprintf("one-%d", round))
				both := []file{{"targets.json", p.signTargets(data.CanonicalTargetsRole)}, {"targets/releases.json", p.signTargets(releasesDelegation)}}
				p.repo.Targets[releasesDelegation].Signed.Version = rel.Signed.Version
				p.addTarget(releasesDelegation, fmt.Sprintf("two-%d", round))
				alone := []file{{"targets/releases.json", p.signTargets(releasesDelegation)}}
				var (
					wg    sync.WaitGroup
					codes [2]string
				)
				for i, u := range [][]file{both, alone} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						body, ct := encodeUpdate(t, u...)
						code, c, msg := postEncoded(t, http.DefaultClient, []string{a.URL, b.URL}[(i+round)%2], gun, body, ct)
						codes[i] = fmt.Sprintf("%d %s %s", code, c, msg)
						if code == http.StatusOK {
							codes[i] = "ok"
						}
					}()
				}
				wg.Wait()
				ok := 0
				for _, c := range codes {
					switch {
					case c == "ok":
						ok++
					case strings.HasPrefix(c, "400 VERSION"):
					default:
						t.Fatalf("round %d: answers %q: want one ok and one VERSION", round, codes)
					}
				}
				if ok != 1 {
					t.Fatalf("round %d: %d publishes won: %q", round, ok, codes)
				}
			}
		})
	}
}
