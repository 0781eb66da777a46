package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/theupdateframework/notary/client"
	"github.com/theupdateframework/notary/passphrase"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testenv"
)

const testPassphrase = "correct horse battery staple"

// backends lists the databases every server test runs against. PostgreSQL
// runs where SIGNET_TEST_POSTGRES_DSN is set (CI sets it and requires it).
func backends(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "server.db") },
		"postgres": func(t *testing.T) string { return testenv.FreshPostgresDB(t) },
	}
}

// startServer runs a trust server on loopback over a store at dsn.
func startServer(t testing.TB, dsn string, opts Options) (*httptest.Server, *Server) {
	t.Helper()
	ctx := context.Background()
	st, err := OpenStore(ctx, dsn)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	opts.Store = st
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if opts.KeyPassphrase == "" {
		opts.KeyPassphrase = testPassphrase
	}
	srv, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, srv
}

// newRepo is a notary client repository (the library docker uses) with
// its own trust dir.
func newRepo(t *testing.T, dir, url, gun string) client.Repository {
	t.Helper()
	repo, err := client.NewFileCachedRepository(dir, data.GUN(gun), url, http.DefaultTransport,
		passphrase.ConstantRetriever(testPassphrase), trustpinning.TrustPinConfig{})
	if err != nil {
		t.Fatalf("new repository: %v", err)
	}
	return repo
}

func initRepo(t *testing.T, repo client.Repository) {
	t.Helper()
	rootKey, err := repo.GetCryptoService().Create(data.CanonicalRootRole, "", data.ECDSAKey)
	if err != nil {
		t.Fatalf("create root key: %v", err)
	}
	if err := repo.Initialize([]string{rootKey.ID()}, data.CanonicalSnapshotRole); err != nil {
		t.Fatalf("initialize: %v", err)
	}
}

func addTarget(t *testing.T, repo client.Repository, name string, content []byte, roles ...data.RoleName) {
	t.Helper()
	meta, err := data.NewFileMeta(bytesReader(content), data.NotaryDefaultHashes...)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.AddTarget(&client.Target{Name: name, Hashes: meta.Hashes, Length: meta.Length}, roles...); err != nil {
		t.Fatalf("add target %s: %v", name, err)
	}
}

func TestNotaryClientRoundTrip(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ts, _ := startServer(t, dsn(t), Options{})
			gun := "registry.example.com/team/app"
			repo := newRepo(t, t.TempDir(), ts.URL, gun)
			initRepo(t, repo)
			addTarget(t, repo, "v1", []byte("manifest one"))
			if err := repo.Publish(); err != nil {
				t.Fatalf("publish: %v", err)
			}

			// A second client, fresh cache, sees the target.
			reader := newRepo(t, t.TempDir(), ts.URL, gun)
			got, err := reader.GetTargetByName("v1")
			if err != nil {
				t.Fatalf("get target: %v", err)
			}
			want, _ := data.NewFileMeta(bytesReader([]byte("manifest one")), data.NotaryDefaultHashes...)
			if got.Length != want.Length || string(got.Hashes["sha256"]) != string(want.Hashes["sha256"]) {
				t.Fatalf("target v1 = %d %x, want %d %x", got.Length, got.Hashes["sha256"], want.Length, want.Hashes["sha256"])
			}
		})
	}
}
