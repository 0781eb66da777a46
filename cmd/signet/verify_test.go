package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/internal/testtuf"
)

// TestVerifyExitCodes: `signet verify` exits 0 when the registry serves
// the signed manifest, 1 when it is denied (including trust data that
// fails verification), and 2 when it could not check, as its help and
// docs/verification.md say.
func TestVerifyExitCodes(t *testing.T) {
	reg := testservers.Registry(t)
	push := func(tag string) (sum []byte, size int64) {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.NewTag(reg + "/exit/app:" + tag)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		raw, _ := img.RawManifest()
		sum, _ = hex.DecodeString(d.Hex)
		return sum, int64(len(raw))
	}
	ts := testtuf.New(t, reg+"/exit/app")
	sum, size := push("good")
	ts.AddTargetHash(data.CanonicalTargetsRole, "good", sum, size)
	ts.AddTargetHash(data.CanonicalTargetsRole, "moved", sum, size)
	push("moved")
	ts.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)

	// A second repository whose releases delegation has expired.
	ts2 := testtuf.New(t, reg+"/exit/expired")
	ts2.AddTargetHash(data.CanonicalTargetsRole, "v1", sum, size)
	ts2.Delegate("targets/releases")
	ts2.AddTargetHash("targets/releases", "v1", sum, size)
	ts2.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	sg, err := ts2.Repo.SignTargets("targets/releases", time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ts2.ServeRaw("targets/releases", testtuf.Marshal(t, sg))
	srv2 := httptest.NewServer(ts2)
	t.Cleanup(srv2.Close)

	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"signed", []string{reg + "/exit/app:good"}, 0, ""},
		{"moved after signing", []string{reg + "/exit/app:moved"}, 1, "the tag moved after signing"},
		{"not signed", []string{reg + "/exit/app:other"}, 1, "not signed in targets/releases or targets"},
		{"expired delegation", []string{"--trust-server", srv2.URL, reg + "/exit/expired:v1"}, 1, "expired"},
		{"trust server unreachable", []string{"--trust-server", "http://127.0.0.1:1", reg + "/exit/app:good"}, 2, "127.0.0.1:1"},
		{"no argument", nil, 2, "accepts 1 arg"},
		{"unknown flag", []string{"--nope", reg + "/exit/app:good"}, 2, "unknown flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SIGNET_TRUST_DIR", dir)
			t.Setenv("SIGNET_TRUST_SERVER", srv.URL)
			t.Setenv("HOME", dir)
			root := newRootCmd()
			var out, errOut bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&errOut)
			root.SetArgs(append([]string{"verify"}, tc.args...))
			err := root.ExecuteContext(context.Background())
			code := 0
			if err != nil {
				code = exitCode(err)
			}
			if code != tc.code || (tc.want != "" && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("exit %d (%v), want %d with %q", code, err, tc.code, tc.want)
			}
		})
	}
}
