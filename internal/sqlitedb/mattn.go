//go:build sqlite_mattn

package sqlitedb

import (
	"errors"
	"strconv"

	"github.com/mattn/go-sqlite3"
)

const (
	driverName   = "sqlite3"
	driverModule = "github.com/mattn/go-sqlite3"
)

// dsn is the name signet opened its databases with until 2026-12. The
// driver writes times as TimeLayout.
func dsn(path string) string {
	return "file:" + path + "?_busy_timeout=" + strconv.FormatInt(BusyTimeout.Milliseconds(), 10) +
		"&_journal_mode=WAL&_txlock=immediate&_synchronous=FULL"
}

// errorCode returns the extended result code of an SQLite error.
func errorCode(err error) (int, bool) {
	var e sqlite3.Error
	if !errors.As(err, &e) {
		return 0, false
	}
	return int(e.ExtendedCode), true
}
