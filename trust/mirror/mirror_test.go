package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testtuf"
	"github.com/signet-project/signet/trust/verify"
)

const gun = "registry.example.com/team/app"

// TestServerToServer copies a repository with a root rotation and a
// delegation into signet's server: every file byte for byte, on both
// stores; a second run stores nothing.
func TestServerToServer(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			src := newTUFRepo(t, gun)
			dst := startSignet(t, dsn(t), true)
			r := one(t, serverSource(t, src.URL), dst.sink(t), gun)
			wantOutcome(t, r, Copied)
			if want := []string{"root v1", "root v2", "snapshot v3", "targets v3", "targets/releases v1", "timestamp v3"}; !reflect.DeepEqual(files(r.Stored), want) {
				t.Fatalf("stored %v, want %v", files(r.Stored), want)
			}
			if !reflect.DeepEqual(r.RootVersions, []int{1, 2}) || r.Anchor != "the source's root v1 (trust on first use)" {
				t.Fatalf("root versions %v, anchor %q", r.RootVersions, r.Anchor)
			}
			sameFiles(t, src.URL, dst.URL, gun, repoFiles)
			if sum := sha256.Sum256(src.File("snapshot.json")); r.SnapshotSHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("snapshot sha256 %s, want %x", r.SnapshotSHA256, sum)
			}
			rows := dst.rows(t, gun)

			again := one(t, serverSource(t, src.URL), dst.sink(t), gun)
			wantOutcome(t, again, Unchanged)
			if len(again.Stored) != 0 || again.Anchor != "the destination's root v2" {
				t.Fatalf("second run stored %v, anchor %q", files(again.Stored), again.Anchor)
			}
			if got := dst.rows(t, gun); !reflect.DeepEqual(got, rows) {
				t.Fatalf("rows changed on a second run:\n%v\nwas\n%v", got, rows)
			}

			// New data on the source: only what changed is copied.
			src.AddTarget(data.CanonicalTargetsRole, "v4", "manifest v4")
			src.Publish(data.CanonicalTargetsRole)
			r = one(t, serverSource(t, src.URL), dst.sink(t), gun)
			wantOutcome(t, r, Copied)
			if want := []string{"snapshot v4", "targets v4", "timestamp v4"}; !reflect.DeepEqual(files(r.Stored), want) {
				t.Fatalf("stored %v, want %v", files(r.Stored), want)
			}
			sameFiles(t, src.URL, dst.URL, gun, repoFiles)
		})
	}
}

// TestArchiveRoundTrip writes an archive, reads it back into an empty
// server, and gets the source's bytes for every file.
func TestArchiveRoundTrip(t *testing.T) {
	src := newTUFRepo(t, gun)
	dir := filepath.Join(t.TempDir(), "archive")
	archive, err := NewArchiveSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := one(t, serverSource(t, src.URL), archive, gun)
	wantOutcome(t, r, Copied)
	for _, n := range repoFiles {
		b, err := os.ReadFile(filepath.Join(dir, gun, "_trust", "tuf", filepath.FromSlash(n)))
		if err != nil || string(b) != string(src.File(n)) {
			t.Fatalf("archived %s: %v (equal: %v)", n, err, string(b) == string(src.File(n)))
		}
	}
	// Idempotent: nothing is rewritten.
	before := modTimes(t, dir)
	wantOutcome(t, one(t, serverSource(t, src.URL), archive, gun), Unchanged)
	if after := modTimes(t, dir); !reflect.DeepEqual(before, after) {
		t.Fatalf("a second run rewrote files")
	}

	from, err := OpenSource(dir, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := from.(*ArchiveSource); !ok {
		t.Fatalf("%s opened as %T, want an archive", dir, from)
	}
	dst := newSignet(t)
	rep := mustRun(t, Options{Source: from, Sink: dst.sink(t)}) // every repository the archive holds
	if len(rep.Results) != 1 || rep.Results[0].GUN != gun {
		t.Fatalf("results %+v", rep.Results)
	}
	wantOutcome(t, rep.Results[0], Copied)
	sameFiles(t, src.URL, dst.URL, gun, repoFiles)
}

func modTimes(t *testing.T, dir string) map[string]time.Time {
	m := map[string]time.Time{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		m[p] = fi.ModTime()
		return nil
	})
	return m
}

// TestRefusesBadData: a source serving data that fails verification is
// reported with the reason, and nothing of that repository is stored.
func TestRefusesBadData(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, s *tufRepo)
		reason string
	}{
		{"edited targets", func(t *testing.T, s *tufRepo) {
			b := []byte(strings.Replace(string(s.File("targets.json")), `"v1"`, `"v9"`, 1))
			for _, n := range s.Files() {
				if strings.HasPrefix(n, "targets.") {
					s.SetFile(n, b)
				}
			}
		}, verify.ReasonHash},
		{"delegation signed by a rogue key", func(t *testing.T, s *tufRepo) {
			rogue, err := s.CS.Create("targets/releases", data.GUN(gun), data.ECDSAKey)
			if err != nil {
				t.Fatal(err)
			}
			s.AddTarget("targets/releases", "evil", "evil manifest")
			s.ServeRaw("targets/releases", s.SignWith("targets/releases", rogue))
		}, verify.ReasonSignature},
		{"first root of another repository", func(t *testing.T, s *tufRepo) {
			other := testtuf.New(t, gun)
			other.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			s.SetFile("1.root.json", other.File("1.root.json"))
		}, verify.ReasonSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newTUFRepo(t, gun)
			tc.break_(t, src)
			dst := newSignet(t)
			dir := filepath.Join(t.TempDir(), "archive")
			archive, err := NewArchiveSink(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, sink := range []Sink{dst.sink(t), archive} {
				r := one(t, serverSource(t, src.URL), sink, gun)
				wantOutcome(t, r, Failed)
				var ve *verify.Error
				if !errors.As(r.Err, &ve) || ve.Reason != tc.reason {
					t.Fatalf("%s: err %v, want reason %q", sink, r.Err, tc.reason)
				}
			}
			if rows := dst.rows(t, gun); len(rows) != 0 {
				t.Fatalf("stored %v", rows)
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(gun))); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the archive has a folder for the refused repository: %v", err)
			}
		})
	}
}

// TestContinuity: the destination's root is the anchor. A source whose
// root chain does not extend it is refused; one that rotated since is
// walked from it.
func TestContinuity(t *testing.T) {
	dst := newSignet(t)
	src := newTUFRepo(t, gun)
	wantOutcome(t, one(t, serverSource(t, src.URL), dst.sink(t), gun), Copied)
	rows := dst.rows(t, gun)

	// Another repository under the same name: refused.
	impostor := newTUFRepo(t, gun)
	r := one(t, serverSource(t, impostor.URL), dst.sink(t), gun)
	wantOutcome(t, r, Failed)
	if !strings.Contains(r.Err.Error(), "does not extend the destination's root v2") {
		t.Fatalf("err %v", r.Err)
	}
	if got := dst.rows(t, gun); !reflect.DeepEqual(got, rows) {
		t.Fatalf("rows changed after a refused mirror")
	}

	// The source rotates its root again: copied, walked from v2.
	src.Root = src.CertKey()
	if err := src.Repo.ReplaceBaseKeys(data.CanonicalRootRole, src.Root); err != nil {
		t.Fatal(err)
	}
	src.Publish(data.CanonicalRootRole)
	r = one(t, serverSource(t, src.URL), dst.sink(t), gun)
	wantOutcome(t, r, Copied)
	if want := []string{"root v3", "snapshot v4", "timestamp v4"}; !reflect.DeepEqual(files(r.Stored), want) {
		t.Fatalf("stored %v, want %v", files(r.Stored), want)
	}
	sameFiles(t, src.URL, dst.URL, gun, append(repoFiles, "3.root.json"))
}

// TestPins: with --root-cert-id the current root must carry a pinned
// certificate, on top of the chain from 1.root.json.
func TestPins(t *testing.T) {
	src := newTUFRepo(t, gun)
	pin := func(ids ...string) func(*Options) {
		return func(o *Options) { o.Pin = verify.Pin{CertIDs: ids} }
	}
	dst := newSignet(t)
	r := one(t, serverSource(t, src.URL), dst.sink(t), gun, pin("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"))
	wantOutcome(t, r, Failed)
	if !strings.Contains(r.Err.Error(), "not pinned") || len(dst.rows(t, gun)) != 0 {
		t.Fatalf("err %v, rows %v", r.Err, dst.rows(t, gun))
	}
	r = one(t, serverSource(t, src.URL), dst.sink(t), gun, pin(src.RootCertID()))
	wantOutcome(t, r, Copied)
	if r.Anchor != "the source's root v1, current root pinned" {
		t.Fatalf("anchor %q", r.Anchor)
	}
}

// TestExpired: expired data is copied and reported, with the proxy
// archive rule; fresh data gets no rule.
func TestExpired(t *testing.T) {
	src := newTUFRepo(t, gun)
	fresh := one(t, serverSource(t, src.URL), newSignet(t).sink(t), gun)
	wantOutcome(t, fresh, Copied)
	if fresh.ArchiveRule != "" || len(fresh.Expired) != 0 {
		t.Fatalf("fresh data: rule %q, expired %v", fresh.ArchiveRule, fresh.Expired)
	}
	// 20 days on, the 14-day timestamp has expired.
	old := one(t, serverSource(t, src.URL), newSignet(t).sink(t), gun, at(20*24*time.Hour))
	wantOutcome(t, old, Copied)
	if !reflect.DeepEqual(old.Expired, []string{"timestamp"}) || !slices.Contains(old.Notes, "timestamp expired 6 days ago") {
		t.Fatalf("expired %v, notes %v", old.Expired, old.Notes)
	}
	if want := "archive: {snapshot_sha256: " + testtuf.Sum(src.File("snapshot.json")) + "}"; old.ArchiveRule != want {
		t.Fatalf("rule %q, want %q", old.ArchiveRule, want)
	}
	// 10 days on, it expires within the 7-day warning.
	soon := one(t, serverSource(t, src.URL), newSignet(t).sink(t), gun, at(10*24*time.Hour))
	if soon.ArchiveRule == "" || !slices.Contains(soon.Notes, "timestamp expires in 3 days") {
		t.Fatalf("rule %q, notes %v", soon.ArchiveRule, soon.Notes)
	}
}

// TestTrustDirSource imports what a client cached: the current root, no
// history, verified against that root.
func TestTrustDirSource(t *testing.T) {
	src := newTUFRepo(t, gun)
	trustDir := t.TempDir()
	meta := filepath.Join(trustDir, "tuf", filepath.FromSlash(gun), "metadata")
	for _, n := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json", "targets/releases.json"} {
		p := filepath.Join(meta, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, src.File(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	from, err := OpenSource(trustDir, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := from.(*TrustDirSource); !ok {
		t.Fatalf("%s opened as %T, want a trust dir", trustDir, from)
	}
	dst := newSignet(t)
	rep := mustRun(t, Options{Source: from, Sink: dst.sink(t)})
	r := rep.Results[0]
	wantOutcome(t, r, Copied)
	if !reflect.DeepEqual(r.RootVersions, []int{2}) || r.Anchor != "the trust dir's root v2" || !strings.HasPrefix(r.Notes[0], "cached ") {
		t.Fatalf("roots %v, anchor %q, notes %v", r.RootVersions, r.Anchor, r.Notes)
	}
	sameFiles(t, src.URL, dst.URL, gun, []string{"root.json", "timestamp.json", "snapshot.json", "targets.json", "targets/releases.json"})

	// A cache whose targets was edited is refused.
	if err := os.WriteFile(filepath.Join(meta, "targets.json"), []byte(strings.Replace(string(src.File("targets.json")), `"v1"`, `"v9"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = one(t, from, newSignet(t).sink(t), gun)
	var ve *verify.Error
	if !errors.As(r.Err, &ve) || ve.Reason != verify.ReasonHash {
		t.Fatalf("edited cache: %v", r.Err)
	}
}

// TestStopsWhenTheDestinationRefusesAll: a destination that takes no
// imports fails the first repository; the others are not attempted.
func TestStopsWhenTheDestinationRefusesAll(t *testing.T) {
	repos := multiTUF{}
	var names []string
	for _, n := range []string{"a", "b", "c"} {
		g := "registry.example.com/team/" + n
		repos[g] = newTUFRepo(t, g).Server
		names = append(names, g)
	}
	dst := startSignet(t, filepath.Join(t.TempDir(), "trust.db"), false)
	rep := mustRun(t, Options{Source: serverSource(t, serve(t, repos)), Sink: dst.sink(t), Repositories: names, Parallel: 1})
	if rep.Count(Failed) != 3 {
		t.Fatalf("results %+v", rep.Results)
	}
	if !strings.Contains(rep.Results[0].Err.Error(), "--allow-import") {
		t.Fatalf("first: %v", rep.Results[0].Err)
	}
	for _, r := range rep.Results[1:] {
		if !strings.HasPrefix(r.Err.Error(), "not attempted: ") {
			t.Fatalf("%s: %v", r.GUN, r.Err)
		}
	}
}

// TestDestinationAhead: once the destination holds newer data than the
// source (it took the repository over, or mirrored a newer state), a run
// from the old source changes nothing and says so; another repository
// under the same name is still refused.
func TestDestinationAhead(t *testing.T) {
	dst := newSignet(t)
	dir := filepath.Join(t.TempDir(), "archive")
	archive, err := NewArchiveSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sink  Sink
		state func() string
	}{
		{dst.sink(t), func() string { return fmt.Sprint(dst.rows(t, gun)) }},
		{archive, func() string { return fmt.Sprint(modTimes(t, dir)) }},
	} {
		t.Run(fmt.Sprintf("%T", tc.sink), func(t *testing.T) {
			src := newTUFRepo(t, gun)
			old := serveTUF(t, testtuf.New(t, gun))
			old.ReplaceFiles(src.Server) // the source as it is now, at root v2
			wantOutcome(t, one(t, serverSource(t, src.URL), tc.sink, gun), Copied)
			src.Root = src.CertKey()
			if err := src.Repo.ReplaceBaseKeys(data.CanonicalRootRole, src.Root); err != nil {
				t.Fatal(err)
			}
			src.AddTarget(data.CanonicalTargetsRole, "v4", "manifest v4")
			src.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			wantOutcome(t, one(t, serverSource(t, src.URL), tc.sink, gun), Copied)
			before := tc.state()

			r := one(t, serverSource(t, old.URL), tc.sink, gun)
			wantOutcome(t, r, Unchanged)
			if r.Anchor != "the destination's root v2 (the destination has moved on to v3)" {
				t.Fatalf("anchor %q", r.Anchor)
			}
			if after := tc.state(); after != before {
				t.Fatalf("the destination changed:\n%s\nwas\n%s", after, before)
			}

			r = one(t, serverSource(t, newTUFRepo(t, gun).URL), tc.sink, gun)
			if r.Outcome != Failed || !strings.Contains(r.Err.Error(), "does not extend the destination's root v3") {
				t.Fatalf("impostor: %s %v", r.Outcome, r.Err)
			}
		})
	}
}
