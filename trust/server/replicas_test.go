package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testenv"
)

// startReplica starts a trust server as `signet server` does: the key
// passphrase (env, else generated into dataDir), then the store at dsn
// (schema created or migrated), then the server. It returns the error of
// the first step that fails.
func startReplica(t *testing.T, dataDir, envPass, dsn string) (*Server, string, error) {
	t.Helper()
	ctx := context.Background()
	pass, _, err := KeyPassphrase(envPass, "", dataDir)
	if err != nil {
		return nil, "", err
	}
	st, err := OpenStore(ctx, dsn)
	if err != nil {
		return nil, "", err
	}
	t.Cleanup(func() { st.Close() })
	srv, err := New(ctx, Options{Store: st, KeyPassphrase: pass, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		return nil, "", err
	}
	return srv, pass, nil
}

// TestReplicasStartTogether starts several servers at the same moment on
// a fresh database, as an orchestrator starts the replicas of a new
// deployment, and repeats it so the race is exercised: every replica must
// start (schema creation takes a lock; SQLite waits for the writer; the
// generated passphrase is created once and read by the others), and all
// serve the same repository.
func TestReplicasStartTogether(t *testing.T) {
	const rounds, replicas = 6, 3
	cases := []struct {
		name    string
		fresh   func(t *testing.T) (dataDir, envPass, dsn string)
		genPass bool
	}{
		{"sqlite new data dir", func(t *testing.T) (string, string, string) {
			dir := filepath.Join(t.TempDir(), "data")
			return dir, "", filepath.Join(dir, "server.db")
		}, true},
		{"postgres new database", func(t *testing.T) (string, string, string) {
			return t.TempDir(), testPassphrase, testenv.FreshPostgresDB(t)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for round := 0; round < rounds; round++ {
				dataDir, envPass, dsn := tc.fresh(t)
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					srvs  = make([]*Server, replicas)
					pass  = make([]string, replicas)
					errs  = make([]error, replicas)
				)
				for i := range replicas {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						srvs[i], pass[i], errs[i] = startReplica(t, dataDir, envPass, dsn)
					}()
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("round %d: replica %d of %d did not start: %v", round, i, replicas, err)
					}
					if pass[i] != pass[0] {
						t.Fatalf("round %d: replica %d has another key passphrase than replica 0", round, i)
					}
				}
				// A repository published through one replica is served by
				// every other.
				urls := make([]string, replicas)
				for i, s := range srvs {
					ts := httptest.NewServer(s)
					t.Cleanup(ts.Close)
					urls[i] = ts.URL
				}
				gun := fmt.Sprintf("registry.example.com/team/app%d", round)
				p := newPublisher(t, urls[0], gun)
				mustPost(t, urls[0], gun, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
				for _, u := range urls[1:] {
					var ts data.SignedTimestamp
					getJSON(t, u+"/v2/"+gun+"/_trust/tuf/timestamp.json", &ts)
				}
			}
		})
	}
}

// TestReplicasHandOutOneServerKey asks two replicas on one database at the
// same moment for the timestamp (and snapshot) key of a repository that
// has none yet, as clients initialising through a load balancer do. All
// must get the same key, and the database must hold one key per
// repository and role: a client that signed root with the other key
// could never publish.
func TestReplicasHandOutOneServerKey(t *testing.T) {
	const rounds, askers = 8, 8
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			db := dsn(t)
			a, srv := startServer(t, db, Options{})
			b, _ := startServer(t, db, Options{})
			urls := []string{a.URL, b.URL}
			for _, role := range []string{"timestamp", "snapshot"} {
				for round := 0; round < rounds; round++ {
					gun := fmt.Sprintf("registry.example.com/team/new-%s-%d", role, round)
					var (
						wg    sync.WaitGroup
						start = make(chan struct{})
						ids   = make([]string, askers)
					)
					for i := range askers {
						wg.Add(1)
						go func() {
							defer wg.Done()
							<-start
							ids[i] = getKeyID(t, urls[i%2]+"/v2/"+gun+"/_trust/tuf/"+role+".key")
						}()
					}
					close(start)
					wg.Wait()
					for i, id := range ids {
						if id != ids[0] {
							t.Fatalf("%s key of %s, round %d: asker %d (replica %d) got %s, asker 0 (replica 0) got %s", role, gun, round, i, i%2, id, ids[0])
						}
					}
					var n int
					err := srv.store.db.QueryRow(`SELECT COUNT(*) FROM signet_server_keys WHERE gun = $1 AND role = $2`, gun, role).Scan(&n)
					if err != nil || n != 1 {
						t.Fatalf("%s keys of %s stored: %d (%v), want 1", role, gun, n, err)
					}
				}
			}
		})
	}
}

// getKeyID GETs a server key and returns its ID; it reports failures with
// t.Error so it can run in goroutines.
func getKeyID(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d %s %v", url, resp.StatusCode, body, err)
		return ""
	}
	k, err := data.UnmarshalPublicKey(body)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	return k.ID()
}
