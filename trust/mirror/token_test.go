package mirror

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signet-project/signet/internal/tokenserver"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/server"
	"github.com/signet-project/signet/trust/server/auth"
)

// TestTokenAuth: a source behind docker token auth, as notary.docker.io
// is, read with the credentials the Docker keychain holds for the
// repository's registry (docker's rule: the registry login is used for
// its trust server); and a destination behind token auth, written with
// explicit credentials.
func TestTokenAuth(t *testing.T) {
	tokens, err := tokenserver.New(tokenserver.Options{Issuer: "hub", Service: "notary", RequireLogin: true,
		Users: map[string]string{"hubuser": "hub-password"}})
	if err != nil {
		t.Fatal(err)
	}
	realm := serve(t, tokens) + tokenserver.Path
	bundle := filepath.Join(t.TempDir(), "roots.pem")
	if err := tokens.WriteRootBundle(bundle); err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewToken(auth.TokenOptions{Realm: realm, Service: "notary", Issuer: "hub", RootCertBundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	hub := startSignetWith(t, filepath.Join(t.TempDir(), "hub.db"), server.Options{Auth: verifier, AllowImport: true})

	// Fill the protected server through its import API.
	src := newTUFRepo(t, gun)
	creds := trust.TransportOptions{Credentials: trust.Credentials{Username: "hubuser", Password: "hub-password"}}
	anonSink, err := NewServerSink(hub.URL, trust.TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := one(t, serverSource(t, src.URL), anonSink, gun)
	if r.Outcome != Failed || !strings.Contains(r.Err.Error(), "unauthorized") {
		t.Fatalf("anonymous import: %s %v", r.Outcome, r.Err)
	}
	sink, err := NewServerSink(hub.URL, creds)
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, one(t, serverSource(t, src.URL), sink, gun), Copied)

	// Anonymous reads are refused.
	r = one(t, serverSource(t, hub.URL), newSignet(t).sink(t), gun)
	if r.Outcome != Failed || !strings.Contains(r.Err.Error(), "unauthorized") {
		t.Fatalf("anonymous read: %s %v", r.Outcome, r.Err)
	}

	// The Docker config has a login for the repository's registry only.
	cfg := t.TempDir()
	login := base64.StdEncoding.EncodeToString([]byte("hubuser:hub-password"))
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"registry.example.com":{"auth":"`+login+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfg)
	from, err := NewServerSource(hub.URL, trust.TransportOptions{}, authn.DefaultKeychain, 2)
	if err != nil {
		t.Fatal(err)
	}
	dst := newSignet(t)
	wantOutcome(t, one(t, from, dst.sink(t), gun), Copied)
	sameFiles(t, src.URL, dst.URL, gun, repoFiles)
	if from.Requests() == 0 {
		t.Fatal("no requests counted")
	}
}
