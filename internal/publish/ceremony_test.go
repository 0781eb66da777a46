package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testkeys"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/ceremony"
)

// holder is a key holder: a trust dir of their own with one root key,
// and the root certificate they hand over for the ceremony.
type holder struct {
	c    Config
	id   string
	cert string
}

func newHolder(t *testing.T, server, gun string) holder {
	t.Helper()
	c := testConfig(t, server)
	id, cert := testkeys.RootHolder(t, c.TrustDir, c.Passphrases.PassRetriever(), gun)
	return holder{c: c, id: id, cert: cert}
}

// TestCeremonyTwoOfThree rotates a file-key root to a 2-of-3 root: three
// holders sign in turn with the trust server off the network, then it is
// published; a notary client with the old root cached follows, signet
// verify passes; below either threshold nothing can be published.
func TestCeremonyTwoOfThree(t *testing.T) {
	reg := testservers.Registry(t)
	server, down := testservers.SwitchableTrustServer(t)
	ctx := context.Background()
	admin := testConfig(t, server)
	image := reg + "/team/cer:v1"
	testservers.PushRandom(t, image)
	if _, err := Sign(ctx, admin, []Request{{Image: image}}); err != nil {
		t.Fatal(err)
	}
	gun := reg + "/team/cer"
	nd := t.TempDir()
	notary(t, nd, server, "list", gun) // caches root v1

	holders := []holder{newHolder(t, server, gun), newHolder(t, server, gun), newHolder(t, server, gun)}
	dir := filepath.Join(t.TempDir(), "ceremony")
	p, err := PrepareCeremony(ctx, admin, gun, dir, CeremonyChange{
		RootCerts: []string{holders[0].cert, holders[1].cert, holders[2].cert}, Threshold: 2}, "admin")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if p.Version != 2 || len(p.MustSign) != 2 || p.MustSign[1].Threshold != 2 || len(p.MustSign[1].Keys) != 3 {
		t.Fatalf("proposal %+v", p)
	}

	// Offline from here to publish.
	down.Store(true)
	status := func() bool {
		cer, err := ceremony.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, ok, err := cer.Status()
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i, signer := range []Config{holders[0].c, holders[1].c, admin} {
		if status() {
			t.Fatalf("publishable after %d signers", i)
		}
		if i == 2 {
			// Only new keys: the current root has not agreed.
			down.Store(false)
			if _, err := PublishCeremony(ctx, admin, dir, "admin"); err == nil || !strings.Contains(err.Error(), "current root has 0 of the 1 signatures") {
				t.Fatalf("publish signed by new keys only: %v", err)
			}
			down.Store(true)
		}
		if _, added, err := SignCeremony(signer, dir, nil, "signer", nil); err != nil || len(added) != 1 {
			t.Fatalf("sign %d: %v %v", i, added, err)
		}
	}
	// Signing again with one key changes nothing.
	if _, added, err := SignCeremony(holders[0].c, dir, nil, "signer", nil); err != nil || len(added) != 0 {
		t.Fatalf("second signature by one key: %v %v", added, err)
	}
	if !status() {
		t.Fatal("not publishable with the old root and 2 of 3 new keys")
	}
	down.Store(false)
	if _, err := PublishCeremony(ctx, admin, dir, "admin"); err != nil {
		t.Fatalf("publish: %v", err)
	}
	transcript, _ := os.ReadFile(filepath.Join(dir, ceremony.TranscriptFile))
	if n := strings.Count(string(transcript), "\n"); n != 5 {
		t.Fatalf("transcript has %d lines, want 5 (prepare, 3 signatures, publish):\n%s", n, transcript)
	}
	if out := notary(t, nd, server, "list", gun); !strings.Contains(out, "v1") {
		t.Fatalf("notary list after the ceremony:\n%s", out)
	}
	if _, err := Verify(ctx, admin, image); err != nil {
		t.Fatalf("verify after the ceremony: %v", err)
	}

	// The next ceremony needs 2 of the 3 new keys; the old file key
	// alone, or one new key, cannot publish.
	dir2 := filepath.Join(t.TempDir(), "again")
	if _, err := PrepareCeremony(ctx, admin, gun, dir2, CeremonyChange{Rotate: []string{"timestamp"}}, "admin"); err != nil {
		t.Fatalf("prepare 2: %v", err)
	}
	if _, _, err := SignCeremony(admin, dir2, nil, "admin", nil); err == nil || !strings.Contains(err.Error(), "none of the keys") {
		t.Fatalf("old root key signed the new ceremony: %v", err)
	}
	if _, _, err := SignCeremony(holders[2].c, dir2, nil, "signer", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := PublishCeremony(ctx, admin, dir2, "admin"); err == nil || !strings.Contains(err.Error(), "1 of the 2 signatures") {
		t.Fatalf("publish with one of two: %v", err)
	}
	// A mangled signature does not count.
	sigPath := filepath.Join(dir2, ceremony.SignaturesDir, holders[2].id+".json")
	b, _ := os.ReadFile(sigPath)
	var sig data.Signature
	json.Unmarshal(b, &sig)
	sig.Signature[0] ^= 1
	b, _ = json.Marshal(sig)
	os.WriteFile(sigPath, b, 0o600)
	if _, _, err := SignCeremony(holders[1].c, dir2, nil, "signer", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := PublishCeremony(ctx, admin, dir2, "admin"); err == nil || !strings.Contains(err.Error(), "1 of the 2") {
		t.Fatalf("publish with a mangled signature: %v", err)
	}
	// The trust server refuses it too, uploaded directly.
	cer, _ := ceremony.Load(dir2)
	raw := canonicaljson.RawMessage(cer.Proposal.Signed)
	rootJSON, _ := canonicaljson.Marshal(&data.Signed{Signed: &raw, Signatures: cer.List()[trust.DocRoot]})
	if code, body := upload(t, server, gun, rootJSON); code < 400 {
		t.Fatalf("server took a root below threshold: %d %s", code, body)
	}
	// Recovery: holder 0's key is lost; holders 1 and 2 are enough. The
	// mangled signature is replaced when holder 2 signs again.
	if _, added, err := SignCeremony(holders[2].c, dir2, nil, "signer", nil); err != nil || len(added) != 1 {
		t.Fatalf("re-sign over a mangled signature: %v %v", added, err)
	}
	if _, err := PublishCeremony(ctx, admin, dir2, "admin"); err != nil {
		t.Fatalf("publish without the lost key: %v", err)
	}
	if out := notary(t, nd, server, "list", gun); !strings.Contains(out, "v1") {
		t.Fatalf("notary list after the recovery:\n%s", out)
	}
}

// upload POSTs root.json as a Notary publish.
func upload(t *testing.T, server, gun string, root []byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	part, _ := w.CreateFormFile("files", "root.json")
	part.Write(root)
	w.Close()
	resp, err := http.Post(server+"/v2/"+gun+"/_trust/tuf/", w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
