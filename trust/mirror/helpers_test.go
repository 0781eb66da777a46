package mirror

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq" // PostgreSQL, for reading a store's rows
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/sqlitedb"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/internal/testtuf"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/server"
)

// signetServer is signet's trust server in process, with imports on.
type signetServer struct {
	URL string
	dsn string // SQLite file or postgres:// URL
	srv *httptest.Server
}

// backends gives each store a test should run on: SQLite always,
// PostgreSQL when configured (required under SIGNET_REQUIRE_ALL=1).
func backends(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "trust.db") },
		"postgres": func(t *testing.T) string { return testenv.FreshPostgresDB(t) },
	}
}

func startSignet(t *testing.T, dsn string, allowImport bool) *signetServer {
	t.Helper()
	return startSignetWith(t, dsn, server.Options{AllowImport: allowImport})
}

// startSignetWith starts the server with opts (Store and KeyPassphrase
// are filled in).
func startSignetWith(t *testing.T, dsn string, opts server.Options) *signetServer {
	t.Helper()
	ctx := context.Background()
	st, err := server.OpenStore(ctx, dsn)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	opts.Store, opts.KeyPassphrase = st, testservers.Passphrase
	srv, err := server.New(ctx, opts)
	if err != nil {
		t.Fatalf("start trust server: %v", err)
	}
	s := httptest.NewServer(srv)
	t.Cleanup(s.Close)
	return &signetServer{URL: s.URL, dsn: dsn, srv: s}
}

func newSignet(t *testing.T) *signetServer {
	return startSignet(t, filepath.Join(t.TempDir(), "trust.db"), true)
}

func (s *signetServer) sink(t *testing.T) *ServerSink {
	t.Helper()
	k, err := NewServerSink(s.URL, trust.TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rows lists the store's tuf_files rows of gun as "role vN sha256".
func (s *signetServer) rows(t *testing.T, gun string) []string {
	t.Helper()
	open := sqlitedb.Open
	if strings.HasPrefix(s.dsn, "postgres") {
		open = func(dsn string) (*sql.DB, error) { return sql.Open("postgres", dsn) }
	}
	db, err := open(s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT role, version, sha256 FROM tuf_files WHERE gun = $1 ORDER BY role, version`, gun)
	if err != nil {
		t.Fatalf("read rows: %v", err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var role, sum string
		var v int
		if err := rs.Scan(&role, &v, &sum); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s v%d %s", role, v, sum))
	}
	return out
}

// get fetches one metadata file of gun from a Notary server; 404 is nil.
func get(t *testing.T, base, gun, name string) []byte {
	t.Helper()
	resp, err := http.Get(base + "/v2/" + gun + "/_trust/tuf/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return b
	case http.StatusNotFound:
		return nil
	}
	t.Fatalf("GET %s of %s: %s %s", name, gun, resp.Status, b)
	return nil
}

// sameFiles checks that two servers serve the same bytes for every name.
func sameFiles(t *testing.T, wantURL, gotURL, gun string, names []string) {
	t.Helper()
	for _, n := range names {
		want, got := get(t, wantURL, gun, n), get(t, gotURL, gun, n)
		if want == nil {
			t.Fatalf("the source has no %s of %s", n, gun)
		}
		if string(want) != string(got) {
			t.Fatalf("%s of %s differs:\nsource: %.200s\ncopy:   %.200s", n, gun, want, got)
		}
	}
}

// tufRepo is a repository whose keys the test holds (internal/testtuf),
// served over HTTP as a Notary v1 server.
type tufRepo struct {
	*testtuf.Server
	URL string
}

// newTUFRepo publishes a repository with a history: targets over two
// versions, a targets/releases delegation with a target, and a root key
// rotation (root v1 -> v2).
func newTUFRepo(t *testing.T, gun string) *tufRepo {
	t.Helper()
	s := testtuf.New(t, gun)
	s.AddTarget(data.CanonicalTargetsRole, "v1", "manifest v1")
	s.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	s.Delegate("targets/releases")
	s.AddTarget("targets/releases", "v2", "manifest v2")
	s.Publish(data.CanonicalTargetsRole, "targets/releases")
	s.Root = s.CertKey()
	if err := s.Repo.ReplaceBaseKeys(data.CanonicalRootRole, s.Root); err != nil {
		t.Fatal(err)
	}
	s.AddTarget(data.CanonicalTargetsRole, "v3", "manifest v3")
	s.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	return serveTUF(t, s)
}

func serveTUF(t *testing.T, s *testtuf.Server) *tufRepo {
	return &tufRepo{Server: s, URL: serve(t, s)}
}

// serve serves h on loopback and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// multiTUF serves several testtuf repositories from one server.
type multiTUF map[string]*testtuf.Server

func (m multiTUF) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	for gun, s := range m {
		if strings.HasPrefix(r.URL.Path, "/v2/"+gun+"/_trust/") {
			s.ServeHTTP(w, r)
			return
		}
	}
	http.NotFound(w, r)
}

// repoFiles are the names a repository made by newTUFRepo is served
// under.
var repoFiles = []string{"1.root.json", "2.root.json", "root.json", "timestamp.json", "snapshot.json", "targets.json", "targets/releases.json"}

func serverSource(t *testing.T, url string) *ServerSource {
	t.Helper()
	s, err := NewServerSource(url, trust.TransportOptions{}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustRun(t *testing.T, opts Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

// one runs a mirror of one repository and returns its result.
func one(t *testing.T, src Source, sink Sink, gun string, mod ...func(*Options)) Result {
	t.Helper()
	opts := Options{Source: src, Sink: sink, Repositories: []string{gun}}
	for _, m := range mod {
		m(&opts)
	}
	rep := mustRun(t, opts)
	if len(rep.Results) != 1 {
		t.Fatalf("%d results", len(rep.Results))
	}
	return rep.Results[0]
}

func wantOutcome(t *testing.T, r Result, o Outcome) {
	t.Helper()
	if r.Outcome != o {
		t.Fatalf("%s: %s (err %v), want %s", r.GUN, r.Outcome, r.Err, o)
	}
}

func files(list []File) []string {
	var out []string
	for _, f := range list {
		out = append(out, f.String())
	}
	sort.Strings(out)
	return out
}

func at(d time.Duration) func(*Options) {
	return func(o *Options) { o.Now = func() time.Time { return time.Now().Add(d) } }
}
