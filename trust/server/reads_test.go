package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	dto "github.com/prometheus/client_model/go"
	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
)

const cachedGUN = "registry.example.com/team/cached"

var releasesDelegation = data.RoleName("targets/releases")

// httpAnswer is one answer of the server, its headers without Date.
type httpAnswer struct {
	code   int
	header http.Header
	body   []byte
}

// fetch sends method to url; it reports failures with t.Error so it can
// run in goroutines.
func fetch(t testing.TB, method, url string) httpAnswer {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Error(err)
		return httpAnswer{}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return httpAnswer{}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	resp.Header.Del("Date")
	return httpAnswer{code: resp.StatusCode, header: resp.Header, body: body}
}

// sameAnswer fails unless got and want have the same status, headers
// (ETag, Content-Length, Last-Modified, Cache-Control, ...) and bytes.
func sameAnswer(t testing.TB, what string, got, want httpAnswer) {
	t.Helper()
	if got.code != want.code || !bytes.Equal(got.body, want.body) {
		t.Fatalf("%s: %d %.300s\nwant (uncached) %d %.300s", what, got.code, got.body, want.code, want.body)
	}
	if !maps.EqualFunc(got.header, want.header, slices.Equal) {
		t.Fatalf("%s: headers %v\nwant (uncached) %v", what, got.header, want.header)
	}
}

// cacheEnv is a repository served by two servers on one database: cached,
// the server under test, and uncached (read cache off), whose answers are
// the reference.
type cacheEnv struct {
	cached, uncached string
	srv              *Server
	p                *publisher
}

// newCacheEnv publishes root, targets with one target and a delegation
// targets/releases with one target, through the cached server.
func newCacheEnv(t *testing.T, dsn string, opts Options) *cacheEnv {
	t.Helper()
	c, srv := startServer(t, dsn, opts)
	opts.ReadCacheBytes = -1
	u, _ := startServer(t, dsn, opts)
	p := newPublisher(t, c.URL, cachedGUN)
	p.addTarget(data.CanonicalTargetsRole, "v1")
	p.delegate(releasesDelegation)
	p.addTarget(releasesDelegation, "r1")
	mustPost(t, c.URL, cachedGUN, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)},
		file{"targets/releases.json", p.signTargets(releasesDelegation)})
	return &cacheEnv{cached: c.URL, uncached: u.URL, srv: srv, p: p}
}

// delegate adds role to the repository with a key of its own and every
// path, and starts its targets.
func (p *publisher) delegate(role data.RoleName) {
	p.t.Helper()
	key, err := p.cs.Create(role, p.gun, data.ECDSAKey)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.repo.UpdateDelegationKeys(role, data.KeyList{key}, nil, 1); err != nil {
		p.t.Fatal(err)
	}
	if err := p.repo.UpdateDelegationPaths(role, []string{""}, nil, false); err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.repo.InitTargets(role); err != nil {
		p.t.Fatal(err)
	}
}

func (e *cacheEnv) url(base, name string) string {
	return base + "/v2/" + cachedGUN + "/_trust/tuf/" + name
}

// reads counts the cached server's reads with a read cache result.
func (e *cacheEnv) reads(result string) float64 {
	var m dto.Metric
	if err := e.srv.metrics.reads.WithLabelValues(result).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// compare GETs each file from both servers and fails unless the answers
// are the same; headers too unless bodyOnly (the answer that re-signed
// an expired timestamp has its own Last-Modified, cached or not). It
// returns the bodies.
func (e *cacheEnv) compare(t *testing.T, files []string, bodyOnly bool) map[string][]byte {
	t.Helper()
	bodies := map[string][]byte{}
	for _, f := range files {
		got := fetch(t, http.MethodGet, e.url(e.cached, f))
		want := fetch(t, http.MethodGet, e.url(e.uncached, f))
		if bodyOnly {
			got.header, want.header = nil, nil
		}
		sameAnswer(t, "GET "+f, got, want)
		bodies[f] = got.body
	}
	return bodies
}

// TestCachedAnswersSameAsUncached reads every kind of metadata file, for
// GET and HEAD, through a server with the read cache and one without on
// the same database: the answers must be the same bytes with the same
// headers, and from the second read on come from memory.
func TestCachedAnswersSameAsUncached(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := newCacheEnv(t, dsn(t), Options{})
			root := fetch(t, http.MethodGet, e.url(e.uncached, "root.json")).body
			snapshot := fetch(t, http.MethodGet, e.url(e.uncached, "snapshot.json")).body
			releases := fetch(t, http.MethodGet, e.url(e.uncached, "targets/releases.json")).body
			files := []string{
				"timestamp.json", "snapshot.json", "root.json", "targets.json", "targets/releases.json",
				"1.root.json", "2.targets.json", "1.targets/releases.json",
				"root." + sha256Hex(root) + ".json",
				"snapshot." + sha256Hex(snapshot) + ".json",
				"targets/releases." + sha256Hex(releases) + ".json",
				// Not found: a role, a version, a checksum, a repository.
				"targets/missing.json", "9.root.json", "targets." + strings.Repeat("0", 64) + ".json",
			}
			other := "/v2/registry.example.com/team/none/_trust/tuf/timestamp.json"
			for round := 0; round < 3; round++ {
				hits := e.reads(cacheHit)
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					for _, f := range files {
						sameAnswer(t, fmt.Sprintf("round %d: %s %s", round, method, f),
							fetch(t, method, e.url(e.cached, f)), fetch(t, method, e.url(e.uncached, f)))
					}
					sameAnswer(t, "round "+fmt.Sprint(round)+": "+method+" "+other,
						fetch(t, method, e.cached+other), fetch(t, method, e.uncached+other))
				}
				want := float64(2 * (len(files) + 1))
				if round == 0 {
					want = float64(len(files) + 1 + 1) // every HEAD after the GET of the same file, and snapshot.json kept by timestamp.json's GET
				}
				if got := e.reads(cacheHit) - hits; got != want {
					t.Fatalf("round %d: %v reads from memory, want %v", round, got, want)
				}
			}
			// The metrics say so.
			m := string(fetch(t, http.MethodGet, e.cached+"/metrics").body)
			for _, want := range []string{`signet_trust_server_read_cache_total{result="hit"}`, `signet_trust_server_read_cache_total{result="miss"}`,
				"signet_trust_server_read_cache_bytes", "signet_trust_server_read_cache_entries 15"} {
				if !strings.Contains(m, want) {
					t.Fatalf("metrics lack %q:\n%s", want, m)
				}
			}
			um := string(fetch(t, http.MethodGet, e.uncached+"/metrics").body)
			if !strings.Contains(um, `signet_trust_server_read_cache_total{result="off"}`) || !strings.Contains(um, "signet_trust_server_read_cache_entries 0") {
				t.Fatalf("metrics of the server without cache:\n%s", um)
			}
		})
	}
}

// TestReadCacheInvalidation warms the cache, changes the repository in
// each way it can change, and checks that the next reads come from the
// store and match a server without cache, byte for byte.
func TestReadCacheInvalidation(t *testing.T) {
	watched := []string{"timestamp.json", "snapshot.json", "root.json", "targets.json", "targets/releases.json"}
	tests := []struct {
		name    string
		change  func(t *testing.T, e *cacheEnv)
		changed []string // files whose bytes must differ afterwards
		resign  bool     // the first read after the change re-signs
		gone    bool     // the repository is gone afterwards
	}{
		{
			name: "publish targets",
			change: func(t *testing.T, e *cacheEnv) {
				e.p.addTarget(data.CanonicalTargetsRole, "v2")
				mustPost(t, e.cached, cachedGUN, file{"targets.json", e.p.signTargets(data.CanonicalTargetsRole)})
			},
			changed: []string{"timestamp.json", "snapshot.json", "targets.json"},
		},
		{
			name: "publish a delegation",
			change: func(t *testing.T, e *cacheEnv) {
				e.p.addTarget(releasesDelegation, "r2")
				mustPost(t, e.cached, cachedGUN, file{"targets/releases.json", e.p.signTargets(releasesDelegation)})
			},
			changed: []string{"timestamp.json", "snapshot.json", "targets/releases.json"},
		},
		{
			name: "root rotation",
			change: func(t *testing.T, e *cacheEnv) {
				if err := e.p.repo.ReplaceBaseKeys(data.CanonicalRootRole, rootCertKey(t, e.p.cs, e.p.gun)); err != nil {
					t.Fatal(err)
				}
				mustPost(t, e.cached, cachedGUN, file{"root.json", e.p.signRoot()})
			},
			changed: []string{"timestamp.json", "snapshot.json", "root.json"},
		},
		{
			name: "publish through another replica",
			change: func(t *testing.T, e *cacheEnv) {
				e.p.addTarget(data.CanonicalTargetsRole, "v2")
				mustPost(t, e.uncached, cachedGUN, file{"targets.json", e.p.signTargets(data.CanonicalTargetsRole)})
			},
			changed: []string{"timestamp.json", "snapshot.json", "targets.json"},
		},
		{
			name: "delete",
			change: func(t *testing.T, e *cacheEnv) {
				if a := fetch(t, http.MethodDelete, e.cached+"/v2/"+cachedGUN+"/_trust/tuf/"); a.code != http.StatusOK {
					t.Fatalf("DELETE: %d %s", a.code, a.body)
				}
			},
			changed: watched,
			gone:    true,
		},
		{
			name: "delete through another replica, then publish anew",
			change: func(t *testing.T, e *cacheEnv) {
				if a := fetch(t, http.MethodDelete, e.uncached+"/v2/"+cachedGUN+"/_trust/tuf/"); a.code != http.StatusOK {
					t.Fatalf("DELETE: %d %s", a.code, a.body)
				}
				p := newPublisher(t, e.uncached, cachedGUN)
				p.delegate(releasesDelegation)
				mustPost(t, e.uncached, cachedGUN, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)},
					file{"targets/releases.json", p.signTargets(releasesDelegation)})
			},
			changed: watched,
		},
		{
			name: "server key rotation",
			change: func(t *testing.T, e *cacheEnv) {
				if a := fetch(t, http.MethodPost, e.cached+"/v2/"+cachedGUN+"/_trust/tuf/timestamp.key"); a.code != http.StatusOK {
					t.Fatalf("rotate timestamp key: %d %s", a.code, a.body)
				}
			},
		},
		{
			name: "a writer that is not this server (older replica, operator SQL)",
			change: func(t *testing.T, e *cacheEnv) {
				e.p.addTarget(data.CanonicalTargetsRole, "v2")
				raw := e.p.signTargets(data.CanonicalTargetsRole)
				sum := sha256.Sum256(raw)
				_, err := e.srv.store.db.Exec(`INSERT INTO tuf_files (created_at, updated_at, gun, role, version, data, sha256) VALUES ($1, $1, $2, 'targets', $3, $4, $5)`,
					time.Now().UTC(), cachedGUN, e.p.repo.Targets[data.CanonicalTargetsRole].Signed.Version, raw, hex.EncodeToString(sum[:]))
				if err != nil {
					t.Fatal(err)
				}
			},
			changed: []string{"targets.json"},
		},
		{
			name: "timestamp expires",
			change: func(t *testing.T, e *cacheEnv) {
				until := storeServerSigned(t, e, time.Now().Add(1500*time.Millisecond), time.Now().Add(time.Hour))
				e.compare(t, watched, false)
				time.Sleep(time.Until(until) + 10*time.Millisecond)
			},
			changed: []string{"timestamp.json", "snapshot.json"}, // snapshot: the one stored for the test
			resign:  true,
		},
		{
			name: "snapshot expires",
			change: func(t *testing.T, e *cacheEnv) {
				until := storeServerSigned(t, e, time.Now().Add(time.Hour), time.Now().Add(1500*time.Millisecond))
				e.compare(t, watched, false)
				time.Sleep(time.Until(until) + 10*time.Millisecond)
			},
			changed: []string{"timestamp.json", "snapshot.json"},
			resign:  true,
		},
	}
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					e := newCacheEnv(t, dsn(t), Options{})
					e.compare(t, watched, false)
					hits := e.reads(cacheHit)
					before := e.compare(t, watched, false)
					if got := e.reads(cacheHit) - hits; got != float64(len(watched)) {
						t.Fatalf("warm cache: %v of %d reads from memory", got, len(watched))
					}
					tc.change(t, e)
					hits = e.reads(cacheHit)
					after := e.compare(t, watched, tc.resign)
					// From the store, but for snapshot.json, which the read of
					// timestamp.json loaded and kept; unless that read
					// re-signed (a change of its own) or found nothing.
					want := 1.0
					if tc.resign || tc.gone {
						want = 0
					}
					if got := e.reads(cacheHit) - hits; got != want {
						t.Fatalf("%v reads from memory right after the change, want %v", got, want)
					}
					for _, f := range watched {
						if changed := !bytes.Equal(before[f], after[f]); changed != slices.Contains(tc.changed, f) {
							t.Errorf("%s changed: %v, want %v", f, changed, !changed)
						}
					}
					// And then from memory again, still the same answers.
					hits = e.reads(cacheHit)
					e.compare(t, watched, false)
					if got := e.reads(cacheHit) - hits; got != float64(len(watched)) {
						t.Fatalf("after the change: %v of %d reads from memory", got, len(watched))
					}
				})
			}
		})
	}
}

// storeServerSigned stores a new snapshot and timestamp, signed with the
// server's keys, expiring at tsExpires and snExpires, and returns the
// earlier of the two.
func storeServerSigned(t *testing.T, e *cacheEnv, tsExpires, snExpires time.Time) time.Time {
	t.Helper()
	var ts data.SignedTimestamp
	var sn data.SignedSnapshot
	getJSON(t, e.url(e.uncached, "timestamp.json"), &ts)
	getJSON(t, e.url(e.uncached, "snapshot.json"), &sn)
	sign := func(role data.RoleName, v any) []byte {
		s := &data.Signed{}
		raw, err := canonicaljson.MarshalCanonical(v)
		if err != nil {
			t.Fatal(err)
		}
		msg := canonicaljson.RawMessage(raw)
		s.Signed = &msg
		keyID := e.p.repo.Root.Signed.Roles[role].KeyIDs[0]
		if err := signed.Sign(e.srv.crypto, s, []data.PublicKey{e.p.repo.Root.Signed.Keys[keyID]}, 1, nil); err != nil {
			t.Fatal(err)
		}
		out, err := canonicaljson.MarshalCanonical(s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	sn.Signed.Version++
	sn.Signed.Expires = snExpires
	snRaw := sign(data.CanonicalSnapshotRole, sn.Signed)
	meta, err := data.NewFileMeta(bytes.NewReader(snRaw), data.NotaryDefaultHashes...)
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version++
	ts.Signed.Expires = tsExpires
	ts.Signed.Meta = data.Files{data.CanonicalSnapshotRole.String(): meta}
	tsRaw := sign(data.CanonicalTimestampRole, ts.Signed)
	err = e.srv.store.UpdateMany(data.GUN(cachedGUN), []storage.MetaUpdate{
		storeUpdate(data.CanonicalSnapshotRole, sn.Signed.Version, snRaw),
		storeUpdate(data.CanonicalTimestampRole, ts.Signed.Version, tsRaw),
	})
	if err != nil {
		t.Fatal(err)
	}
	if tsExpires.Before(snExpires) {
		return tsExpires
	}
	return snExpires
}

// TestReadCacheImport: an import through one replica replaces what
// another replica's cache holds.
func TestReadCacheImport(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			a, _ := startServer(t, db, Options{AllowImport: true})
			b, _ := startServer(t, db, Options{AllowImport: true})
			o := oldRepo(t)
			mustImport(t, a.URL, exported(o)...)
			files := []string{"timestamp.json", "snapshot.json", "targets.json", "targets/releases.json", "root.json"}
			for i := 0; i < 2; i++ {
				for _, f := range files {
					if code, got := getRaw(t, metaURL(b.URL, f)); code != http.StatusOK || !bytes.Equal(got, o.File(f)) {
						t.Fatalf("GET %s from the other replica: %d, imported bytes: %v", f, code, bytes.Equal(got, o.File(f)))
					}
				}
			}
			o.AddTarget(releasesRole, "v2", "manifest two")
			o.Publish(releasesRole)
			mustImport(t, b.URL, exported(o)...)
			mustImport(t, a.URL, exported(o)...) // unchanged: stores nothing
			o.AddTarget(data.CanonicalTargetsRole, "v3", "manifest three")
			o.Publish(data.CanonicalTargetsRole)
			mustImport(t, a.URL, exported(o)...)
			for _, url := range []string{a.URL, b.URL} {
				for _, f := range files {
					if code, got := getRaw(t, metaURL(url, f)); code != http.StatusOK || !bytes.Equal(got, o.File(f)) {
						t.Fatalf("GET %s after the import: %d, newest imported bytes: %v", f, code, bytes.Equal(got, o.File(f)))
					}
				}
			}
		})
	}
}

// TestReplicasReadYourWrites publishes through one replica and reads
// through another at once, each with its own store handle on one
// database: the reader must see the update every time, though it held
// the previous data in its cache. Then publishes and reads run
// concurrently (run with -race): no read may return data older than a
// publish acknowledged before it began.
func TestReplicasReadYourWrites(t *testing.T) {
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			a, _ := startServer(t, db, Options{})
			b, _ := startServer(t, db, Options{})
			urls := []string{a.URL, b.URL}
			p := newPublisher(t, a.URL, cachedGUN)
			mustPost(t, a.URL, cachedGUN, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})

			for i := 0; i < rounds; i++ {
				writer, reader := urls[i%2], urls[(i+1)%2]
				readState(t, reader) // the reader holds the current data
				readState(t, reader)
				p.addTarget(data.CanonicalTargetsRole, fmt.Sprintf("v%d", i))
				mustPost(t, writer, cachedGUN, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
				want := p.repo.Targets[data.CanonicalTargetsRole].Signed.Version
				if got := readState(t, reader); got.targets != want || got.snapshotTargets != want {
					t.Fatalf("round %d: read through the other replica right after the publish: %+v, want targets version %d", i, got, want)
				}
			}

			// Concurrently: one publisher alternating replicas, readers on
			// both.
			var acked atomic.Int64
			acked.Store(int64(p.repo.Targets[data.CanonicalTargetsRole].Signed.Version))
			done := make(chan struct{})
			readersDone := make(chan struct{})
			const readers = 4
			for r := 0; r < readers; r++ {
				go func() {
					defer func() { readersDone <- struct{}{} }()
					for i := 0; ; i++ {
						select {
						case <-done:
							return
						default:
						}
						floor := int(acked.Load())
						got := readState(t, urls[(r+i)%2])
						if got.targets < floor || got.snapshotTargets < floor {
							t.Errorf("reader %d: read %+v after targets version %d was acknowledged", r, got, floor)
							return
						}
					}
				}()
			}
			for i := 0; i < rounds; i++ {
				p.addTarget(data.CanonicalTargetsRole, fmt.Sprintf("c%d", i))
				body, ct := encodeUpdate(t, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
				if code, c, msg := postEncoded(t, http.DefaultClient, urls[i%2], cachedGUN, body, ct); code != http.StatusOK {
					t.Errorf("publish %d: %d %s %s", i, code, c, msg)
					break
				}
				acked.Store(int64(p.repo.Targets[data.CanonicalTargetsRole].Signed.Version))
			}
			close(done)
			for r := 0; r < readers; r++ {
				<-readersDone
			}
		})
	}
}

// repoState is what a reader sees of the repository: the targets version
// served as current, and the one the current timestamp names through its
// snapshot (each fetched by checksum, as clients do).
type repoState struct {
	targets, snapshotTargets, timestamp int
}

// readState reads targets.json, then timestamp.json, the snapshot it
// names and the targets that names, from url; failures are reported with
// t.Error.
func readState(t testing.TB, url string) repoState {
	base := url + "/v2/" + cachedGUN + "/_trust/tuf/"
	var st repoState
	var tgt data.SignedTargets
	if !getInto(t, base+"targets.json", &tgt) {
		return st
	}
	st.targets = tgt.Signed.Version
	var ts data.SignedTimestamp
	if !getInto(t, base+"timestamp.json", &ts) {
		return st
	}
	st.timestamp = ts.Signed.Version
	meta := ts.Signed.Meta[data.CanonicalSnapshotRole.String()]
	var sn data.SignedSnapshot
	if !getInto(t, base+"snapshot."+hex.EncodeToString(meta.Hashes["sha256"])+".json", &sn) {
		return st
	}
	var named data.SignedTargets
	if !getInto(t, base+"targets."+hex.EncodeToString(sn.Signed.Meta[data.CanonicalTargetsRole.String()].Hashes["sha256"])+".json", &named) {
		return st
	}
	st.snapshotTargets = named.Signed.Version
	return st
}

func getInto(t testing.TB, url string, v any) bool {
	a := fetch(t, http.MethodGet, url)
	if a.code != http.StatusOK {
		t.Errorf("GET %s: %d %s", url, a.code, a.body)
		return false
	}
	if err := canonicaljson.Unmarshal(a.body, v); err != nil {
		t.Errorf("GET %s: %v", url, err)
		return false
	}
	return true
}
