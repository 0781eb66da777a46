package publish

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/cryptoservice"
	store "github.com/theupdateframework/notary/storage"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"

	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
)

// TestRotateTargets: a compromised repository key is replaced: root
// version 2 names the new key, the targets are signed again with it in
// the same publish, a notary client with the old cached root lists the
// same tags, signet verifies them, signing goes on, and the trust server
// refuses targets signed by the old key (but takes the same file signed
// by the new one).
func TestRotateTargets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fromKeys bool // --targets-key: a key already in the trust dir
	}{
		{"new key", false},
		{"key from the store", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testservers.Registry(t)
			server := testservers.TrustServer(t)
			ctx := context.Background()
			c := testConfig(t, server)
			repo := reg + "/team/rot"
			for _, tag := range []string{"v1", "v2", "v3"} {
				testservers.PushRandom(t, repo+":"+tag)
			}
			sign(t, c, repo+":v1")
			if _, err := SignerAdd(ctx, c, "alice", []string{genKey(t, c, "targets/alice")}, []string{repo}); err != nil {
				t.Fatal(err)
			}
			sign(t, c, repo+":v2")
			nd := t.TempDir()
			notary(t, nd, server, "list", repo) // caches root version 1
			oldKey := targetsKey(t, c, repo)

			keyID := ""
			if tc.fromKeys {
				s, err := keys.Open(c.TrustDir, c.Passphrases)
				if err != nil {
					t.Fatal(err)
				}
				info, err := s.Generate("targets", repo, "ecdsa")
				if err != nil {
					t.Fatal(err)
				}
				keyID = info.ID
			}
			var ids []string
			if keyID != "" {
				ids = []string{keyID}
			}
			gun, res, err := RotateTargets(ctx, c, repo, ids, 0)
			if err != nil {
				t.Fatalf("rotate targets: %v", err)
			}
			newKey := res.Keys["targets"]
			if res.RootVersion != 2 || newKey == "" || newKey == oldKey || (keyID != "" && newKey != keyID) {
				t.Fatalf("rotate: %+v (old key %s, asked for %q)", res, oldKey, keyID)
			}
			if !slices.Equal(res.OldKeys, []string{oldKey}) {
				t.Errorf("old keys %v, want %s", res.OldKeys, oldKey)
			}
			if got := targetsKey(t, testConfig(t, server), repo); got != newKey {
				t.Fatalf("root names %s for targets, want %s", got, newKey)
			}
			out := notary(t, nd, server, "list", repo)
			for _, tag := range []string{"v1", "v2"} {
				if !strings.Contains(out, tag) {
					t.Fatalf("notary list with the old cached root lacks %s:\n%s", tag, out)
				}
			}
			wantVerified(t, c, repo+":v1", "targets")
			wantVerified(t, c, repo+":v2", "targets/releases")
			wantVerified(t, testConfig(t, server), repo+":v1", "targets")

			// Work goes on: the new key signs targets (adding a signer),
			// the signers sign tags.
			if _, err := SignerAdd(ctx, c, "bob", []string{genKey(t, c, "targets/bob")}, []string{repo}); err != nil {
				t.Fatalf("add a signer with the new repository key: %v", err)
			}
			sign(t, c, repo+":v3")
			wantVerified(t, testConfig(t, server), repo+":v3", "targets/releases")

			_, err = uploadTargetsSignedBy(t, c, server, gun, oldKey)
			wantErr(t, err, "valid signatures did not meet threshold for targets")
			if _, err := uploadTargetsSignedBy(t, c, server, gun, newKey); err != nil {
				t.Fatalf("the same upload signed by the new key: %v", err)
			}
		})
	}
}

// targetsKey is the one targets key root names.
func targetsKey(t *testing.T, c Config, repo string) string {
	t.Helper()
	r, err := untaggedRepo(repo)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := c.read(context.Background(), r, false)
	if err != nil {
		t.Fatal(err)
	}
	ids := res.Roles["targets"].KeyIDs
	if len(ids) != 1 {
		t.Fatalf("targets keys %v, want one", ids)
	}
	return ids[0]
}

// uploadTargetsSignedBy uploads the current targets of gun, version
// bumped, signed by keyID from c's trust dir, as a holder of that key
// could without signet.
func uploadTargetsSignedBy(t *testing.T, c Config, server, gun, keyID string) ([]byte, error) {
	t.Helper()
	ks, err := trustmanager.NewKeyFileStore(c.TrustDir, c.Passphrases.PassRetriever())
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := cryptoservice.NewCryptoService(ks).GetPrivateKey(keyID)
	if err != nil {
		t.Fatal(err)
	}
	return uploadTargetsSignedWith(t, c, server, gun, data.PublicKeyFromPrivate(priv))
}

// uploadTargetsSignedWith is uploadTargetsSignedBy with the public key
// root lists (a certificate, for a key from one), whose private key c's
// trust dir holds.
func uploadTargetsSignedWith(t *testing.T, c Config, server, gun string, pub data.PublicKey) ([]byte, error) {
	t.Helper()
	resp, err := http.Get(server + "/v2/" + gun + "/_trust/tuf/targets.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var s data.Signed
	if err := canonicaljson.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	tg, err := data.TargetsFromSigned(&s, data.CanonicalTargetsRole)
	if err != nil {
		t.Fatal(err)
	}
	tg.Signed.Version++
	sg, err := tg.ToSigned()
	if err != nil {
		t.Fatal(err)
	}
	sg.Signatures = nil
	ks, err := trustmanager.NewKeyFileStore(c.TrustDir, c.Passphrases.PassRetriever())
	if err != nil {
		t.Fatal(err)
	}
	cs := cryptoservice.NewCryptoService(ks)
	if err := signed.Sign(cs, sg, []data.PublicKey{pub}, 1, nil); err != nil {
		t.Fatal(err)
	}
	b, err := canonicaljson.Marshal(sg)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := store.NewHTTPStore(server+"/v2/"+gun+"/_trust/tuf/", "", "json", "key", http.DefaultTransport)
	if err != nil {
		t.Fatal(err)
	}
	return b, remote.SetMulti(map[string][]byte{"targets": b})
}

// TestRotateTargetsRefuses: what cannot become the repository key, or
// a trust dir without the root key, is refused before anything changes.
func TestRotateTargetsRefuses(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	c := testConfig(t, server)
	repo := reg + "/team/refuse"
	testservers.PushRandom(t, repo+":v1")
	sign(t, c, repo+":v1")
	s, err := keys.Open(c.TrustDir, c.Passphrases)
	if err != nil {
		t.Fatal(err)
	}
	var rootKey string
	for _, k := range s.List() {
		if k.Role == "root" {
			rootKey = k.ID
		}
	}
	for _, tc := range []struct {
		name  string
		c     Config
		keyID string
		k     int
		want  string
	}{
		{"a root key", c, rootKey, 0, "is a root key: pass a repository key"},
		{"a key not in the trust dir", c, strings.Repeat("0", 64), 0, "not in " + c.TrustDir},
		{"the current key", c, targetsKey(t, c, repo), 0, "already is a repository key"},
		{"no root key in the trust dir", testConfig(t, server), "", 0, "holds too few of the root keys"},
		{"a threshold above the keys", c, "", 2, "targets threshold 2 of " + strings.TrimPrefix(repo, "http://") + ": only 1 targets keys"},
		{"a threshold below 1", c, "", -1, "give a threshold of 1 or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ids []string
			if tc.keyID != "" {
				ids = []string{tc.keyID}
			}
			before := len(keyIDs(t, tc.c))
			_, _, err := RotateTargets(ctx, tc.c, repo, ids, tc.k)
			wantErr(t, err, tc.want)
			if after := len(keyIDs(t, tc.c)); after != before {
				t.Errorf("a refused rotation left %d keys in the trust dir, had %d", after, before)
			}
			wantErr(t, err, tc.want)
		})
	}
	wantVerified(t, testConfig(t, server), repo+":v1", "targets")
	if r := rootVersion(t, c, repo); r != 1 {
		t.Errorf("root version %d after refused rotations, want 1", r)
	}
}

// rootVersion returns the verified root version of repo.
func rootVersion(t *testing.T, c Config, repo string) int {
	t.Helper()
	r, err := untaggedRepo(repo)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := c.read(context.Background(), r, false)
	if err != nil {
		t.Fatal(err)
	}
	return res.Roles["root"].Version
}

// keyIDs lists the key IDs of c's trust dir.
func keyIDs(t *testing.T, c Config) []string {
	t.Helper()
	s, err := keys.Open(c.TrustDir, c.Passphrases)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range s.List() {
		out = append(out, k.ID)
	}
	return out
}
