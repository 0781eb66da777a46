package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/signet-project/signet/trust/server"
)

// A trust server over an SQLite file, answering the Notary v1 API.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "signet-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := server.OpenStore(ctx, filepath.Join(dir, "server.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	srv, err := server.New(ctx, server.Options{
		Store:         store,
		KeyPassphrase: "use a real secret here",
		GUNPrefixes:   []string{"registry.example.com/"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	for _, path := range []string{"/v2/", "/v2/registry.example.com/app/_trust/tuf/root.json", "/v2/docker.io/library/alpine/_trust/tuf/root.json"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// Output:
	// 200 {}
	// 404 {"errors":[{"code":"METADATA_NOT_FOUND","message":"no root metadata for registry.example.com/app"}]}
	// 403 {"errors":[{"code":"SIGNET_GUN_NOT_ALLOWED","message":"repository \"docker.io/library/alpine\" is not served here: its name must start with one of [\"registry.example.com/\"]"}]}
}
