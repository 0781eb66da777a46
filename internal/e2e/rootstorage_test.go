package e2e

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"testing"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/ceremony"
	"github.com/signet-project/signet/trust/server"
)

// TestRootBelowThresholdInStorage: a new root that its ceremony did not
// sign enough (one of two new keys, or new keys only without the current
// root), written straight into the trust server's storage past its
// checks, is refused by signet verify (with and without a cached root)
// and by a fresh proxy; a running proxy keeps its last verified data, as
// after any rejected refresh.
func TestRootBelowThresholdInStorage(t *testing.T) {
	cases := []struct {
		name    string
		signers func(admin publish.Config, holders []publish.Config) []publish.Config
	}{
		{"one of two new keys", func(admin publish.Config, h []publish.Config) []publish.Config { return []publish.Config{admin, h[0]} }},
		{"new keys only", func(_ publish.Config, h []publish.Config) []publish.Config { return []publish.Config{h[0], h[1]} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			reg := newRegistry(t)
			img := reg.push(t, "team/app:v1")
			st, err := server.OpenStore(ctx, filepath.Join(t.TempDir(), "trust.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			srv, err := server.New(ctx, server.Options{Store: st, KeyPassphrase: testservers.Passphrase})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv)
			t.Cleanup(hs.Close)
			getenv := func(k string) string { return passphrases[k] }
			admin := publish.Config{TrustDir: t.TempDir(), Server: hs.URL, Passphrases: &keys.Retriever{Getenv: getenv}}
			gun := reg.host + "/team/app"
			if _, err := publish.Sign(ctx, admin, []publish.Request{{Image: img.ref}}); err != nil {
				t.Fatal(err)
			}
			r := newReaders(t, reg.host, hs.URL, "")
			r.cfg.TrustDir = admin.TrustDir // the publisher's cache holds root v1
			r.expect("team/app:v1", true, "")

			// Two new root keys, threshold 2.
			var holders []publish.Config
			var certs []string
			for range 2 {
				h, cert := newRootHolder(t, gun)
				h.Server = hs.URL
				holders = append(holders, h)
				certs = append(certs, cert)
			}
			dir := filepath.Join(t.TempDir(), "ceremony")
			if _, err := publish.PrepareCeremony(ctx, admin, gun, dir, publish.CeremonyChange{RootCerts: certs, Threshold: 2}, "officer"); err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.signers(admin, holders) {
				if _, _, err := publish.SignCeremony(c, dir, nil, "signer", nil); err != nil {
					t.Fatal(err)
				}
			}
			cer, err := ceremony.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := cer.Status(); ok {
				t.Fatal("the ceremony is publishable; the case needs one that is not")
			}
			raw := canonicaljson.RawMessage(cer.Proposal.Signed)
			rootJSON, _ := canonicaljson.Marshal(&data.Signed{Signed: &raw, Signatures: cer.List()[trust.DocRoot]})
			var check struct {
				Signed struct{ Version int } `json:"signed"`
			}
			json.Unmarshal(rootJSON, &check)
			// Past the server's checks: straight into its storage.
			if err := st.UpdateMany(data.GUN(gun), []storage.MetaUpdate{{Role: data.CanonicalRootRole, Version: check.Signed.Version, Data: rootJSON}}); err != nil {
				t.Fatal(err)
			}
			// The running proxy keeps its last verified data (a rejected
			// refresh, reported as stale); every other reader denies.
			r.expectExcept("team/app:v1", false, "root", "running proxy")
			if _, err := publish.Verify(ctx, publish.Config{TrustDir: t.TempDir(), Server: hs.URL}, img.ref); !publish.IsDenied(err) {
				t.Errorf("verify from a fresh trust dir: %v", err)
			}
		})
	}
}
