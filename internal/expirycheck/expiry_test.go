// Package expirycheck holds one test that must run in a binary which does
// not import notary's client package: that package's init sets notary's
// default expiries to notary-server's, which would hide a server that
// forgets to.
package expirycheck

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/trust/server"
)

// TestServerExpiries checks that a server signs with notary-server's
// expiries: a timestamp lives 14 days, not notary's library default of 1
// day. Keep this package free of imports of notary's client.
func TestServerExpiries(t *testing.T) {
	if got := data.DefaultExpires(data.CanonicalTimestampRole); got.After(time.Now().Add(2 * 24 * time.Hour)) {
		t.Fatalf("precondition: timestamp expiry already %s before the server starts", got)
	}
	st, err := server.OpenStore(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := server.New(context.Background(), server.Options{Store: st, KeyPassphrase: "a long enough passphrase"}); err != nil {
		t.Fatal(err)
	}
	for role, min := range map[data.RoleName]time.Duration{
		data.CanonicalTimestampRole: 14*24*time.Hour - time.Minute,
		data.CanonicalSnapshotRole:  3*365*24*time.Hour - time.Minute,
	} {
		if got := time.Until(data.DefaultExpires(role)); got < min {
			t.Errorf("%s expires in %s, want at least %s", role, got, min)
		}
	}
}
