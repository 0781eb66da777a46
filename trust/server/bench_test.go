package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testenv"
)

// The benchmarks run the server in process on loopback (httptest) and talk
// to it over real HTTP with one shared client, as a trust client would.
// bench/run.sh runs them with -count 5 and benchstat, and compares the
// server built as `signet server` with the original notary-server v0.7.0;
// bench/README.md has the figures. They build metadata with the tests'
// publisher (attack_test.go).

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

// startBenchServer runs a trust server over the store at dsn with opts,
// logging only errors (to the benchmark log).
func startBenchServer(b *testing.B, dsn string, opts Options) string {
	b.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{b}, &slog.HandlerOptions{Level: slog.LevelError}))
	ts, _ := startServer(b, dsn, opts)
	return ts.URL
}

// benchPublish times publishes of targets versions 2, 3, ... of one GUN,
// each with one more target than the last. Signing the new targets and
// encoding the request happen with the timer stopped, so ns/op is the
// round trip: the server's parsing, validation against the stored root,
// new snapshot and timestamp signed by the server, and the database
// transaction.
func benchPublish(b *testing.B, dsn string) {
	client := benchClient(b)
	url := startBenchServer(b, dsn, Options{})
	p := newPublisherClient(b, client, url, benchGUN)
	p.addTarget(data.CanonicalTargetsRole, "v1")
	body, ct := encodeUpdate(b, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
	mustPostEncoded(b, client, url, benchGUN, body, ct)

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p.addTarget(data.CanonicalTargetsRole, fmt.Sprintf("v%d", i+2))
		body, ct := encodeUpdate(b, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
		b.StartTimer()
		mustPostEncoded(b, client, url, benchGUN, body, ct)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")

	// The last publish is the current version.
	var got data.SignedTargets
	if err := canonicaljson.Unmarshal(p.get("/v2/"+benchGUN+"/_trust/tuf/targets.json"), &got); err != nil {
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

// benchGet times concurrent GETs of one current metadata file from a
// server over the store at dsn, from benchGetParallelism*GOMAXPROCS
// goroutines (8 on 2 CPUs, as bench/run.sh's trustload uses), checking
// that every answer is 200 with the same bytes. It reports req/s over the
// whole run.
func benchGet(b *testing.B, dsn, role string, opts Options) {
	client := benchClient(b)
	url := startBenchServer(b, dsn, opts)
	p := newPublisherClient(b, client, url, benchGUN)
	for n := 1; n <= benchRepoNTargets; n++ {
		p.addTarget(data.CanonicalTargetsRole, fmt.Sprintf("v%d", n))
	}
	body, ct := encodeUpdate(b, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
	mustPostEncoded(b, client, url, benchGUN, body, ct)
	path := "/v2/" + benchGUN + "/_trust/tuf/" + role + ".json"
	want := p.get(path)

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

func sqliteBench(b *testing.B) string { return filepath.Join(b.TempDir(), "server.db") }

// uncached turns the read cache off.
var uncached = Options{ReadCacheBytes: -1}

// BenchmarkGetTimestamp reads the current timestamp over SQLite: from the
// read cache, after one read of the repository's change counter.
func BenchmarkGetTimestamp(b *testing.B) { benchGet(b, sqliteBench(b), "timestamp", Options{}) }

// BenchmarkGetTimestampUncached reads it with the read cache off: the
// server reads the current timestamp and the snapshot it names from the
// database, and checks their expiry, on every read.
func BenchmarkGetTimestampUncached(b *testing.B) {
	benchGet(b, sqliteBench(b), "timestamp", uncached)
}

// BenchmarkGetTimestampPostgres is BenchmarkGetTimestamp over PostgreSQL
// (SIGNET_TEST_POSTGRES_DSN).
func BenchmarkGetTimestampPostgres(b *testing.B) {
	benchGet(b, testenv.FreshPostgresDB(b), "timestamp", Options{})
}

// BenchmarkGetTimestampPostgresUncached is BenchmarkGetTimestampUncached
// over PostgreSQL.
func BenchmarkGetTimestampPostgresUncached(b *testing.B) {
	benchGet(b, testenv.FreshPostgresDB(b), "timestamp", uncached)
}

// BenchmarkGetTargets reads the current targets of a repository with
// benchRepoNTargets targets over SQLite, from the read cache.
func BenchmarkGetTargets(b *testing.B) { benchGet(b, sqliteBench(b), "targets", Options{}) }

// BenchmarkGetTargetsUncached reads it with the read cache off.
func BenchmarkGetTargetsUncached(b *testing.B) { benchGet(b, sqliteBench(b), "targets", uncached) }

// benchChangeCount times the read of a repository's change counter that
// every cached read begins with: what the cross-replica check costs.
func benchChangeCount(b *testing.B, dsn string) {
	ctx := context.Background()
	st, err := OpenStore(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.countChange(ctx, benchGUN); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(benchGetParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if n, err := st.changeCount(ctx, benchGUN); err != nil || n != 1 {
				b.Errorf("change counter %d, %v", n, err)
				return
			}
		}
	})
}

// BenchmarkChangeCount reads the change counter from SQLite.
func BenchmarkChangeCount(b *testing.B) { benchChangeCount(b, sqliteBench(b)) }

// BenchmarkChangeCountPostgres reads it from PostgreSQL.
func BenchmarkChangeCountPostgres(b *testing.B) { benchChangeCount(b, testenv.FreshPostgresDB(b)) }
