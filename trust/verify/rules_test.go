package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
)

const releases = data.RoleName("targets/releases")

func (f *fakeServer) withReleases() data.PublicKey { return f.Delegate(releases) }

// TestLookupRules: one table for the rules every reader (signet verify,
// inspect, the proxy) gets from the engine.
func TestLookupRules(t *testing.T) {
	type want struct {
		tag    string
		digest string // content signed; "" = denied
		role   string
		reason string // *Error reason when denied by a failed role
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fakeServer)
		want  []want
	}{
		{"releases preferred over targets", func(t *testing.T, f *fakeServer) {
			f.withReleases()
			f.AddTarget(releases, "v1", "rel v1")
			f.Publish(data.CanonicalTargetsRole, releases)
		}, []want{{tag: "v1", digest: "rel v1", role: "targets/releases"}, {tag: "base", digest: "base", role: "targets"}}},
		{"signer removed: releases has no keys and is passed over", func(t *testing.T, f *fakeServer) {
			k := f.withReleases()
			f.AddTarget(releases, "v1", "rel v1")
			f.AddTarget(releases, "alice-only", "alice")
			f.Publish(data.CanonicalTargetsRole, releases)
			// docker trust signer remove: the key goes, the file stays.
			if err := f.Repo.UpdateDelegationKeys(releases, nil, []string{k.ID()}, 1); err != nil {
				t.Fatal(err)
			}
			f.Publish(data.CanonicalTargetsRole)
		}, []want{{tag: "v1", digest: "targets v1", role: "targets"}, {tag: "alice-only"}, {tag: "base", digest: "base", role: "targets"}}},
		{"delegated but never signed into: empty, passed over", func(t *testing.T, f *fakeServer) {
			f.withReleases()
			delete(f.Repo.Targets, releases) // as notary: no file until a target is added
			f.Publish(data.CanonicalTargetsRole)
		}, []want{{tag: "v1", digest: "targets v1", role: "targets"}}},
		{"releases with a bad signature ends the lookup, though targets has the tag", func(t *testing.T, f *fakeServer) {
			f.withReleases()
			f.AddTarget(releases, "v1", "rel v1")
			f.Publish(data.CanonicalTargetsRole, releases)
			rogue, _ := f.CS.Create("targets/rogue", gun, data.ECDSAKey)
			f.AddTarget(releases, "v1", "evil")
			tg := f.Repo.Targets[releases]
			tg.Signed.Version++
			s, _ := tg.ToSigned()
			s.Signatures = nil
			if err := signed.Sign(f.CS, s, []data.PublicKey{rogue}, 1, nil); err != nil {
				t.Fatal(err)
			}
			f.ServeRaw(releases, marshal(t, s))
		}, []want{{tag: "v1", reason: ReasonSignature}, {tag: "base", reason: ReasonSignature}}},
		{"expired releases ends the lookup, though targets has the tag", func(t *testing.T, f *fakeServer) {
			f.withReleases()
			f.AddTarget(releases, "v1", "rel v1")
			s, err := f.Repo.SignTargets(releases, time.Now().Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			f.Repo.Targets[releases].Signatures = s.Signatures
			f.Publish(data.CanonicalTargetsRole)
			f.ServeRaw(releases, marshal(t, s))
		}, []want{{tag: "v1", reason: ReasonExpired}}},
		{"releases listed in the snapshot but missing on the server", func(t *testing.T, f *fakeServer) {
			f.withReleases()
			f.AddTarget(releases, "v1", "rel v1")
			f.Publish(data.CanonicalTargetsRole, releases)
			for _, name := range f.Files() {
				if strings.HasPrefix(name, "targets/releases") {
					f.SetFile(name, nil)
				}
			}
		}, []want{{tag: "v1", reason: ReasonMissing}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			f.AddTarget(data.CanonicalTargetsRole, "v1", "targets v1")
			f.AddTarget(data.CanonicalTargetsRole, "base", "base")
			f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			tc.setup(t, f)
			_, res, err := update(nil, f, tofu(), time.Now(), releases.String())
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			for _, w := range tc.want {
				got, role, err := res.Lookup(gun, w.tag, DockerPath)
				switch {
				case w.digest != "":
					if err != nil || string(got.SHA256) != string(digest(w.digest)) || role != w.role {
						t.Errorf("%s: got %x from %q (%v), want %q from %s", w.tag, got.SHA256, role, err, w.digest, w.role)
					}
				case w.reason != "":
					wantReason(t, err, w.reason)
				default:
					var ns *NotSignedError
					if !errors.As(err, &ns) {
						t.Errorf("%s: got %v, want not signed", w.tag, err)
					}
				}
			}
		})
	}
}

func TestSignerRemovedSaysWhy(t *testing.T) {
	f := newFakeServer(t)
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	k := f.withReleases()
	f.AddTarget(releases, "v2", "alice")
	f.Publish(data.CanonicalTargetsRole, releases)
	f.Repo.UpdateDelegationKeys(releases, nil, []string{k.ID()}, 1)
	f.Publish(data.CanonicalTargetsRole)
	_, res, err := update(nil, f, tofu(), time.Now(), releases.String())
	if err != nil {
		t.Fatal(err)
	}
	if st := res.Roles[releases.String()].Status; st != RoleDisabled {
		t.Fatalf("releases status %v, want disabled", st)
	}
	_, _, err = res.Lookup(gun, "v2", DockerPath)
	if err == nil || !strings.Contains(err.Error(), "targets/releases has no keys") {
		t.Fatalf("got %v, want a denial naming the keyless releases", err)
	}
	// Named signers: a removed signer cannot satisfy a policy.
	if _, err := res.LookupAll(gun, "v2", []string{releases.String()}); err == nil || !strings.Contains(err.Error(), "has no keys") {
		t.Fatalf("LookupAll: %v", err)
	}
}

func TestLookupAllSignersMustAgree(t *testing.T) {
	f := newFakeServer(t)
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	f.withReleases()
	ci := data.RoleName("targets/ci")
	k, _ := f.CS.Create(ci, gun, data.ECDSAKey)
	f.Repo.UpdateDelegationKeys(ci, data.KeyList{k}, nil, 1)
	f.Repo.UpdateDelegationPaths(ci, []string{""}, nil, false)
	f.Repo.InitTargets(ci)
	f.AddTarget(releases, "same", "m1")
	f.AddTarget(ci, "same", "m1")
	f.AddTarget(releases, "split", "m1")
	f.AddTarget(ci, "split", "m2")
	f.AddTarget(releases, "one", "m1")
	f.Publish(data.CanonicalTargetsRole, releases, ci)
	signers := []string{releases.String(), ci.String()}
	_, res, err := update(nil, f, tofu(), time.Now(), signers...)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tag, detail string
	}{
		{"same", ""},
		{"split", "signers disagree"},
		{"one", "not signed by required signer targets/ci"},
	}
	for _, c := range cases {
		_, err := res.LookupAll(gun, c.tag, signers)
		if (c.detail == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.detail)) {
			t.Errorf("%s: %v, want %q", c.tag, err, c.detail)
		}
	}
	tags, _, err := res.Signed(gun, Rule{Signers: signers})
	if err != nil || len(tags) != 1 || tags[0] != "same" {
		t.Fatalf("Signed = %v, %v", tags, err)
	}
}

// TestSizeCapsOverHTTP serves metadata over real HTTP and checks that an
// oversized targets file declared by a (server-signed) snapshot is
// refused after at most the cap was read, not downloaded whole.
func TestSizeCapsOverHTTP(t *testing.T) {
	f := newFakeServer(t)
	f.AddTarget(data.CanonicalTargetsRole, "v1", "m")
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	huge := []byte(`{"signed":{"_type":"Targets","targets":{"x":"` + strings.Repeat("a", 150<<20) + `"}}}`)
	f.ServeRaw(data.CanonicalTargetsRole, huge)
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/v2/"+gun+"/_trust/tuf/")
		b, err := f.Fetch(r.Context(), name, 1<<40)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		// No Content-Length: the reader must stop on its own.
		for len(b) > 0 {
			n := min(len(b), 64<<10)
			m, err := w.Write(b[:n])
			written.Add(int64(m))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	}))
	defer srv.Close()
	_, _, err := update(nil, HTTPFetcher{Server: srv.URL, GUN: gun}, tofu(), time.Now())
	wantReason(t, err, ReasonTooLarge)
	srv.CloseClientConnections()
	if w := written.Load(); w > MaxMetadataBytes+16<<20 {
		t.Fatalf("server wrote %d bytes before the reader gave up; cap is %d", w, MaxMetadataBytes)
	}
}

// TestUpdateBudget: many delegations, each within the per-file cap, do
// not add up to more than MaxUpdateBytes.
func TestUpdateBudget(t *testing.T) {
	f := newFakeServer(t)
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	var roles []string
	for _, n := range []string{"a", "b", "c"} {
		r := data.RoleName("targets/" + n)
		k, _ := f.CS.Create(r, gun, data.ECDSAKey)
		f.Repo.UpdateDelegationKeys(r, data.KeyList{k}, nil, 1)
		f.Repo.UpdateDelegationPaths(r, []string{""}, nil, false)
		f.Repo.InitTargets(r)
		f.AddTarget(r, "t", strings.Repeat("x", 10))
		f.Repo.Targets[r].Signed.Targets["pad"] = data.FileMeta{Length: 1, Hashes: data.Hashes{"sha256": digest("p")},
			Custom: rawJSON(`"` + strings.Repeat("p", 30<<20) + `"`)}
		roles = append(roles, r.String())
	}
	f.Publish(append([]data.RoleName{data.CanonicalTargetsRole}, data.RoleName("targets/a"), data.RoleName("targets/b"), data.RoleName("targets/c"))...)
	_, res, err := update(nil, f, tofu(), time.Now(), roles...)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range roles {
		if ro := res.Roles[r]; ro.Status == RoleFailed {
			failed++
			if ro.Err.Reason != ReasonTooLarge {
				t.Errorf("%s failed with %v, want too large", r, ro.Err)
			}
		}
	}
	if failed == 0 {
		t.Fatal("three 30 MiB delegations all loaded; the update budget is 64 MiB")
	}
}

func TestRefresherReportsStale(t *testing.T) {
	f := newFakeServer(t)
	f.AddTarget(data.CanonicalTargetsRole, "v1", "m")
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	now := time.Now()
	var refreshErrs []error
	r := &Refresher{Interval: time.Minute, Now: func() time.Time { return now },
		OnRefresh: func(_ time.Duration, err error) { refreshErrs = append(refreshErrs, err) }}
	src := Source{Key: "k", GUN: gun, Fetcher: f, Pin: tofu()}
	if _, _, err := r.Get(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if s := r.Stale(); len(s) != 0 {
		t.Fatalf("stale after a good refresh: %+v", s)
	}
	// The server starts answering with a timestamp that does not verify.
	good := f.File("timestamp.json")
	f.SetFile("timestamp.json", []byte(strings.Replace(string(good), `"expires":"2`, `"expires":"3`, 1)))
	now = now.Add(2 * time.Minute)
	if res, _, err := r.Get(context.Background(), src); err != nil || res.Targets["targets"]["v1"].Length != 1 {
		t.Fatalf("with rejected data: %v", err)
	}
	s := r.Stale()
	if len(s) != 1 || !s[0].Rejected || s[0].GUN != gun {
		t.Fatalf("stale = %+v, want one rejected entry", s)
	}
	var ve *Error
	if last := refreshErrs[len(refreshErrs)-1]; !errors.As(last, &ve) {
		t.Fatalf("OnRefresh got %v, want a verification error", last)
	}
	// Outage: stale, not rejected.
	f.SetFile("timestamp.json", good)
	f.SetDown(true)
	now = now.Add(2 * time.Minute)
	r.Get(context.Background(), src)
	if s := r.Stale(); len(s) != 1 || s[0].Rejected {
		t.Fatalf("stale = %+v, want one unreachable entry", s)
	}
	f.SetDown(false)
	now = now.Add(2 * time.Minute)
	r.Get(context.Background(), src)
	if s := r.Stale(); len(s) != 0 {
		t.Fatalf("stale after recovery: %+v", s)
	}
}

func rawJSON(s string) *canonicaljson.RawMessage { r := canonicaljson.RawMessage(s); return &r }

// TestDroppedDelegationIsRollback: a snapshot that stops listing a
// delegation a reader verified before (still delegated, with keys) would
// let lookups fall through to older entries in targets; a reader with
// history denies it as a rollback.
func TestDroppedDelegationIsRollback(t *testing.T) {
	f := newFakeServer(t)
	f.AddTarget(data.CanonicalTargetsRole, "v1", "old")
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	f.withReleases()
	f.AddTarget(releases, "v1", "new")
	f.Publish(data.CanonicalTargetsRole, releases)
	st, _ := mustUpdate(t, f, nil, time.Now(), releases.String())

	// The server's snapshot drops targets/releases.
	delete(f.Repo.Snapshot.Signed.Meta, releases.String())
	f.ServeRaw(data.CanonicalTargetsRole, f.File("targets.json"))
	_, res, err := update(st, f, tofu(), time.Now(), releases.String())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = res.Lookup(gun, "v1", DockerPath)
	wantReason(t, err, ReasonRollback)

	// A reader without history cannot tell (as docker and notary).
	_, res, err = update(nil, f, tofu(), time.Now(), releases.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, role, err := res.Lookup(gun, "v1", DockerPath); err != nil || role != "targets" || string(got.SHA256) != string(digest("old")) {
		t.Fatalf("fresh reader: %x from %s, %v", got.SHA256, role, err)
	}
}
