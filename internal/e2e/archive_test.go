package e2e

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testlog"
	"github.com/signet-project/signet/internal/testtuf"
	"github.com/signet-project/signet/registry/proxy"
	"github.com/signet-project/signet/trust/verify"
)

// TestArchiveMode: a repository whose timestamp can no longer be renewed
// (mirrored off a server that is gone, its root key lost). Past the
// timestamp's expiry the proxy denies it as frozen; with an archive rule
// pinning the mirrored snapshot it serves it, logging each allow as
// "archive"; any other snapshot, or a changed byte in the archived
// targets, is denied.
func TestArchiveMode(t *testing.T) {
	reg := newRegistry(t)
	img := reg.push(t, "team/old:v1")
	ts := testtuf.New(t, reg.host+"/team/old")
	sign(ts, data.CanonicalTargetsRole, "v1", img)
	ts.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	snap := ts.File("snapshot.json")
	pin := testtuf.Digest(string(snap))
	later := time.Now().Add(30 * 24 * time.Hour) // the timestamp expired (14 days)

	start := func(archive []byte) (string, *testlog.Buffer) {
		var logs testlog.Buffer
		p, err := proxy.New(proxy.Options{
			Upstreams: []proxy.Upstream{{URL: "http://" + reg.host}},
			Policy: proxy.Policy{Rules: []proxy.Rule{{Name: "old", Match: reg.host + "/team/*", TrustServer: srv.URL,
				Pin: verify.Pin{CertIDs: []string{ts.RootCertID()}}, ArchiveSnapshot: archive}}},
			Now:    func() time.Time { return later },
			Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		s := httptest.NewServer(p.Handler())
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://"), &logs
	}

	host, _ := start(nil)
	if err := pull(host, "team/old:v1"); !isDenied(err) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("without an archive rule: %v, want denied as expired", err)
	}
	host, logs := start(pin)
	if err := pull(host, "team/old:v1"); err != nil {
		t.Fatalf("with the archive rule: %v", err)
	}
	if !strings.Contains(logs.String(), `"decision":"archive"`) {
		t.Fatalf("allow not logged as archive:\n%s", logs.String())
	}
	if err := pull(host, "team/old:nope"); !isDenied(err) {
		t.Fatalf("archive mode served an unsigned tag: %v", err)
	}
	other := append([]byte(nil), pin...)
	other[31] ^= 1
	host, _ = start(other)
	if err := pull(host, "team/old:v1"); !isDenied(err) || !strings.Contains(err.Error(), "not the archived trust data") {
		t.Fatalf("another snapshot pinned: %v", err)
	}

	// One byte of the archived targets changed on the server.
	for _, name := range ts.Files() {
		if strings.HasPrefix(name, "targets") {
			// A space: same meaning, other bytes than the snapshot hashed.
			ts.SetFile(name, []byte(strings.Replace(string(ts.File(name)), `"length":`, `"length": `, 1)))
		}
	}
	host, _ = start(pin)
	if err := pull(host, "team/old:v1"); !isDenied(err) {
		t.Fatalf("archive mode served a changed targets file: %v", err)
	}
}
