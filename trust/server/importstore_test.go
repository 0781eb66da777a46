package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testtuf"
)

// TestImportPlan decides what becomes of imported files against what the
// server holds (rows given as role -> version -> bytes).
func TestImportPlan(t *testing.T) {
	root, ts, sn, tg := data.CanonicalRootRole, data.CanonicalTimestampRole, data.CanonicalSnapshotRole, data.CanonicalTargetsRole
	f := func(role data.RoleName, v int, body string) storage.MetaUpdate {
		return storage.MetaUpdate{Role: role, Version: v, Data: []byte(body)}
	}
	sum := func(body string) string { s := sha256.Sum256([]byte(body)); return hex.EncodeToString(s[:]) }
	rv := func(role data.RoleName, v int) roleVersion { return roleVersion{Role: role.String(), Version: v} }
	newer := func(role data.RoleName, v int) roleVersion {
		return roleVersion{Role: role.String(), Version: v, Reason: reasonDestinationNewer}
	}
	imported := []storage.MetaUpdate{f(root, 1, "r1"), f(root, 2, "r2"), f(sn, 3, "s3"), f(tg, 3, "t3"), f(ts, 5, "ts5")}
	tests := []struct {
		name                       string
		held                       map[data.RoleName]map[int]string // bodies
		anchor                     rootRef
		stored, unchanged, skipped []roleVersion
		conflict                   string
	}{
		{name: "new repository", stored: []roleVersion{rv(root, 1), rv(root, 2), rv(sn, 3), rv(tg, 3), rv(ts, 5)}},
		{name: "same data again", anchor: rootRef{2, sum("r2")},
			held:      map[data.RoleName]map[int]string{root: {1: "r1", 2: "r2"}, sn: {3: "s3"}, tg: {3: "t3"}, ts: {5: "ts5"}},
			unchanged: []roleVersion{rv(root, 1), rv(root, 2), rv(sn, 3), rv(tg, 3), rv(ts, 5)}},
		{name: "newer data than held", anchor: rootRef{2, sum("r2")},
			held:      map[data.RoleName]map[int]string{root: {1: "r1", 2: "r2"}, sn: {2: "s2"}, tg: {2: "t2"}, ts: {4: "ts4"}},
			unchanged: []roleVersion{rv(root, 1), rv(root, 2)}, stored: []roleVersion{rv(sn, 3), rv(tg, 3), rv(ts, 5)}},
		{name: "root history older than the held root is not stored", anchor: rootRef{2, sum("r2")},
			held:      map[data.RoleName]map[int]string{root: {2: "r2"}, sn: {3: "s3"}, tg: {3: "t3"}, ts: {5: "ts5"}},
			unchanged: []roleVersion{rv(root, 2), rv(sn, 3), rv(tg, 3), rv(ts, 5)}, skipped: []roleVersion{newer(root, 1)}},
		{name: "taken over: newer root, timestamp re-signed by the old server", anchor: rootRef{2, sum("r2")},
			held:      map[data.RoleName]map[int]string{root: {1: "r1", 2: "r2", 3: "r3"}, sn: {3: "s3", 4: "s4"}, tg: {3: "t3"}, ts: {5: "ts5-new-server", 6: "ts6"}},
			unchanged: []roleVersion{rv(root, 1), rv(root, 2), rv(sn, 3), rv(tg, 3)}, skipped: []roleVersion{newer(ts, 5)}},
		{name: "a later import ran", anchor: rootRef{2, sum("r2")},
			held:      map[data.RoleName]map[int]string{root: {1: "r1", 2: "r2"}, sn: {4: "s4"}, tg: {4: "t4"}, ts: {6: "ts6"}},
			unchanged: []roleVersion{rv(root, 1), rv(root, 2)}, skipped: []roleVersion{newer(sn, 3), newer(tg, 3), newer(ts, 5)}},
		{name: "other bytes at a version", anchor: rootRef{2, sum("r2")},
			held:     map[data.RoleName]map[int]string{root: {1: "r1", 2: "r2"}, sn: {3: "s3"}, tg: {3: "t3-other"}, ts: {4: "ts4"}},
			conflict: "targets version 3 differs from the one the server holds"},
		{name: "other root at a version", anchor: rootRef{2, sum("r2")},
			held:     map[data.RoleName]map[int]string{root: {1: "r1-other", 2: "r2"}},
			conflict: "root version 1 differs"},
		{name: "newer role under an older timestamp", anchor: rootRef{2, sum("r2")},
			held:     map[data.RoleName]map[int]string{root: {1: "r1", 2: "r2"}, sn: {2: "s2"}, tg: {4: "t4"}, ts: {4: "ts4"}},
			conflict: "the server holds targets version 4, newer than the imported version 3, under an older timestamp"},
		{name: "a replica stored a root since verification",
			held:     map[data.RoleName]map[int]string{root: {1: "r1-other"}},
			conflict: "root version 1 differs"},
		{name: "the verified-from root was deleted since", anchor: rootRef{2, sum("r2")},
			conflict: "the server's root changed during the import: retry the import"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held := heldFiles{}
			for role, versions := range tt.held {
				held[role] = map[int]string{}
				for v, body := range versions {
					held[role][v] = sum(body)
				}
			}
			insert, rep, err := importPlan(held, imported, tt.anchor)
			if tt.conflict != "" {
				if err == nil || !strings.Contains(err.Error(), tt.conflict) {
					t.Fatalf("plan: %v, want a conflict with %q", err, tt.conflict)
				}
				return
			}
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			for _, c := range []struct {
				name      string
				got, want []roleVersion
			}{{"stored", rep.stored, tt.stored}, {"unchanged", rep.unchanged, tt.unchanged}, {"skipped", rep.skipped, tt.skipped}} {
				sortRV(c.got)
				if !slices.Equal(c.got, c.want) {
					t.Fatalf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			if len(insert) != len(tt.stored) {
				t.Fatalf("inserts %d files, reports %d stored", len(insert), len(tt.stored))
			}
		})
	}
}

// TestImportDestinationNewer: an import older than what the server holds
// stores nothing and answers 200 with the older files skipped, after a
// take-over (the old server kept re-signing its timestamp) and after a
// later import; and a re-run of the same import after a take-over is a
// no-op.
func TestImportDestinationNewer(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("after a take-over", func(t *testing.T) {
				o := oldRepo(t)
				first := exported(o)
				resigned, err := o.Repo.SignTimestamp(time.Now().Add(14 * 24 * time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				later := append(without(first, "timestamp.json"), file{"timestamp.json", testtuf.Marshal(t, resigned)})
				hs, _ := startServer(t, dsn(t), Options{AllowImport: true})
				mustImport(t, hs.URL, first...)
				tsKey, _ := takeOver(t, hs.URL, o)
				served := func() []byte { _, b := getRaw(t, metaURL(hs.URL, "timestamp.json")); return b }
				before := served()

				wantReport(t, mustImport(t, hs.URL, first...), nil, fileSet(t, first), nil)
				tsV := fileRV(t, file{"timestamp.json", later[len(later)-1].body}).Version
				wantReport(t, mustImport(t, hs.URL, later...), nil, fileSet(t, without(later, "timestamp.json")),
					[]roleVersion{{Role: "timestamp", Version: tsV, Reason: reasonDestinationNewer}})
				if string(served()) != string(before) {
					t.Fatalf("timestamp served changed after skipped imports")
				}
				wantSignedBy(t, hs.URL, data.CanonicalTimestampRole, tsKey, tsV)
			})
			t.Run("after a later import", func(t *testing.T) {
				o := oldRepo(t)
				older := exported(o)
				o.AddTarget(data.CanonicalTargetsRole, "v2", "manifest two")
				o.Publish(data.CanonicalTargetsRole)
				newer := exported(o)
				hs, _ := startServer(t, dsn(t), Options{AllowImport: true})
				mustImport(t, hs.URL, newer...)

				var skipped []roleVersion
				for _, rv := range fileSet(t, older) {
					if rv.Role != "root" && rv.Role != releasesRole.String() {
						rv.Reason = reasonDestinationNewer
						skipped = append(skipped, rv)
					}
				}
				unchanged := fileSet(t, []file{
					{"1.root.json", o.File("1.root.json")}, {"2.root.json", o.File("2.root.json")},
					{"targets/releases.json", o.File("targets/releases.json")}})
				wantReport(t, mustImport(t, hs.URL, older...), nil, unchanged, skipped)
				if _, got := getRaw(t, metaURL(hs.URL, "timestamp.json")); string(got) != string(o.File("timestamp.json")) {
					t.Fatalf("timestamp served is not the newer import's")
				}
			})
		})
	}
}

// TestImportConflict: an import whose file differs from the one the
// server holds at the same role and version is refused with 409 naming
// both, and stores nothing.
func TestImportConflict(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := oldRepo(t)
			first := exported(o)
			// The old server signs the same timestamp version again.
			o.Repo.Timestamp.Signed.Version--
			again, err := o.Repo.SignTimestamp(time.Now().Add(13 * 24 * time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			forked := append(without(first, "timestamp.json"), file{"timestamp.json", testtuf.Marshal(t, again)})
			hs, srv := startServer(t, dsn(t), Options{AllowImport: true})
			mustImport(t, hs.URL, first...)

			a := postImport(t, hs.URL, migratedGUN, "", forked...)
			v := fileRV(t, file{"timestamp.json", testtuf.Marshal(t, again)}).Version
			want := fmt.Sprintf("timestamp version %d differs from the one the server holds", v)
			if a.code != http.StatusConflict || a.errCode != "SIGNET_IMPORT_CONFLICT" || !strings.Contains(a.msg, want) {
				t.Fatalf("forked import: %d %s %q, want 409 SIGNET_IMPORT_CONFLICT with %q", a.code, a.errCode, a.msg, want)
			}
			wantStoredBytes(t, srv.store, first)
		})
	}
}

// TestConcurrentImports races imports of the same repository through two
// replicas on one database: each answers 200, every file is stored once
// (one import stores it, the others find it unchanged), byte for byte,
// with one changefeed entry.
func TestConcurrentImports(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			files := exported(oldRepo(t))
			db := dsn(t)
			a, srv := startServer(t, db, Options{AllowImport: true})
			b, _ := startServer(t, db, Options{AllowImport: true})
			const n = 6
			answers := make([]importAnswer, n)
			var wg sync.WaitGroup
			for i := range n {
				url := a.URL
				if i%2 == 1 {
					url = b.URL
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = postImport(t, url, migratedGUN, "", files...)
				}()
			}
			wg.Wait()
			times := map[roleVersion]int{}
			for _, ans := range answers {
				if ans.code != http.StatusOK {
					t.Fatalf("concurrent import: %d %s %s", ans.code, ans.errCode, ans.msg)
				}
				for _, rv := range ans.Stored {
					times[rv]++
				}
				if len(ans.Stored)+len(ans.Unchanged) != len(fileSet(t, files)) || len(ans.Skipped) != 0 {
					t.Fatalf("an import reported %v stored, %v unchanged, %v skipped", ans.Stored, ans.Unchanged, ans.Skipped)
				}
			}
			for _, rv := range fileSet(t, files) {
				if times[rv] != 1 {
					t.Fatalf("%s version %d stored by %d imports, want 1", rv.Role, rv.Version, times[rv])
				}
			}
			wantStoredBytes(t, srv.store, files)
			var feed changefeedResponse
			getJSON(t, a.URL+"/v2/"+migratedGUN+"/_trust/changefeed", &feed)
			if feed.Count != 1 {
				t.Fatalf("changefeed has %d entries, want 1: %+v", feed.Count, feed.Records)
			}
		})
	}
}
