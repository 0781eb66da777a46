//go:build !nopcsc && cgo && unix

package yubikey

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/theupdateframework/notary/trustmanager"

	"github.com/signet-project/signet/keys"
)

type trustmanagerKeyStore = trustmanager.KeyStore

func mustStore(t *testing.T, dir string) *keys.Store {
	s, err := keys.Open(dir, &keys.Retriever{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func sha256Of(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}
