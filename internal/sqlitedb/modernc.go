//go:build !sqlite_mattn && !sqlite_ncruces

package sqlitedb

import (
	"errors"
	"strconv"

	"modernc.org/sqlite"
)

const (
	driverName   = "sqlite"
	driverModule = "modernc.org/sqlite"
)

// dsn names path as a plain file name, which the driver hands to SQLite
// without its query (so path needs no URI escaping), with the settings of
// Open in the driver's parameters (validated: a wrong value fails the
// connection). _time_format=sqlite writes TimeLayout.
func dsn(path string) string {
	return path + "?_busy_timeout=" + strconv.FormatInt(BusyTimeout.Milliseconds(), 10) +
		"&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate&_time_format=sqlite"
}

// errorCode returns the extended result code of an SQLite error (the
// driver turns extended codes on).
func errorCode(err error) (int, bool) {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return 0, false
	}
	return e.Code(), true
}
