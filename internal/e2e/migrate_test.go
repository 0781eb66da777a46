package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/migrate"
	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testnotary"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/mirror"
	"github.com/signet-project/signet/trust/server"
)

// TestMigrateOffNotaryServer is the move a DCT user makes: a repository
// the notary v0.7.0 CLI published to notary-server v0.7.0 over several
// versions (a root key rotation, the snapshot key on the server) is
// migrated into signet over TLS: mirrored, then taken over (timestamp and
// snapshot keys to signet's, in a root version signed by the root key the
// notary CLI holds). notary-server is stopped; signet signs a new tag; the
// notary CLI that cached the old root from notary-server lists old and new
// tags from signet, docker trust inspect reads them, and the root names
// the key signet's GET timestamp.key returns.
func TestMigrateOffNotaryServer(t *testing.T) {
	reg := newRegistry(t)
	ns := testnotary.StartServer(t, `{"backend":"memory"}`)
	gun := reg.host + "/team/app"
	pub := testnotary.PublishHistory(t, ns.URL, gun, reg.host)
	reader := testnotary.NewCLI(t)
	before := reader.Must(ns.URL, "list", gun)

	dst, caFile := tlsTrustServerWith(t, server.Options{AllowImport: true})
	auth := trust.TransportOptions{CAFile: caFile}
	src, err := mirror.NewServerSource(ns.URL, trust.TransportOptions{}, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := mirror.NewServerSink(dst, auth)
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return testnotary.Passphrase }
	results, err := migrate.Run(context.Background(), migrate.Options{
		Mirror:  mirror.Options{Source: src, Sink: sink, Repositories: []string{gun}},
		To:      dst,
		Publish: publish.Config{TrustDir: pub.TrustDir, TrustAuth: auth, Passphrases: &keys.Retriever{Getenv: getenv}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := results[0]
	if r.Mirror.Outcome != mirror.Copied || !r.TakenOver || r.Rotated["timestamp"] == "" || r.Rotated["snapshot"] == "" {
		t.Fatalf("migration: %+v (mirror err %v, take-over err %v)", r, r.Mirror.Err, r.Err)
	}
	if !strings.Contains(r.Clients, "DOCKER_CONTENT_TRUST_SERVER="+dst) {
		t.Fatalf("client advice %q", r.Clients)
	}
	ns.Stop()

	// The root names the timestamp key the server hands out.
	client := httpsClient(t, caFile)
	key, err := data.UnmarshalPublicKey(fetch(t, client, dst+"/v2/"+gun+"/_trust/tuf/timestamp.key"))
	if err != nil {
		t.Fatal(err)
	}
	var root struct {
		Signed struct {
			Roles map[string]struct {
				KeyIDs []string `json:"keyids"`
			} `json:"roles"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(fetch(t, client, dst+"/v2/"+gun+"/_trust/tuf/root.json"), &root); err != nil {
		t.Fatal(err)
	}
	if ids := root.Signed.Roles["timestamp"].KeyIDs; len(ids) != 1 || ids[0] != key.ID() || key.ID() != r.Rotated["timestamp"] {
		t.Fatalf("root names timestamp keys %v; GET timestamp.key gives %s; rotated to %s", ids, key.ID(), r.Rotated["timestamp"])
	}

	// signet signs a new tag, with the repository key the notary CLI made.
	img := reg.push(t, "team/app:after")
	sum, _ := hex.DecodeString(img.digest.Hex)
	c := publish.Config{TrustDir: pub.TrustDir, Server: dst, TrustAuth: auth, Passphrases: &keys.Retriever{Getenv: getenv}}
	if _, err := publish.Sign(context.Background(), c, []publish.Request{{Image: reg.host + "/team/app:after", Digest: "sha256:" + hex.EncodeToString(sum), Size: img.size}}); err != nil {
		t.Fatalf("sign after the take-over: %v", err)
	}

	// The notary CLI that cached notary-server's root lists old and new.
	reader.CACert = caFile
	after := reader.Must(dst, "list", gun)
	for _, line := range strings.Split(strings.TrimSpace(before), "\n")[2:] {
		if tag := strings.Fields(line)[0]; !strings.Contains(after, tag) {
			t.Errorf("notary list from signet lacks %s:\n%s", tag, after)
		}
	}
	if !strings.Contains(after, "after") {
		t.Errorf("notary list from signet lacks the new tag:\n%s", after)
	}
	// signet verify from a fresh trust dir, and docker trust inspect.
	if _, err := publish.Verify(context.Background(), publish.Config{TrustDir: t.TempDir(), Server: dst, TrustAuth: auth}, reg.host+"/team/app:signed"); err != nil {
		t.Fatalf("verify a tag signed on notary-server: %v", err)
	}
	docker := newDockerCLI(t, dst, caFile)
	out := docker.run("trust", "inspect", gun)
	for _, tag := range []string{`"SignedTag": "signed"`, `"SignedTag": "after"`, `"SignedTag": "v1"`} {
		if !strings.Contains(out, tag) {
			t.Errorf("docker trust inspect lacks %s:\n%s", tag, out)
		}
	}
}

func httpsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	cfg, err := trust.TLSConfig("", caFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

func fetch(t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return b
}
