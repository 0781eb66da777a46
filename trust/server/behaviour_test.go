package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
)

func TestRootRotationSignedByOldAndNew(t *testing.T) {
	const gun = "registry.example.com/team/app"
	ts, _ := startServer(t, filepath.Join(t.TempDir(), "server.db"), Options{})
	p := newPublisher(t, ts.URL, gun)
	mustPost(t, ts.URL, gun, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
	newRoot := rootCertKey(t, p.cs, p.gun)
	if err := p.repo.ReplaceBaseKeys(data.CanonicalRootRole, newRoot); err != nil {
		t.Fatal(err)
	}
	// SignRoot signs with the old root role and the new one (TUF §5.3).
	mustPost(t, ts.URL, gun, file{"root.json", p.signRoot()})
	var root data.SignedRoot
	getJSON(t, ts.URL+"/v2/"+gun+"/_trust/tuf/root.json", &root)
	if root.Signed.Version != 2 || len(root.Signatures) != 2 {
		t.Fatalf("root version %d with %d signatures, want version 2 signed twice", root.Signed.Version, len(root.Signatures))
	}
	// A fresh notary client still verifies the repository.
	if _, err := newRepo(t, t.TempDir(), ts.URL, gun).ListTargets(); err != nil {
		t.Fatalf("list after rotation: %v", err)
	}
}

func getJSON(t *testing.T, url string, v any) http.Header {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.Header
}

// TestConcurrentPublishes races publishers of the same next version
// through two server replicas sharing one database (so the database's
// unique key, not only the in-process lock, decides): one wins each
// round; every loser gets VERSION with "retry", and the stored versions
// have no gaps or duplicates.
func TestConcurrentPublishes(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			const gun = "registry.example.com/team/race"
			db := dsn(t)
			ts, _ := startServer(t, db, Options{})
			replica, _ := startServer(t, db, Options{})
			p := newPublisher(t, ts.URL, gun)
			mustPost(t, ts.URL, gun, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
			urls := []string{ts.URL, replica.URL}
			const rounds, racers = 5, 6
			for round := 0; round < rounds; round++ {
				// Each racer signs a different target at the same version.
				bodies := make([][]byte, racers)
				base := p.repo.Targets[data.CanonicalTargetsRole].Signed.Version
				for i := range bodies {
					p.repo.Targets[data.CanonicalTargetsRole].Signed.Version = base
					p.addTarget(data.CanonicalTargetsRole, fmt.Sprintf("r%d-%d", round, i))
					bodies[i] = p.signTargets(data.CanonicalTargetsRole)
				}
				var (
					wg       sync.WaitGroup
					mu       sync.Mutex
					wins     int
					failures []string
				)
				for i := range bodies {
					wg.Add(1)
					go func(url string, b []byte) {
						defer wg.Done()
						code, c, msg := post(t, url, gun, file{"targets.json", b})
						mu.Lock()
						defer mu.Unlock()
						switch {
						case code == http.StatusOK:
							wins++
						case code == 400 && c == "VERSION" && strings.Contains(msg, "retry"):
						default:
							failures = append(failures, fmt.Sprintf("%d %s %s", code, c, msg))
						}
					}(urls[i%2], bodies[i])
				}
				wg.Wait()
				if wins != 1 || len(failures) > 0 {
					t.Fatalf("round %d: %d winners, unexpected answers %q", round, wins, failures)
				}
			}
			var tgt data.SignedTargets
			getJSON(t, ts.URL+"/v2/"+gun+"/_trust/tuf/targets.json", &tgt)
			if tgt.Signed.Version != 1+rounds {
				t.Fatalf("targets version %d, want %d", tgt.Signed.Version, 1+rounds)
			}
			for v := 1; v <= 1+rounds; v++ {
				var old data.SignedTargets
				getJSON(t, fmt.Sprintf("%s/v2/%s/_trust/tuf/%d.targets.json", ts.URL, gun, v), &old)
				if old.Signed.Version != v {
					t.Fatalf("by-version GET %d returned version %d", v, old.Signed.Version)
				}
			}
			// Concurrent readers meanwhile are safe (run with -race).
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var ts data.SignedTimestamp
					getJSON(t, p.url+"/v2/"+gun+"/_trust/tuf/timestamp.json", &ts)
				}()
			}
			wg.Wait()
		})
	}
}

// TestExpiredTimestampResigned stores a timestamp that has expired (as one
// does when nobody publishes for 14 days) and checks that a read returns a
// fresh one signed by the same server key.
func TestExpiredTimestampResigned(t *testing.T) {
	const gun = "registry.example.com/team/app"
	ts, srv := startServer(t, filepath.Join(t.TempDir(), "server.db"), Options{})
	p := newPublisher(t, ts.URL, gun)
	mustPost(t, ts.URL, gun, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})

	var cur data.SignedTimestamp
	getJSON(t, ts.URL+"/v2/"+gun+"/_trust/tuf/timestamp.json", &cur)
	expired := cur.Signed
	expired.Version++
	expired.Expires = time.Now().Add(-time.Hour)
	s, err := (&data.SignedTimestamp{Signed: expired}).ToSigned()
	if err != nil {
		t.Fatal(err)
	}
	s.Signatures = nil
	tsKey := p.repo.Root.Signed.Roles[data.CanonicalTimestampRole].KeyIDs[0]
	if err := signed.Sign(srv.crypto, s, []data.PublicKey{p.repo.Root.Signed.Keys[tsKey]}, 1, nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := canonicaljson.Marshal(s)
	if err := srv.store.UpdateCurrent(data.GUN(gun), storeUpdate(data.CanonicalTimestampRole, expired.Version, raw)); err != nil {
		t.Fatal(err)
	}

	var got data.SignedTimestamp
	getJSON(t, ts.URL+"/v2/"+gun+"/_trust/tuf/timestamp.json", &got)
	if got.Signed.Version != expired.Version+1 {
		t.Fatalf("timestamp version %d, want re-signed version %d", got.Signed.Version, expired.Version+1)
	}
	if !got.Signed.Expires.After(time.Now().Add(13 * 24 * time.Hour)) {
		t.Fatalf("re-signed timestamp expires %s, want about 14 days from now", got.Signed.Expires)
	}
	// And a notary client accepts it.
	if _, err := newRepo(t, t.TempDir(), ts.URL, gun).ListTargets(); err != nil {
		t.Fatalf("client after re-sign: %v", err)
	}
}

func TestRestartWithWrongPassphraseFails(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "server.db")
	ts, _ := startServer(t, dsn, Options{})
	p := newPublisher(t, ts.URL, "registry.example.com/a") // creates server keys
	_ = p
	st, err := OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = New(context.Background(), Options{Store: st, KeyPassphrase: "another long passphrase"})
	if err == nil || !strings.Contains(err.Error(), PassphraseEnv) {
		t.Fatalf("New with wrong passphrase: %v, want an error naming %s", err, PassphraseEnv)
	}
	_, err = New(context.Background(), Options{Store: st, KeyPassphrase: "short"})
	if err == nil || !strings.Contains(err.Error(), "at least") {
		t.Fatalf("New with short passphrase: %v", err)
	}
}

func TestRequestLimitsAndNames(t *testing.T) {
	const gun = "registry.example.com/team/app"
	ts, _ := startServer(t, filepath.Join(t.TempDir(), "server.db"), Options{
		Limits:      Limits{MaxRequestBytes: 64 << 10, MaxParts: 3},
		GUNPrefixes: []string{"registry.example.com/"},
	})
	big := strings.Repeat("x", 70<<10)
	cases := []struct {
		name     string
		gun      string
		files    []file
		wantCode int
		wantErr  string
	}{
		{"request over the cap", gun, []file{{"targets.json", []byte(big)}}, 413, "SIGNET_TOO_LARGE"},
		{"too many parts", gun, []file{{"a.json", []byte("{}")}, {"b.json", []byte("{}")}, {"c.json", []byte("{}")}, {"d.json", []byte("{}")}}, 400, "INVALID_ROLE"},
		{"no parts and no repository", "registry.example.com/none", nil, 400, "INVALID_UPDATE"},
		{"duplicate role", gun, []file{{"targets.json", []byte(`{"signed":{"version":1}}`)}, {"targets.json", []byte(`{"signed":{"version":1}}`)}}, 400, "MALFORMED_UPLOAD"},
		{"version zero", gun, []file{{"targets.json", []byte(`{"signed":{"version":0},"signatures":[]}`)}}, 400, "MALFORMED_JSON"},
		{"GUN outside the allow-list", "other.example.com/app", []file{{"root.json", []byte("{}")}}, 403, "SIGNET_GUN_NOT_ALLOWED"},
		{"upper-case GUN", "registry.example.com/Team", []file{{"root.json", []byte("{}")}}, 400, "SIGNET_INVALID_NAME"},
		{"no root yet", gun, []file{{"targets.json", []byte(`{"signed":{"_type":"Targets","version":1,"expires":"2099-01-01T00:00:00Z","targets":{}},"signatures":[]}`)}}, 400, "INVALID_UPDATE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, c, msg := post(t, ts.URL, tc.gun, tc.files...)
			if code != tc.wantCode || c != tc.wantErr {
				t.Fatalf("got %d %s %q, want %d %s", code, c, msg, tc.wantCode, tc.wantErr)
			}
			if msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("message %q is not one line", msg)
			}
		})
	}
}

func TestReadAPI(t *testing.T) {
	const gun = "registry.example.com/team/app"
	ts, _ := startServer(t, filepath.Join(t.TempDir(), "server.db"), Options{})
	p := newPublisher(t, ts.URL, gun)
	rootJSON := p.signRoot()
	mustPost(t, ts.URL, gun, file{"root.json", rootJSON}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})

	get := func(path string) (int, []byte, http.Header) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	tests := []struct {
		path     string
		want     int
		contains string
	}{
		{"/v2/", 200, "{}"},
		{"/v2/" + gun + "/_trust/tuf/root.json", 200, `"_type":"Root"`},
		{"/v2/" + gun + "/_trust/tuf/1.root.json", 200, `"_type":"Root"`},
		{"/v2/" + gun + "/_trust/tuf/root." + sha256Hex(rootJSON) + ".json", 200, `"_type":"Root"`},
		{"/v2/" + gun + "/_trust/tuf/snapshot.json", 200, `"_type":"Snapshot"`},
		{"/v2/" + gun + "/_trust/tuf/timestamp.json", 200, `"_type":"Timestamp"`},
		{"/v2/" + gun + "/_trust/tuf/targets/releases.json", 404, "METADATA_NOT_FOUND"},
		{"/v2/" + gun + "/_trust/tuf/9.root.json", 404, "METADATA_NOT_FOUND"},
		{"/v2/registry.example.com/none/_trust/tuf/root.json", 404, "METADATA_NOT_FOUND"},
		{"/v2/" + gun + "/_trust/changefeed", 200, `"count":1`},
		{"/v2/_trust/changefeed?records=10", 200, `"Category":"update"`},
		{"/v2/_trust/changefeed?change_id=abc", 400, "INVALID_PARAMETERS"},
		{"/_notary_server/health", 200, "{}"},
		{"/metrics", 200, "signet_trust_server_publishes_total"},
		{"/v2/" + gun + "/_trust/tuf/root.key", 400, "SIGNET_INVALID_NAME"},
		{"/nowhere", 404, "METADATA_NOT_FOUND"},
	}
	for _, tc := range tests {
		code, body, _ := get(tc.path)
		if code != tc.want || !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s = %d %.200s, want %d containing %q", tc.path, code, body, tc.want, tc.contains)
		}
	}
	// Current metadata is never cached; consistent (by checksum) is.
	if _, _, h := get("/v2/" + gun + "/_trust/tuf/timestamp.json"); h.Get("Cache-Control") != "no-store" {
		t.Errorf("timestamp Cache-Control %q", h.Get("Cache-Control"))
	}
	// Delete removes everything; the changefeed records it.
	req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/v2/"+gun+"/_trust/tuf/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", err, resp)
	}
	resp.Body.Close()
	if code, _, _ := get("/v2/" + gun + "/_trust/tuf/root.json"); code != 404 {
		t.Fatalf("root after delete: %d", code)
	}
	if _, body, _ := get("/v2/" + gun + "/_trust/changefeed"); !strings.Contains(string(body), `"Category":"deletion"`) {
		t.Fatalf("changefeed lacks the deletion: %s", body)
	}
}
