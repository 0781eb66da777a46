package publish

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testservers"
)

// TestRotateTimestamp: a new server-held timestamp key named by a new
// root version signed by the existing root key; a notary client that
// cached the old root lists the repository afterwards, and the server
// signs the timestamp with the new key.
func TestRotateTimestamp(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	c := testConfig(t, server)
	image := reg + "/team/rot:v1"
	testservers.PushRandom(t, image)
	if _, err := Sign(ctx, c, []Request{{Image: image}}); err != nil {
		t.Fatal(err)
	}
	// A notary client caches root version 1.
	nd := t.TempDir()
	notary(t, nd, server, "list", reg+"/team/rot")

	gun, res, err := Rotate(ctx, c, reg+"/team/rot", []string{"timestamp"}, false)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if res.RootVersion != 2 || res.Keys["timestamp"] == "" {
		t.Fatalf("rotate result %+v", res)
	}
	// The timestamp the server now serves is signed by the new key.
	resp, err := http.Get(server + "/v2/" + gun + "/_trust/tuf/timestamp.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ts struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(body, &ts); err != nil || len(ts.Signatures) != 1 || ts.Signatures[0].KeyID != res.Keys["timestamp"] {
		t.Fatalf("timestamp signed by %+v, want %s (%v)", ts.Signatures, res.Keys["timestamp"], err)
	}
	// The old client follows the rotation; signet verifies from its cache.
	if out := notary(t, nd, server, "list", reg+"/team/rot"); !strings.Contains(out, "v1") {
		t.Fatalf("notary list after rotation:\n%s", out)
	}
	if _, err := Verify(ctx, c, image); err != nil {
		t.Fatalf("verify after rotation: %v", err)
	}
	// Signing goes on with the new keys.
	testservers.PushRandom(t, reg+"/team/rot:v2")
	if _, err := Sign(ctx, c, []Request{{Image: reg + "/team/rot:v2"}}); err != nil {
		t.Fatalf("sign after rotation: %v", err)
	}
	if out := notary(t, nd, server, "list", reg+"/team/rot"); !strings.Contains(out, "v2") {
		t.Fatalf("notary list lacks v2:\n%s", out)
	}
}

func TestRotateRefusesWhatItCannotDo(t *testing.T) {
	server := testservers.TrustServer(t)
	c := testConfig(t, server)
	for _, tc := range []struct {
		roles []string
		want  string
	}{
		{[]string{"snapshot"}, "--server-managed"},
		{[]string{"timestamp", "timestamp"}, "named twice"},
	} {
		_, _, err := Rotate(context.Background(), c, "registry.example.com/team/none", tc.roles, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rotate %v: %v, want %q", tc.roles, err, tc.want)
		}
	}
}

// TestRotateRoot: the one-shot root rotation (all keys at hand); a notary
// client with the old root cached follows.
func TestRotateRoot(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	c := testConfig(t, server)
	image := reg + "/team/rr:v1"
	testservers.PushRandom(t, image)
	if _, err := Sign(ctx, c, []Request{{Image: image}}); err != nil {
		t.Fatal(err)
	}
	nd := t.TempDir()
	notary(t, nd, server, "list", reg+"/team/rr")
	_, res, err := Rotate(ctx, c, reg+"/team/rr", []string{"root"}, false)
	if err != nil || res.RootVersion != 2 || res.Keys["root"] == "" {
		t.Fatalf("rotate root: %+v %v", res, err)
	}
	if out := notary(t, nd, server, "list", reg+"/team/rr"); !strings.Contains(out, "v1") {
		t.Fatalf("notary list after the root rotation:\n%s", out)
	}
	if _, err := Verify(ctx, c, image); err != nil {
		t.Fatal(err)
	}
	// Twice: the new key (now the current root) signs the next one.
	if _, res, err := Rotate(ctx, c, reg+"/team/rr", []string{"root"}, false); err != nil || res.RootVersion != 3 {
		t.Fatalf("second root rotation: %+v %v", res, err)
	}
}
