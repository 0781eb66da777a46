package verify

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/internal/testtuf"
)

const gun = "registry.example.com/team/app"

// fakeServer is a trust server whose keys (all of them) the test holds
// (internal/testtuf), read directly as a Fetcher.
type fakeServer struct{ *testtuf.Server }

func newFakeServer(t *testing.T) *fakeServer { return &fakeServer{testtuf.New(t, gun)} }

func (f *fakeServer) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	b, ok, err := f.Get(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{Name: name, Max: max}
	}
	return b, nil
}

func (f *fakeServer) rootID() string {
	id, err := utils.CanonicalKeyID(f.Root)
	if err != nil {
		f.T.Fatal(err)
	}
	return f.Root.ID() + ":" + id
}

var (
	digest  = testtuf.Digest
	sum     = testtuf.Sum
	marshal = func(t *testing.T, s *data.Signed) []byte { return testtuf.Marshal(t, s) }
)

func tofu() Pin { return Pin{TOFU: true} }

func mustUpdate(t *testing.T, f *fakeServer, prev *State, now time.Time, roles ...string) (*State, *Result) {
	t.Helper()
	st, res, err := update(prev, f, tofu(), now, roles...)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	return st, res
}

// update runs Update for the test repository.
func update(prev *State, f Fetcher, pin Pin, now time.Time, roles ...string) (*State, *Result, error) {
	return Update(context.Background(), Request{GUN: gun, Prev: prev, Fetcher: f, Pin: pin, Now: now, Roles: roles})
}

// wantReason checks err is a verification error with one of reasons.
func wantReason(t *testing.T, err error, reasons ...string) {
	t.Helper()
	var ve *Error
	if !errors.As(err, &ve) || !slices.Contains(reasons, ve.Reason) {
		t.Fatalf("got %v, want a verification error %q", err, reasons)
	}
}

func TestHonestUpdateAndDelegations(t *testing.T) {
	f := newFakeServer(t)
	f.AddTarget(data.CanonicalTargetsRole, "v1", "manifest v1")
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	st, res := mustUpdate(t, f, nil, time.Now(), "targets/releases")
	if got := res.Targets["targets"]["v1"]; string(got.SHA256) != string(digest("manifest v1")) || got.Length != 11 {
		t.Fatalf("v1 = %+v", got)
	}
	if _, ok := res.Targets["targets/releases"]; ok {
		t.Fatal("targets/releases loaded though it does not exist")
	}

	// Add targets/releases with threshold 1 and sign into it.
	rel := data.RoleName("targets/releases")
	k, _ := f.CS.Create(rel, gun, data.ECDSAKey)
	if err := f.Repo.UpdateDelegationKeys(rel, data.KeyList{k}, nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.Repo.UpdateDelegationPaths(rel, []string{""}, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Repo.InitTargets(rel); err != nil {
		t.Fatal(err)
	}
	f.AddTarget(rel, "v2", "manifest v2")
	f.Publish(data.CanonicalTargetsRole, rel)
	_, res = mustUpdate(t, f, st, time.Now(), "targets/releases")
	if got := res.Targets["targets/releases"]["v2"]; string(got.SHA256) != string(digest("manifest v2")) {
		t.Fatalf("releases v2 = %+v", got)
	}
}

func TestAttacks(t *testing.T) {
	rel := data.RoleName("targets/releases")
	tests := []struct {
		name   string
		attack func(t *testing.T, f *fakeServer, st *State) (*State, time.Time)
		reason string
	}{
		{"timestamp rolled back", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			old := f.File("timestamp.json")
			f.AddTarget(data.CanonicalTargetsRole, "v2", "x")
			f.Publish(data.CanonicalTargetsRole)
			st, _ = mustUpdate(t, f, st, time.Now())
			f.SetFile("timestamp.json", old)
			return st, time.Now()
		}, ReasonRollback},
		{"frozen: timestamp expired", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			return st, time.Now().Add(15 * 24 * time.Hour)
		}, ReasonExpired},
		{"mix and match: old snapshot under the new name", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			oldSnap := f.File("snapshot.json")
			f.AddTarget(data.CanonicalTargetsRole, "v2", "x")
			f.Publish(data.CanonicalTargetsRole)
			// Padded to the real one's length, so the hash check decides;
			// an old snapshot longer than the new one is cut off by the
			// length the timestamp declares instead.
			want := len(f.File("snapshot.json"))
			if len(oldSnap) < want {
				oldSnap = append(oldSnap, []byte(strings.Repeat(" ", want-len(oldSnap)))...)
			}
			f.SetFile("snapshot."+sum(f.File("snapshot.json"))+".json", oldSnap)
			return st, time.Now()
		}, ReasonHash + "|" + ReasonTooLarge},
		{"targets not matching the snapshot", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			oldTargets := f.File("targets.json")
			f.AddTarget(data.CanonicalTargetsRole, "v2", "x")
			f.Publish(data.CanonicalTargetsRole)
			f.SetFile("targets."+sum(f.File("targets.json"))+".json", oldTargets)
			return st, time.Now()
		}, ReasonHash},
		{"delegation below threshold", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			k1, _ := f.CS.Create(rel, gun, data.ECDSAKey)
			k2, _ := f.CS.Create(rel, gun, data.ECDSAKey)
			f.Repo.UpdateDelegationKeys(rel, data.KeyList{k1, k2}, nil, 2)
			f.Repo.UpdateDelegationPaths(rel, []string{""}, nil, false)
			f.Repo.InitTargets(rel)
			f.Publish(data.CanonicalTargetsRole)
			// A malicious server signs releases with one of two keys.
			f.AddTarget(rel, "v1", "evil")
			tg := f.Repo.Targets[rel]
			tg.Signed.Version++
			s, _ := tg.ToSigned()
			s.Signatures = nil
			if err := signed.Sign(f.CS, s, []data.PublicKey{k1}, 1, nil); err != nil {
				t.Fatal(err)
			}
			f.ServeRaw(rel, marshal(t, s))
			return st, time.Now()
		}, ReasonSignature},
		{"delegation signed by an unlisted key", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			k1, _ := f.CS.Create(rel, gun, data.ECDSAKey)
			f.Repo.UpdateDelegationKeys(rel, data.KeyList{k1}, nil, 1)
			f.Repo.UpdateDelegationPaths(rel, []string{""}, nil, false)
			f.Repo.InitTargets(rel)
			f.Publish(data.CanonicalTargetsRole)
			rogue, _ := f.CS.Create("targets/rogue", gun, data.ECDSAKey)
			f.AddTarget(rel, "v1", "evil")
			tg := f.Repo.Targets[rel]
			tg.Signed.Version++
			s, _ := tg.ToSigned()
			s.Signatures = nil
			signed.Sign(f.CS, s, []data.PublicKey{rogue}, 1, nil)
			f.ServeRaw(rel, marshal(t, s))
			return st, time.Now()
		}, ReasonSignature},
		{"oversized timestamp", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			f.SetFile("timestamp.json", []byte(strings.Repeat(" ", MaxTimestampBytes+1)))
			return st, time.Now()
		}, ReasonTooLarge},
		{"root replaced without the old root's signature", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			other := newFakeServer(t)
			other.Repo.Root.Signed.Version = 1
			other.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			f.ReplaceFiles(other.Server)
			return st, time.Now()
		}, ReasonSignature},
		{"root rolled back", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			v1 := f.File("root.json")
			newRoot := f.CertKey()
			f.Repo.ReplaceBaseKeys(data.CanonicalRootRole, newRoot)
			f.Publish(data.CanonicalRootRole)
			st, _ = mustUpdate(t, f, st, time.Now())
			f.SetFile("root.json", v1)
			return st, time.Now()
		}, ReasonRollback},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			f.AddTarget(data.CanonicalTargetsRole, "v1", "manifest v1")
			f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			st, _ := mustUpdate(t, f, nil, time.Now(), rel.String())
			st, now := tc.attack(t, f, st)
			// The engine denies: either the update fails, or the lookup
			// of v1 along docker's path reaches a failed role.
			_, res, err := update(st, f, tofu(), now, rel.String())
			if err == nil {
				_, _, err = res.Lookup(gun, "v1", DockerPath)
			}
			wantReason(t, err, strings.Split(tc.reason, "|")...)
		})
	}
}

func TestRootRotationWalksVersions(t *testing.T) {
	f := newFakeServer(t)
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	st, _ := mustUpdate(t, f, nil, time.Now())
	for i := 0; i < 3; i++ {
		f.Repo.ReplaceBaseKeys(data.CanonicalRootRole, f.CertKey())
		f.Publish(data.CanonicalRootRole)
	}
	st2, _ := mustUpdate(t, f, st, time.Now())
	if v, _ := rootVersion(st2.Root); v != 4 {
		t.Fatalf("trusted root version %d, want 4", v)
	}
	// Without the intermediate versions the walk fails.
	f.SetFile("3.root.json", nil)
	if _, _, err := update(st, f, tofu(), time.Now()); err == nil {
		t.Fatal("rotation without version 3 succeeded")
	}
}

func TestPins(t *testing.T) {
	f := newFakeServer(t)
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	id, _ := utils.CanonicalKeyID(f.Root)
	cases := []struct {
		name string
		pin  Pin
		ok   bool
	}{
		{"cert ID of the root", Pin{CertIDs: []string{f.Root.ID()}}, true},
		{"other cert ID", Pin{CertIDs: []string{strings.Repeat("a", 64)}}, false},
		{"no pin and no TOFU", Pin{}, false},
		{"TOFU", Pin{TOFU: true}, true},
	}
	_ = id
	for _, tc := range cases {
		_, _, err := update(nil, f, tc.pin, time.Now())
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil {
			wantReason(t, err, ReasonRoot)
		}
	}
}

func TestRefresherCachesAndSurvivesOutage(t *testing.T) {
	f := newFakeServer(t)
	f.AddTarget(data.CanonicalTargetsRole, "v1", "manifest v1")
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	now := time.Now()
	r := &Refresher{Interval: time.Minute, Now: func() time.Time { return now }}
	src := Source{Key: gun, GUN: gun, Fetcher: f, Pin: tofu()}

	// A burst of 50 requests costs one refresh.
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := r.Get(context.Background(), src); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	calls := f.Calls()
	if calls > 8 {
		t.Fatalf("%d fetches for a burst, want one refresh (about 4)", calls)
	}
	if _, cached, _ := r.Get(context.Background(), src); !cached {
		t.Fatal("second Get within the interval was not cached")
	}
	// Trust server down: verified data is used until the timestamp expires,
	// and the server is retried once per interval, not per request.
	f.SetDown(true)
	now = now.Add(2 * time.Minute)
	if res, _, err := r.Get(context.Background(), src); err != nil || res.Targets["targets"]["v1"].Length != 11 {
		t.Fatalf("during outage: %v", err)
	}
	tried := f.Calls()
	for i := 0; i < 10; i++ {
		if _, cached, err := r.Get(context.Background(), src); err != nil || !cached {
			t.Fatalf("request %d during the outage: cached %v, %v", i, cached, err)
		}
	}
	if f.Calls() != tried {
		t.Fatalf("%d fetches for 10 requests within one interval of a failed refresh", f.Calls()-tried)
	}
	now = now.Add(15 * 24 * time.Hour)
	if _, _, err := r.Get(context.Background(), src); err == nil {
		t.Fatal("past the timestamp's expiry with the server down, Get succeeded")
	}
}
