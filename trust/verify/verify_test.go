package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/passphrase"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"
)

const gun = "registry.example.com/team/app"

// fakeServer is a trust server whose keys (all of them) the test holds:
// it builds real TUF metadata with notary's tuf package and serves it
// from memory, so tests can publish honestly and then misbehave.
type fakeServer struct {
	t     *testing.T
	cs    *cryptoservice.CryptoService
	repo  *tuf.Repo
	root  data.PublicKey
	files map[string][]byte
	mu    sync.Mutex
	calls int
	down  bool
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	cs := cryptoservice.NewCryptoService(trustmanager.NewKeyMemoryStore(passphrase.ConstantRetriever("pass")))
	f := &fakeServer{t: t, cs: cs, files: map[string][]byte{}}
	f.root = f.certKey()
	keys := map[data.RoleName]data.PublicKey{}
	for _, r := range []data.RoleName{data.CanonicalTargetsRole, data.CanonicalSnapshotRole, data.CanonicalTimestampRole} {
		k, err := cs.Create(r, gun, data.ECDSAKey)
		if err != nil {
			t.Fatal(err)
		}
		keys[r] = k
	}
	f.repo = tuf.NewRepo(cs)
	if err := f.repo.InitRoot(data.NewBaseRole(data.CanonicalRootRole, 1, f.root),
		data.NewBaseRole(data.CanonicalTimestampRole, 1, keys[data.CanonicalTimestampRole]),
		data.NewBaseRole(data.CanonicalSnapshotRole, 1, keys[data.CanonicalSnapshotRole]),
		data.NewBaseRole(data.CanonicalTargetsRole, 1, keys[data.CanonicalTargetsRole]), false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.InitTargets(data.CanonicalTargetsRole); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.InitSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.InitTimestamp(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeServer) certKey() data.PublicKey {
	pub, err := f.cs.Create(data.CanonicalRootRole, gun, data.ECDSAKey)
	if err != nil {
		f.t.Fatal(err)
	}
	priv, _, _ := f.cs.GetPrivateKey(pub.ID())
	cert, err := cryptoservice.GenerateCertificate(priv, gun, time.Now().Add(-time.Hour), time.Now().AddDate(10, 0, 0))
	if err != nil {
		f.t.Fatal(err)
	}
	return data.NewECDSAx509PublicKey(utils.CertToPEM(cert))
}

func digest(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func (f *fakeServer) addTarget(role data.RoleName, tag, content string) {
	if _, err := f.repo.AddTargets(role, data.Files{tag: {Length: int64(len(content)), Hashes: data.Hashes{"sha256": digest(content)}}}); err != nil {
		f.t.Fatal(err)
	}
}

func marshal(t *testing.T, s *data.Signed) []byte {
	b, err := canonicaljson.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// publish signs the dirty roles, snapshot and timestamp, and serves them.
func (f *fakeServer) publish(roles ...data.RoleName) {
	f.t.Helper()
	exp := time.Now().AddDate(1, 0, 0)
	for _, r := range roles {
		var s *data.Signed
		var err error
		if r == data.CanonicalRootRole {
			s, err = f.repo.SignRoot(data.DefaultExpires(r), nil)
		} else {
			s, err = f.repo.SignTargets(r, exp)
		}
		if err != nil {
			f.t.Fatalf("sign %s: %v", r, err)
		}
		b := marshal(f.t, s)
		f.put(r.String(), b)
	}
	sn, err := f.repo.SignSnapshot(exp)
	if err != nil {
		f.t.Fatal(err)
	}
	f.put("snapshot", marshal(f.t, sn))
	ts, err := f.repo.SignTimestamp(time.Now().Add(14 * 24 * time.Hour))
	if err != nil {
		f.t.Fatal(err)
	}
	f.put("timestamp", marshal(f.t, ts))
}

func (f *fakeServer) put(role string, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[role+".json"] = b
	f.files[role+"."+sum(b)+".json"] = b
	if role == "root" {
		f.files[fmt.Sprintf("%d.root.json", f.repo.Root.Signed.Version)] = b
	}
}

func (f *fakeServer) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return nil, errors.New("connection refused")
	}
	b, ok := f.files[name]
	if !ok {
		return nil, ErrNotFound
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{Name: name, Max: max}
	}
	return b, nil
}

func (f *fakeServer) rootID() string {
	id, err := utils.CanonicalKeyID(f.root)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.root.ID() + ":" + id
}

func tofu() Pin { return Pin{TOFU: true} }

func mustUpdate(t *testing.T, f *fakeServer, prev *State, now time.Time, roles ...string) (*State, *Result) {
	t.Helper()
	st, res, err := Update(context.Background(), gun, prev, f, tofu(), now, roles...)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	return st, res
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var ve *Error
	if !errors.As(err, &ve) || ve.Reason != reason {
		t.Fatalf("got %v, want a verification error %q", err, reason)
	}
}

func TestHonestUpdateAndDelegations(t *testing.T) {
	f := newFakeServer(t)
	f.addTarget(data.CanonicalTargetsRole, "v1", "manifest v1")
	f.publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	st, res := mustUpdate(t, f, nil, time.Now(), "targets/releases")
	if got := res.Targets["targets"]["v1"]; string(got.SHA256) != string(digest("manifest v1")) || got.Length != 11 {
		t.Fatalf("v1 = %+v", got)
	}
	if _, ok := res.Targets["targets/releases"]; ok {
		t.Fatal("targets/releases loaded though it does not exist")
	}

	// Add targets/releases with threshold 1 and sign into it.
	rel := data.RoleName("targets/releases")
	k, _ := f.cs.Create(rel, gun, data.ECDSAKey)
	if err := f.repo.UpdateDelegationKeys(rel, data.KeyList{k}, nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.UpdateDelegationPaths(rel, []string{""}, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.InitTargets(rel); err != nil {
		t.Fatal(err)
	}
	f.addTarget(rel, "v2", "manifest v2")
	f.publish(data.CanonicalTargetsRole, rel)
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
			old := f.files["timestamp.json"]
			f.addTarget(data.CanonicalTargetsRole, "v2", "x")
			f.publish(data.CanonicalTargetsRole)
			st, _ = mustUpdate(t, f, st, time.Now())
			f.files["timestamp.json"] = old
			return st, time.Now()
		}, ReasonRollback},
		{"frozen: timestamp expired", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			return st, time.Now().Add(15 * 24 * time.Hour)
		}, ReasonExpired},
		{"mix and match: old snapshot under the new name", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			oldSnap := f.files["snapshot.json"]
			f.addTarget(data.CanonicalTargetsRole, "v2", "x")
			f.publish(data.CanonicalTargetsRole)
			// Same length as the real one, so the hash check decides.
			want := len(f.files["snapshot.json"])
			if len(oldSnap) < want {
				oldSnap = append(oldSnap, []byte(strings.Repeat(" ", want-len(oldSnap)))...)
			}
			f.files["snapshot."+sum(f.files["snapshot.json"])+".json"] = oldSnap[:want]
			return st, time.Now()
		}, ReasonHash},
		{"targets not matching the snapshot", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			oldTargets := f.files["targets.json"]
			f.addTarget(data.CanonicalTargetsRole, "v2", "x")
			f.publish(data.CanonicalTargetsRole)
			f.files["targets."+sum(f.files["targets.json"])+".json"] = oldTargets
			return st, time.Now()
		}, ReasonHash},
		{"delegation below threshold", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			k1, _ := f.cs.Create(rel, gun, data.ECDSAKey)
			k2, _ := f.cs.Create(rel, gun, data.ECDSAKey)
			f.repo.UpdateDelegationKeys(rel, data.KeyList{k1, k2}, nil, 2)
			f.repo.UpdateDelegationPaths(rel, []string{""}, nil, false)
			f.repo.InitTargets(rel)
			f.publish(data.CanonicalTargetsRole)
			// A malicious server signs releases with one of two keys.
			f.addTarget(rel, "v1", "evil")
			tg := f.repo.Targets[rel]
			tg.Signed.Version++
			s, _ := tg.ToSigned()
			s.Signatures = nil
			if err := signed.Sign(f.cs, s, []data.PublicKey{k1}, 1, nil); err != nil {
				t.Fatal(err)
			}
			f.serveRaw(rel, marshal(t, s))
			return st, time.Now()
		}, ReasonSignature},
		{"delegation signed by an unlisted key", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			k1, _ := f.cs.Create(rel, gun, data.ECDSAKey)
			f.repo.UpdateDelegationKeys(rel, data.KeyList{k1}, nil, 1)
			f.repo.UpdateDelegationPaths(rel, []string{""}, nil, false)
			f.repo.InitTargets(rel)
			f.publish(data.CanonicalTargetsRole)
			rogue, _ := f.cs.Create("targets/rogue", gun, data.ECDSAKey)
			f.addTarget(rel, "v1", "evil")
			tg := f.repo.Targets[rel]
			tg.Signed.Version++
			s, _ := tg.ToSigned()
			s.Signatures = nil
			signed.Sign(f.cs, s, []data.PublicKey{rogue}, 1, nil)
			f.serveRaw(rel, marshal(t, s))
			return st, time.Now()
		}, ReasonSignature},
		{"oversized timestamp", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			f.files["timestamp.json"] = []byte(strings.Repeat(" ", MaxTimestampBytes+1))
			return st, time.Now()
		}, ReasonTooLarge},
		{"root replaced without the old root's signature", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			other := newFakeServer(t)
			other.repo.Root.Signed.Version = 1
			other.publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			f.files = other.files
			return st, time.Now()
		}, ReasonSignature},
		{"root rolled back", func(t *testing.T, f *fakeServer, st *State) (*State, time.Time) {
			v1 := f.files["root.json"]
			newRoot := f.certKey()
			f.repo.ReplaceBaseKeys(data.CanonicalRootRole, newRoot)
			f.publish(data.CanonicalRootRole)
			st, _ = mustUpdate(t, f, st, time.Now())
			f.files["root.json"] = v1
			return st, time.Now()
		}, ReasonRollback},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			f.addTarget(data.CanonicalTargetsRole, "v1", "manifest v1")
			f.publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			st, _ := mustUpdate(t, f, nil, time.Now(), rel.String())
			st, now := tc.attack(t, f, st)
			_, _, err := Update(context.Background(), gun, st, f, tofu(), now, rel.String())
			wantReason(t, err, tc.reason)
		})
	}
}

// serveRaw serves b as role, with a snapshot and timestamp signed over
// it by the (malicious) server's own keys.
func (f *fakeServer) serveRaw(role data.RoleName, b []byte) {
	t := f.t
	f.put(role.String(), b)
	f.repo.Snapshot.AddMeta(role, mustMeta(t, b))
	f.repo.Snapshot.Signed.Version++
	f.repo.Snapshot.Signed.Expires = time.Now().AddDate(1, 0, 0)
	sn, err := f.repo.Snapshot.ToSigned()
	if err != nil {
		t.Fatal(err)
	}
	sn.Signatures = nil
	snapRole, _ := f.repo.GetBaseRole(data.CanonicalSnapshotRole)
	if err := signed.Sign(f.cs, sn, snapRole.ListKeys(), 1, nil); err != nil {
		t.Fatal(err)
	}
	f.repo.Snapshot.Signatures = sn.Signatures
	snBytes := marshal(t, sn)
	f.put("snapshot", snBytes)
	f.repo.Timestamp.Signed.Meta["snapshot"] = mustMeta(t, snBytes)
	f.repo.Timestamp.Signed.Version++
	ts, err := f.repo.Timestamp.ToSigned()
	if err != nil {
		t.Fatal(err)
	}
	ts.Signatures = nil
	tsRole, _ := f.repo.GetBaseRole(data.CanonicalTimestampRole)
	if err := signed.Sign(f.cs, ts, tsRole.ListKeys(), 1, nil); err != nil {
		t.Fatal(err)
	}
	f.put("timestamp", marshal(t, ts))
}

func mustMeta(t *testing.T, b []byte) data.FileMeta {
	m, err := data.NewFileMeta(strings.NewReader(string(b)), data.NotaryDefaultHashes...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRootRotationWalksVersions(t *testing.T) {
	f := newFakeServer(t)
	f.publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	st, _ := mustUpdate(t, f, nil, time.Now())
	for i := 0; i < 3; i++ {
		f.repo.ReplaceBaseKeys(data.CanonicalRootRole, f.certKey())
		f.publish(data.CanonicalRootRole)
	}
	st2, _ := mustUpdate(t, f, st, time.Now())
	if v, _ := rootVersion(st2.Root); v != 4 {
		t.Fatalf("trusted root version %d, want 4", v)
	}
	// Without the intermediate versions the walk fails.
	delete(f.files, "3.root.json")
	if _, _, err := Update(context.Background(), gun, st, f, tofu(), time.Now()); err == nil {
		t.Fatal("rotation without version 3 succeeded")
	}
}

func TestPins(t *testing.T) {
	f := newFakeServer(t)
	f.publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	id, _ := utils.CanonicalKeyID(f.root)
	cases := []struct {
		name string
		pin  Pin
		ok   bool
	}{
		{"cert ID of the root", Pin{CertIDs: []string{f.root.ID()}}, true},
		{"other cert ID", Pin{CertIDs: []string{strings.Repeat("a", 64)}}, false},
		{"no pin and no TOFU", Pin{}, false},
		{"TOFU", Pin{TOFU: true}, true},
	}
	_ = id
	for _, tc := range cases {
		_, _, err := Update(context.Background(), gun, nil, f, tc.pin, time.Now())
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
	f.addTarget(data.CanonicalTargetsRole, "v1", "manifest v1")
	f.publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
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
	calls := f.calls
	if calls > 8 {
		t.Fatalf("%d fetches for a burst, want one refresh (about 4)", calls)
	}
	if _, cached, _ := r.Get(context.Background(), src); !cached {
		t.Fatal("second Get within the interval was not cached")
	}
	// Trust server down: verified data is used until the timestamp expires,
	// and the server is retried once per interval, not per request.
	f.down = true
	now = now.Add(2 * time.Minute)
	if res, _, err := r.Get(context.Background(), src); err != nil || res.Targets["targets"]["v1"].Length != 11 {
		t.Fatalf("during outage: %v", err)
	}
	tried := f.calls
	for i := 0; i < 10; i++ {
		if _, cached, err := r.Get(context.Background(), src); err != nil || !cached {
			t.Fatalf("request %d during the outage: cached %v, %v", i, cached, err)
		}
	}
	if f.calls != tried {
		t.Fatalf("%d fetches for 10 requests within one interval of a failed refresh", f.calls-tried)
	}
	now = now.Add(15 * 24 * time.Hour)
	if _, _, err := r.Get(context.Background(), src); err == nil {
		t.Fatal("past the timestamp's expiry with the server down, Get succeeded")
	}
}
