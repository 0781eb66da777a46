package server

import (
	"bytes"
	"io"
	"testing"

	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// testWriter sends server logs to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func storeUpdate(role data.RoleName, version int, raw []byte) storage.MetaUpdate {
	return storage.MetaUpdate{Role: role, Version: version, Data: raw}
}
