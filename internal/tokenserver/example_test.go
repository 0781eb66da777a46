package tokenserver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/signet-project/signet/internal/tokenserver"
	"github.com/signet-project/signet/trust/server/auth"
)

// A trust server that trusts the token server's root bundle accepts the
// tokens it issues.
func ExampleNew() {
	ts, err := tokenserver.New(tokenserver.Options{
		Issuer:  "demo-issuer",
		Service: "signet-trust",
		Users:   map[string]string{"ci": "ci-password"},
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(ts)
	defer srv.Close()

	dir, err := os.MkdirTemp("", "tokenserver")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	bundle := filepath.Join(dir, "roots.pem")
	if err := ts.WriteRootBundle(bundle); err != nil {
		panic(err)
	}
	verifier, err := auth.NewToken(auth.TokenOptions{
		Realm:          srv.URL + tokenserver.Path,
		Service:        "signet-trust",
		Issuer:         "demo-issuer",
		RootCertBundle: bundle,
	})
	if err != nil {
		panic(err)
	}

	// The CI user asks for push and pull, as `notary publish` does.
	req, _ := http.NewRequest(http.MethodGet,
		srv.URL+"/token?service=signet-trust&scope=repository:registry.example.com/app:push,pull", nil)
	req.SetBasicAuth("ci", "ci-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		panic(err)
	}

	publish, _ := http.NewRequest(http.MethodPost, "/v2/registry.example.com/app/_trust/tuf/", nil)
	publish.Header.Set("Authorization", "Bearer "+answer.Token)
	fmt.Println(resp.StatusCode, answer.ExpiresIn)
	fmt.Println(verifier.Authorize(publish, "registry.example.com/app", auth.ActionPush, auth.ActionPull))
	// Output:
	// 200 300
	// <nil>
}
