package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/internal/testenv"
)

// The benchmarks run the server in process on loopback (httptest) and talk
// to it over real HTTP with one shared client, as a trust client would.
// bench/run.sh runs them with -count 5 and benchstat, and compares the
// server built as `signet server` with the original notary-server v0.7.0;
// bench/README.md has the figures.
//
// The helpers below take testing.TB: the test helpers in attack_test.go and
// server_test.go take *testing.T, which a benchmark does not have.

const benchGUN = "registry.example.com/bench/app"

// benchClient is shared by all benchmark goroutines; its idle pool is large
// enough that RunParallel reuses connections rather than opening new ones.
func benchClient(b *testing.B) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 256
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// startBenchServer runs a trust server over the store at dsn, logging only
// errors (to the benchmark log).
func startBenchServer(b *testing.B, dsn string) string {
	b.Helper()
	ctx := context.Background()
	st, err := OpenStore(ctx, dsn)
	if err != nil {
		b.Fatalf("open store: %v", err)
	}
	b.Cleanup(func() { st.Close() })
	srv, err := New(ctx, Options{
		Store:         st,
		KeyPassphrase: testPassphrase,
		Logger:        slog.New(slog.NewTextHandler(benchLog{b}, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		b.Fatalf("new server: %v", err)
	}
	ts := httptest.NewServer(srv)
	b.Cleanup(ts.Close)
	return ts.URL
}

type benchLog struct{ b *testing.B }

func (w benchLog) Write(p []byte) (int, error) {
	w.b.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// benchRepo is a repository's TUF metadata built by hand, as docker
// initialises it: root and targets keys held here, snapshot and timestamp
// keys held by the server.
type benchRepo struct {
	url, gun string
	client   *http.Client
	repo     *tuf.Repo
	n        int // targets added so far
}

func newBenchRepo(b *testing.B, client *http.Client, url, gun string) *benchRepo {
	b.Helper()
	cs := newCryptoService()
	rootPriv, err := cs.Create(data.CanonicalRootRole, data.GUN(gun), data.ECDSAKey)
	if err != nil {
		b.Fatal(err)
	}
	priv, _, err := cs.GetPrivateKey(rootPriv.ID())
	if err != nil {
		b.Fatal(err)
	}
	cert, err := cryptoservice.GenerateCertificate(priv, data.GUN(gun), time.Now().Add(-time.Hour), time.Now().AddDate(10, 0, 0))
	if err != nil {
		b.Fatal(err)
	}
	root := data.NewECDSAx509PublicKey(utils.CertToPEM(cert))
	targets, err := cs.Create(data.CanonicalTargetsRole, data.GUN(gun), data.ECDSAKey)
	if err != nil {
		b.Fatal(err)
	}
	r := &benchRepo{url: url, gun: gun, client: client, repo: tuf.NewRepo(cs)}
	err = r.repo.InitRoot(
		data.NewBaseRole(data.CanonicalRootRole, 1, root),
		data.NewBaseRole(data.CanonicalTimestampRole, 1, r.serverKey(b, "timestamp")),
		data.NewBaseRole(data.CanonicalSnapshotRole, 1, r.serverKey(b, "snapshot")),
		data.NewBaseRole(data.CanonicalTargetsRole, 1, targets), false)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.repo.InitTargets(data.CanonicalTargetsRole); err != nil {
		b.Fatal(err)
	}
	return r
}

func (r *benchRepo) serverKey(b *testing.B, role string) data.PublicKey {
	b.Helper()
	body := r.get(b, fmt.Sprintf("/v2/%s/_trust/tuf/%s.key", r.gun, role))
	k, err := data.UnmarshalPublicKey(body)
	if err != nil {
		b.Fatalf("parse %s key: %v", role, err)
	}
	return k
}

// get fetches path and fails unless the answer is 200.
func (r *benchRepo) get(b *testing.B, path string) []byte {
	resp, err := r.client.Get(r.url + path)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %.200s", path, resp.StatusCode, body)
	}
	return body
}

func (r *benchRepo) signRoot(b *testing.B) []byte {
	s, err := r.repo.SignRoot(data.DefaultExpires(data.CanonicalRootRole), nil)
	if err != nil {
		b.Fatalf("sign root: %v", err)
	}
	return benchMarshal(b, s)
}

// nextTargets adds one target and signs the next targets version.
func (r *benchRepo) nextTargets(b *testing.B) []byte {
	r.n++
	name := fmt.Sprintf("v%d", r.n)
	meta, err := data.NewFileMeta(strings.NewReader("manifest "+name), data.NotaryDefaultHashes...)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.repo.AddTargets(data.CanonicalTargetsRole, data.Files{name: meta}); err != nil {
		b.Fatalf("add target %s: %v", name, err)
	}
	s, err := r.repo.SignTargets(data.CanonicalTargetsRole, data.DefaultExpires(data.CanonicalTargetsRole))
	if err != nil {
		b.Fatalf("sign targets: %v", err)
	}
	return benchMarshal(b, s)
}

func benchMarshal(b *testing.B, s *data.Signed) []byte {
	raw, err := canonicaljson.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// encodeUpdate builds the multipart body of a publish: one part per role,
// filename <role>.json, as the notary client sends it.
func encodeUpdate(b *testing.B, files ...file) (body []byte, contentType string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		w, err := mw.CreateFormFile("files", f.name)
		if err != nil {
			b.Fatal(err)
		}
		w.Write(f.body) //nolint:errcheck // bytes.Buffer writes never fail
	}
	if err := mw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// publish POSTs an update and fails unless it is accepted.
func (r *benchRepo) publish(b *testing.B, body []byte, contentType string) {
	resp, err := r.client.Post(fmt.Sprintf("%s/v2/%s/_trust/tuf/", r.url, r.gun), contentType, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("publish: %d %.300s", resp.StatusCode, msg)
	}
}

// benchPublish times publishes of targets versions 2, 3, ... of one GUN,
// each with one more target than the last. Signing the new targets and
// encoding the request happen with the timer stopped, so ns/op is the
// round trip: the server's parsing, validation against the stored root,
// new snapshot and timestamp signed by the server, and the database
// transaction.
func benchPublish(b *testing.B, dsn string) {
	client := benchClient(b)
	url := startBenchServer(b, dsn)
	r := newBenchRepo(b, client, url, benchGUN)
	body, ct := encodeUpdate(b, file{"root.json", r.signRoot(b)}, file{"targets.json", r.nextTargets(b)})
	r.publish(b, body, ct)

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		body, ct := encodeUpdate(b, file{"targets.json", r.nextTargets(b)})
		b.StartTimer()
		r.publish(b, body, ct)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")

	// The last publish is the current version.
	var got data.SignedTargets
	if err := canonicaljson.Unmarshal(r.get(b, "/v2/"+benchGUN+"/_trust/tuf/targets.json"), &got); err != nil {
		b.Fatal(err)
	}
	if got.Signed.Version != b.N+1 || len(got.Signed.Targets) != b.N+1 {
		b.Fatalf("targets version %d with %d targets, want %d and %d", got.Signed.Version, len(got.Signed.Targets), b.N+1, b.N+1)
	}
}

// BenchmarkPublish publishes to a server over SQLite in a temporary folder.
func BenchmarkPublish(b *testing.B) {
	benchPublish(b, filepath.Join(b.TempDir(), "server.db"))
}

// BenchmarkPublishPostgres publishes to a server over PostgreSQL, where
// SIGNET_TEST_POSTGRES_DSN names one (scripts/start-postgres.sh); it is
// skipped otherwise, or fails with SIGNET_REQUIRE_ALL=1.
func BenchmarkPublishPostgres(b *testing.B) {
	benchPublish(b, testenv.FreshPostgresDB(b))
}

// benchRepoNTargets is the number of targets in the repository the GET
// benchmarks read.
const benchRepoNTargets = 20

// benchGetParallelism is the goroutines per CPU of the GET benchmarks.
const benchGetParallelism = 4

// benchGet times concurrent GETs of one current metadata file over SQLite
// from benchGetParallelism*GOMAXPROCS goroutines (8 on 2 CPUs, as
// bench/run.sh's trustload uses), checking that every answer is 200 with
// the same bytes. It reports req/s over the whole run.
func benchGet(b *testing.B, role string) {
	client := benchClient(b)
	url := startBenchServer(b, filepath.Join(b.TempDir(), "server.db"))
	r := newBenchRepo(b, client, url, benchGUN)
	for r.n < benchRepoNTargets-1 {
		r.n++
		meta, _ := data.NewFileMeta(strings.NewReader(fmt.Sprint(r.n)), data.NotaryDefaultHashes...)
		if _, err := r.repo.AddTargets(data.CanonicalTargetsRole, data.Files{fmt.Sprintf("v%d", r.n): meta}); err != nil {
			b.Fatal(err)
		}
	}
	body, ct := encodeUpdate(b, file{"root.json", r.signRoot(b)}, file{"targets.json", r.nextTargets(b)})
	r.publish(b, body, ct)
	path := "/v2/" + benchGUN + "/_trust/tuf/" + role + ".json"
	want := r.get(b, path)

	b.ReportAllocs()
	b.SetParallelism(benchGetParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url + path)
			if err != nil {
				b.Error(err)
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
				b.Errorf("GET %s: %d, %v, %d bytes differ from the %d expected", path, resp.StatusCode, err, len(got), len(want))
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkGetTimestamp reads the current timestamp, which the server
// checks against the current snapshot (and would re-sign if expired) on
// every read.
func BenchmarkGetTimestamp(b *testing.B) { benchGet(b, "timestamp") }

// BenchmarkGetTargets reads the current targets of a repository with
// benchRepoNTargets targets.
func BenchmarkGetTargets(b *testing.B) { benchGet(b, "targets") }
