package verify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testtuf"
)

// FuzzUpdate feeds arbitrary bytes to the engine as each metadata file
// a server could send (timestamp, snapshot, targets, a delegation, a
// root version), on top of an honest repository: Update and the lookups
// must never panic, and must never accept a target the honest data did
// not sign.
func FuzzUpdate(f *testing.F) {
	seed := &fakeServer{testtuf.New(f, gun)}
	seed.AddTarget(data.CanonicalTargetsRole, "v1", "manifest v1")
	seed.Delegate(releases)
	seed.AddTarget(releases, "v2", "manifest v2")
	seed.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole, releases)
	if _, _, err := update(nil, seed, tofu(), time.Now(), releases.String()); err != nil {
		f.Fatalf("honest update: %v", err)
	}
	honest := mapFetcher{}
	for _, n := range seed.Files() {
		honest[n] = seed.File(n)
	}
	roles := []string{"timestamp", "snapshot", "targets", "targets/releases", "root"}
	for i, r := range roles {
		f.Add(uint8(i), honest[r+".json"])
	}
	f.Add(uint8(0), []byte(`{"signed":{"_type":"Timestamp","version":99,"expires":"2099-01-01T00:00:00Z","meta":{}},"signatures":[]}`))
	f.Add(uint8(2), []byte(`{"signed":{"_type":"Targets","delegations":{"keys":{},"roles":[{"name":"targets/releases","keyids":[],"threshold":1,"paths":[""]}]}},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		role := roles[int(which)%len(roles)]
		files := mapFetcher{}
		for n, b := range honest {
			// The fuzzed bytes replace the role under its current and
			// consistent (by hash) names.
			if n == role+".json" || strings.HasPrefix(n, role+".") && strings.Count(n[len(role)+1:], ".") == 1 {
				b = body
			}
			files[n] = b
		}
		_, res, err := Update(context.Background(), Request{GUN: gun, Fetcher: files, Pin: tofu(), Now: time.Now(),
			Roles: []string{releases.String()}, AllDelegations: true, KeepRaw: true})
		if err != nil {
			return
		}
		for _, tag := range []string{"v1", "v2", "v3", ""} {
			got, _, err := res.Lookup(gun, tag, DockerPath)
			if err != nil {
				continue
			}
			want := map[string]string{"v1": "manifest v1", "v2": "manifest v2"}[tag]
			if string(got.SHA256) != string(digest(want)) {
				t.Fatalf("fuzzed %s made %q resolve to %x", role, tag, got.SHA256)
			}
		}
		res.Signed(gun, Rule{})
		res.LookupAll(gun, "v2", []string{releases.String(), "targets/ci"})
	})
}

// mapFetcher serves metadata from a map.
type mapFetcher map[string][]byte

func (m mapFetcher) Fetch(_ context.Context, name string, max int64) ([]byte, error) {
	b, ok := m[name]
	if !ok {
		return nil, ErrNotFound
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{Name: name, Max: max}
	}
	return b, nil
}
