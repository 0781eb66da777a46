//go:build sqlite_ncruces && !sqlite_mattn

package sqlitedb

import (
	"errors"
	"net/url"
	"path/filepath"
	"strconv"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver" // registers "sqlite3"
)

const (
	driverName   = "sqlite3"
	driverModule = "github.com/ncruces/go-sqlite3"
)

// dsn names path as a file: URI (the driver takes no plain name with
// parameters), with the settings of Open as PRAGMAs.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(0)")
	q.Set("_txlock", "immediate")
	q.Set("_timefmt", TimeLayout)
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// errorCode returns the extended result code of an SQLite error: the
// driver returns an *sqlite3.Error, or a bare code (BEGIN does).
func errorCode(err error) (int, bool) {
	var (
		e   *sqlite3.Error
		ext sqlite3.ExtendedErrorCode
		rc  sqlite3.ErrorCode
	)
	switch {
	case errors.As(err, &e):
		return int(e.ExtendedCode()), true
	case errors.As(err, &ext):
		return int(ext), true
	case errors.As(err, &rc):
		return int(rc), true
	}
	return 0, false
}
