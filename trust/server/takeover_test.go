package server

import (
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"

	"github.com/signet-project/signet/internal/testlog"
	"github.com/signet-project/signet/internal/testtuf"
	"github.com/signet-project/signet/trust/verify"
)

// expireServerSigned re-signs o's snapshot and timestamp with expiries in
// the past, as a repository nobody published to for a while looks on an
// old server that stopped re-signing.
func expireServerSigned(t *testing.T, o *testtuf.Server, roles ...data.RoleName) {
	t.Helper()
	past := time.Now().Add(-time.Hour)
	for _, r := range roles {
		var (
			sg  *data.Signed
			err error
		)
		if r == data.CanonicalSnapshotRole {
			sg, err = o.Repo.SignSnapshot(past)
		} else {
			sg, err = o.Repo.SignTimestamp(past)
		}
		if err != nil {
			t.Fatal(err)
		}
		o.Put(r.String(), testtuf.Marshal(t, sg))
	}
}

// TestImportedExpiredDataServedAsStored: before the take-over the server
// holds no key to sign an imported repository with, so an expired
// timestamp and snapshot are served as they are (never a 404, never a
// timestamp signed by a key root does not list), and a reader pinning
// that snapshot (the proxy's archive mode) accepts them.
func TestImportedExpiredDataServedAsStored(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := oldRepo(t)
			expireServerSigned(t, o, data.CanonicalSnapshotRole, data.CanonicalTimestampRole)
			logs := &testlog.Buffer{}
			hs, srv := startServer(t, dsn(t), Options{AllowImport: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})

			a := mustImport(t, hs.URL, exported(o)...)
			if strings.Join(a.Expired, ",") != "snapshot,timestamp" {
				t.Fatalf("expired = %v, want [snapshot timestamp]", a.Expired)
			}
			for i := 0; i < 2; i++ {
				for _, f := range []string{"timestamp.json", "snapshot.json"} {
					code, got := getRaw(t, metaURL(hs.URL, f))
					if code != http.StatusOK || string(got) != string(o.File(f)) {
						t.Fatalf("GET %s: %d, same bytes as imported: %v\n%s", f, code, string(got) == string(o.File(f)), got)
					}
				}
			}
			if n := strings.Count(logs.String(), "serving imported timestamp and snapshot as stored"); n != 1 {
				t.Fatalf("logged serving as stored %d times, want once:\n%s", n, logs)
			}
			_, cur, err := srv.store.GetCurrent(data.GUN(migratedGUN), data.CanonicalTimestampRole)
			if err != nil || string(cur) != string(o.File("timestamp.json")) {
				t.Fatalf("stored timestamp changed by reads (err %v)", err)
			}

			fetch := verify.HTTPFetcher{Server: hs.URL, GUN: migratedGUN}
			_, _, err = verify.Update(t.Context(), verify.Request{GUN: migratedGUN, Fetcher: fetch, Pin: verify.Pin{TOFU: true}, Now: time.Now()})
			var ve *verify.Error
			if !errors.As(err, &ve) || ve.Reason != verify.ReasonExpired {
				t.Fatalf("plain read of the expired data: %v, want %s", err, verify.ReasonExpired)
			}
			pin, _ := hex.DecodeString(a.SnapshotSHA256)
			_, res, err := verify.Update(t.Context(), verify.Request{GUN: migratedGUN, Fetcher: fetch, Pin: verify.Pin{TOFU: true}, Now: time.Now(), ArchiveSnapshot: pin})
			if err != nil {
				t.Fatalf("archive read of the expired data: %v", err)
			}
			if _, _, err := res.Lookup(migratedGUN, "v1", []string{releasesRole.String(), "targets"}); err != nil {
				t.Fatalf("archive lookup of v1: %v", err)
			}
		})
	}
}

// serverKey GETs the server's key for role of the migrated repository.
func serverKey(t *testing.T, url, role string) data.PublicKey {
	t.Helper()
	var raw canonicaljson.RawMessage
	getJSON(t, url+"/v2/"+migratedGUN+"/_trust/tuf/"+role+".key", &raw)
	k, err := data.UnmarshalPublicKey(raw)
	if err != nil {
		t.Fatalf("parse %s key: %v", role, err)
	}
	return k
}

// takeOver signs the next root of o naming the server's timestamp and
// snapshot keys (what `signet rotate ... --server-managed` uploads) and
// publishes it alone.
func takeOver(t *testing.T, url string, o *testtuf.Server) (tsKey, snKey data.PublicKey) {
	t.Helper()
	tsKey, snKey = serverKey(t, url, "timestamp"), serverKey(t, url, "snapshot")
	if err := o.Repo.ReplaceBaseKeys(data.CanonicalTimestampRole, tsKey); err != nil {
		t.Fatal(err)
	}
	if err := o.Repo.ReplaceBaseKeys(data.CanonicalSnapshotRole, snKey); err != nil {
		t.Fatal(err)
	}
	root, err := o.Repo.SignRoot(data.DefaultExpires(data.CanonicalRootRole), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, url, migratedGUN, file{"root.json", testtuf.Marshal(t, root)})
	return tsKey, snKey
}

// wantSignedBy checks that the served role is signed by key, unexpired,
// at version.
func wantSignedBy(t *testing.T, url string, role data.RoleName, key data.PublicKey, version int) {
	t.Helper()
	var sg data.Signed
	getJSON(t, metaURL(url, role.String()+".json"), &sg)
	if err := signed.VerifySignatures(&sg, data.BaseRole{Name: role, Keys: data.Keys{key.ID(): key}, Threshold: 1}); err != nil {
		t.Fatalf("%s not signed by the server's key %s: %v", role, key.ID(), err)
	}
	var common data.SignedCommon
	if err := canonicaljson.Unmarshal(*sg.Signed, &common); err != nil {
		t.Fatal(err)
	}
	if common.Version != version || !common.Expires.After(time.Now()) {
		t.Fatalf("%s version %d expiring %s, want version %d unexpired", role, common.Version, common.Expires, version)
	}
}

// TestTakeOverAfterImport imports a repository whose timestamp has
// expired and whose snapshot and timestamp keys the old server held. A
// publish is refused until the take-over, which is a root-only update
// naming the server's keys; the server then signs snapshot and timestamp
// itself, the real notary CLI with the old root cached lists the
// repository, and publishing works again.
func TestTakeOverAfterImport(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := oldRepo(t)
			expireServerSigned(t, o, data.CanonicalTimestampRole)
			oldRoot := o.File("root.json")
			imported := exported(o)
			hs, srv := startServer(t, dsn(t), Options{AllowImport: true})
			mustImport(t, hs.URL, imported...)
			tsVersion := fileRV(t, file{"timestamp.json", o.File("timestamp.json")}).Version
			snVersion := fileRV(t, file{"snapshot.json", o.File("snapshot.json")}).Version

			// A publisher before the take-over is told what to run.
			o.AddTarget(data.CanonicalTargetsRole, "v2", "manifest two")
			targets, err := o.Repo.SignTargets(data.CanonicalTargetsRole, time.Now().AddDate(1, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			targetsV2 := file{"targets.json", testtuf.Marshal(t, targets)}
			code, errCode, msg := post(t, hs.URL, migratedGUN, targetsV2)
			want := "still the old trust server's (imported trust data): take the repository over with `signet rotate " + migratedGUN + " timestamp snapshot --server-managed` (or `signet migrate`)"
			if code != http.StatusBadRequest || errCode != "INVALID_UPDATE" || !strings.Contains(msg, want) {
				t.Fatalf("publish before the take-over: %d %s %q, want 400 INVALID_UPDATE with %q", code, errCode, msg, want)
			}
			wantStoredBytes(t, srv.store, imported)

			// The keys handed out for the take-over stay the same.
			if a, b := serverKey(t, hs.URL, "timestamp").ID(), serverKey(t, hs.URL, "timestamp").ID(); a != b {
				t.Fatalf("timestamp.key answered %s, then %s", a, b)
			}
			tsKey, snKey := takeOver(t, hs.URL, o)
			wantSignedBy(t, hs.URL, data.CanonicalTimestampRole, tsKey, tsVersion+1)
			wantSignedBy(t, hs.URL, data.CanonicalSnapshotRole, snKey, snVersion+1)

			n := notaryWithCachedRoot(t, oldRoot)
			if out := n.must(hs.URL, "list", migratedGUN); !strings.Contains(out, "v1") {
				t.Fatalf("notary list after the take-over lacks v1:\n%s", out)
			}
			// The cache counts: a client that trusts another root for the
			// name refuses the repository.
			stranger := testtuf.New(t, migratedGUN)
			stranger.Publish(data.CanonicalRootRole)
			if out, err := notaryWithCachedRoot(t, stranger.File("root.json")).run(hs.URL, "list", migratedGUN); err == nil || !strings.Contains(out, "could not rotate trust to a new trusted root") {
				t.Fatalf("notary list trusting another root: err %v, want a failure to rotate trust:\n%s", err, out)
			}

			mustPost(t, hs.URL, migratedGUN, targetsV2)
			out := n.must(hs.URL, "list", migratedGUN)
			if !strings.Contains(out, "v2") || !strings.Contains(out, sha256Hex([]byte("manifest two"))) {
				t.Fatalf("notary list after publishing v2 lacks it:\n%s", out)
			}
			wantSignedBy(t, hs.URL, data.CanonicalTimestampRole, tsKey, tsVersion+2)
		})
	}
}

// notaryWithCachedRoot is the notary CLI with a trust dir whose cache
// holds root for the migrated repository, as a client that read it from
// the old server has.
func notaryWithCachedRoot(t *testing.T, root []byte) *notaryCLI {
	t.Helper()
	n := newNotaryCLI(t)
	cache := filepath.Join(n.trustDir, "tuf", migratedGUN, "metadata")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "root.json"), root, 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}
