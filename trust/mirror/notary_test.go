package mirror

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testnotary"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
)

// notaryFiles are the files of a repository publishHistory made.
var notaryFiles = []string{"1.root.json", "2.root.json", "3.root.json", "root.json", "timestamp.json", "snapshot.json", "targets.json"}

// TestFromNotaryServer mirrors a repository the notary CLI published to
// notary-server v0.7.0 (root rotation, server-managed snapshot) into
// signet's server on both stores. Then the notary CLI, with the trust dir
// it filled from notary-server, reads the same targets from signet; a
// fresh `signet verify` passes for a signed image; and the trust dir
// alone, imported into an empty server once notary-server is gone, gives
// the same targets too.
func TestFromNotaryServer(t *testing.T) {
	ns := testnotary.StartServer(t, `{"backend":"memory"}`)
	reg := testservers.Registry(t)
	gun := reg + "/team/app"
	testnotary.PublishHistory(t, ns.URL, gun, reg)
	reader := testnotary.NewCLI(t)
	want := reader.Must(ns.URL, "list", gun)
	for _, tag := range []string{"v1", "v2", "v3", "signed"} {
		if !strings.Contains(want, tag) {
			t.Fatalf("notary list from notary-server lacks %s:\n%s", tag, want)
		}
	}

	for store, dsn := range backends(t) {
		t.Run(store, func(t *testing.T) {
			dst := startSignet(t, dsn(t), true)
			src := serverSource(t, ns.URL)
			r := one(t, src, dst.sink(t), gun)
			wantOutcome(t, r, Copied)
			if fmt.Sprint(r.RootVersions) != "[1 2 3]" {
				t.Fatalf("root versions %v", r.RootVersions)
			}
			sameFiles(t, ns.URL, dst.URL, gun, notaryFiles)
			if got := reader.Must(dst.URL, "list", gun); got != want {
				t.Fatalf("notary list from signet:\n%s\nfrom notary-server:\n%s", got, want)
			}
			if got := testnotary.NewCLI(t).Must(dst.URL, "list", gun); got != want {
				t.Fatalf("fresh notary list from signet:\n%s\nfrom notary-server:\n%s", got, want)
			}
			v, err := publish.Verify(context.Background(), publish.Config{TrustDir: t.TempDir(), Server: dst.URL}, gun+":signed")
			if err != nil {
				t.Fatalf("signet verify against the mirror: %v", err)
			}
			ref, _ := name.ParseReference(gun + ":signed")
			if d, err := remote.Head(ref); err != nil || d.Digest.String() != v.Digest {
				t.Fatalf("verified %s, registry has %v (%v)", v.Digest, d, err)
			}
			if again := one(t, src, dst.sink(t), gun); again.Outcome != Unchanged {
				t.Fatalf("second run: %s %v", again.Outcome, again.Err)
			}
		})
	}

	t.Run("trust dir", func(t *testing.T) {
		ns.Stop()
		from, err := OpenSource(reader.TrustDir, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dst := newSignet(t)
		rep := mustRun(t, Options{Source: from, Sink: dst.sink(t)})
		if len(rep.Results) != 1 {
			t.Fatalf("results %+v", rep.Results)
		}
		r := rep.Results[0]
		wantOutcome(t, r, Copied)
		if r.Anchor != "the trust dir's root v3" || fmt.Sprint(r.RootVersions) != "[3]" {
			t.Fatalf("anchor %q, roots %v", r.Anchor, r.RootVersions)
		}
		if got := reader.Must(dst.URL, "list", gun); got != want {
			t.Fatalf("notary list from the imported cache:\n%s\nwant:\n%s", got, want)
		}
		if got := testnotary.NewCLI(t).Must(dst.URL, "list", gun); got != want {
			t.Fatalf("fresh notary list from the imported cache:\n%s\nwant:\n%s", got, want)
		}
	})
}

// TestTamperedNotaryServer edits a targets row in notary-server's
// PostgreSQL database: the mirror refuses that repository, stores the
// others, and after the row is restored a second run completes it and
// leaves the others' rows as they were.
func TestTamperedNotaryServer(t *testing.T) {
	nsDSN := testnotary.Postgres(t)
	ns := testnotary.StartServer(t, `{"backend":"postgres","db_url":"`+nsDSN+`"}`)
	var guns []string
	for _, n := range []string{"a", "b", "c"} {
		g := "registry.example.com/team/" + n
		pub := testnotary.NewCLI(t)
		pub.Must(ns.URL, "init", g, "-p")
		pub.Must(ns.URL, "addhash", g, "v1", "100", "--sha256", strings.Repeat("a1", 32), "-p")
		guns = append(guns, g)
	}
	bad := guns[1]
	db, err := sql.Open("postgres", nsDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int
	var orig []byte
	if err := db.QueryRow(`SELECT id, data FROM tuf_files WHERE gun = $1 AND role = 'targets' ORDER BY version DESC LIMIT 1`, bad).Scan(&id, &orig); err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(orig), `"v1"`, `"v9"`, 1)
	if edited == string(orig) {
		t.Fatal("the targets row has no target to edit")
	}
	// set stores data in the row and restarts notary-server, which
	// caches metadata by checksum.
	set := func(data []byte) {
		t.Helper()
		if _, err := db.Exec(`UPDATE tuf_files SET data = $1 WHERE id = $2`, data, id); err != nil {
			t.Fatal(err)
		}
		ns.Restart()
	}

	for store, dsn := range backends(t) {
		t.Run(store, func(t *testing.T) {
			set([]byte(edited))
			dst := startSignet(t, dsn(t), true)
			rep := mustRun(t, Options{Source: serverSource(t, ns.URL), Sink: dst.sink(t), Repositories: guns})
			for _, r := range rep.Results {
				if r.GUN == bad {
					if r.Outcome != Failed || !strings.Contains(r.Err.Error(), "targets: metadata does not match its hash") {
						t.Fatalf("tampered %s: %s %v", r.GUN, r.Outcome, r.Err)
					}
					continue
				}
				wantOutcome(t, r, Copied)
			}
			if rows := dst.rows(t, bad); len(rows) != 0 {
				t.Fatalf("stored for the tampered repository: %v", rows)
			}
			before := map[string][]string{}
			for _, g := range guns {
				before[g] = dst.rows(t, g)
			}

			set(orig)
			rep = mustRun(t, Options{Source: serverSource(t, ns.URL), Sink: dst.sink(t), Repositories: guns})
			for _, r := range rep.Results {
				want := Unchanged
				if r.GUN == bad {
					want = Copied
				}
				wantOutcome(t, r, want)
			}
			for _, g := range []string{guns[0], guns[2]} {
				if got := dst.rows(t, g); fmt.Sprint(got) != fmt.Sprint(before[g]) {
					t.Fatalf("rows of %s changed:\n%v\nwere\n%v", g, got, before[g])
				}
			}
			// The completed repository has the files of the others: one
			// row each, no duplicates.
			if got, other := len(dst.rows(t, bad)), len(before[guns[0]]); got != other {
				t.Fatalf("%s has %d rows, %s %d", bad, got, guns[0], other)
			}
			sameFiles(t, ns.URL, dst.URL, bad, []string{"1.root.json", "root.json", "timestamp.json", "snapshot.json", "targets.json"})
		})
	}
}

// TestTakeOver: after the mirror, the repository is taken over on signet
// (`signet rotate`: server-held timestamp and snapshot keys in a new root
// signed by the root key the notary CLI made). The notary CLI that read
// notary-server follows the rotation and can publish on signet, and a
// mirror run from notary-server again changes nothing.
func TestTakeOver(t *testing.T) {
	ns := testnotary.StartServer(t, `{"backend":"memory"}`)
	gun := "registry.example.com/team/app"
	pub := testnotary.PublishHistory(t, ns.URL, gun, "")
	reader := testnotary.NewCLI(t)
	want := reader.Must(ns.URL, "list", gun)
	dst := newSignet(t)
	wantOutcome(t, one(t, serverSource(t, ns.URL), dst.sink(t), gun), Copied)

	passphrases := &keys.Retriever{Getenv: func(string) string { return testnotary.Passphrase }}
	_, res, err := publish.Rotate(context.Background(), publish.Config{TrustDir: pub.TrustDir, Server: dst.URL, Passphrases: passphrases},
		gun, []string{"timestamp", "snapshot"}, true)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	if res.RootVersion != 4 {
		t.Fatalf("root version %d after the take-over, want 4", res.RootVersion)
	}
	rows := dst.rows(t, gun)

	r := one(t, serverSource(t, ns.URL), dst.sink(t), gun)
	wantOutcome(t, r, Unchanged)
	if r.Anchor != "the destination's root v3 (the destination has moved on to v4)" {
		t.Fatalf("anchor %q", r.Anchor)
	}
	if got := dst.rows(t, gun); fmt.Sprint(got) != fmt.Sprint(rows) {
		t.Fatalf("rows changed:\n%v\nwere\n%v", got, rows)
	}
	if got := reader.Must(dst.URL, "list", gun); got != want {
		t.Fatalf("notary list after the take-over:\n%s\nwant:\n%s", got, want)
	}
	pub.Must(dst.URL, "addhash", gun, "v4", "400", "--sha256", strings.Repeat("d4", 32), "-p")
	if got := reader.Must(dst.URL, "list", gun); !strings.Contains(got, "v4") {
		t.Fatalf("notary list lacks v4 published after the take-over:\n%s", got)
	}
}
