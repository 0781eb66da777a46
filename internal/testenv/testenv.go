// Package testenv finds the external components that some of signet's tests
// need (the original notary CLI and notary-server, a PostgreSQL server) and
// decides what a test does when one is missing.
//
// A missing component skips the test, so `go test ./...` works on a bare
// machine. CI sets SIGNET_REQUIRE_ALL=1, and then a missing component fails
// the test instead, so that a broken install cannot pass as a green run of
// skipped tests.
//
// The components are installed by scripts/install-tools.sh (into
// <repo>/.tools/bin) and started by scripts/start-postgres.sh; `make test`
// and .ci/run set the environment variables below.
//
//	SIGNET_REQUIRE_ALL=1          missing components fail tests instead of skipping them
//	SIGNET_TOOLS=<dir>            where notary and notary-server are (default <repo>/.tools/bin)
//	SIGNET_TEST_POSTGRES_DSN=...  a PostgreSQL server the tests may create databases on
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" database/sql driver
)

// Environment variables read by this package.
const (
	EnvRequireAll  = "SIGNET_REQUIRE_ALL"
	EnvTools       = "SIGNET_TOOLS"
	EnvPostgresDSN = "SIGNET_TEST_POSTGRES_DSN"
)

// RequireAll reports whether missing components must fail tests
// (SIGNET_REQUIRE_ALL=1) rather than skip them.
func RequireAll() bool {
	return os.Getenv(EnvRequireAll) == "1"
}

// Require reports that the component what is missing. It fails the test
// with t.Fatalf when SIGNET_REQUIRE_ALL=1 and skips it with t.Skipf
// otherwise. format and args say why and how to get the component.
func Require(t testing.TB, what string, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireAll() {
		t.Fatalf("required component %s missing: %s (%s=1)", what, msg, EnvRequireAll)
	}
	t.Skipf("%s not available: %s", what, msg)
}

// RepoRoot returns the directory that holds signet's go.mod, found by
// walking up from the working directory (go test runs each test binary in
// its package's directory). It returns "" when there is none.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// ToolsDir returns the directory of the installed test tools: $SIGNET_TOOLS
// if set, else <repo root>/.tools/bin. It returns "" when neither is known.
// The directory need not exist.
func ToolsDir() string {
	if dir := os.Getenv(EnvTools); dir != "" {
		if abs, err := filepath.Abs(dir); err == nil {
			return abs
		}
		return dir
	}
	root := RepoRoot()
	if root == "" {
		return ""
	}
	return filepath.Join(root, ".tools", "bin")
}

// LookTool returns the absolute path of the executable name, looked for
// first in ToolsDir and then on PATH.
func LookTool(name string) (string, error) {
	if dir := ToolsDir(); dir != "" {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("find tool %q in %q or PATH: %w", name, ToolsDir(), err)
	}
	return filepath.Abs(p)
}

// tool returns the path of name or calls Require.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := LookTool(name)
	if err != nil {
		Require(t, name, "%v; run `make tools` (scripts/install-tools.sh)", err)
	}
	return p
}

// NotaryCLI returns the absolute path of the original notary CLI (v0.7.0,
// installed by scripts/install-tools.sh), or calls Require when it is
// missing.
func NotaryCLI(t testing.TB) string {
	t.Helper()
	return tool(t, "notary")
}

// NotaryServer returns the absolute path of the original notary-server
// (v0.7.0, installed by scripts/install-tools.sh), or calls Require when it
// is missing. testdata/notary-server holds configurations to run it with.
func NotaryServer(t testing.TB) string {
	t.Helper()
	return tool(t, "notary-server")
}

// Crane returns the path of go-containerregistry's crane CLI (installed
// by scripts/install-tools.sh), or calls Require when it is missing.
func Crane(t testing.TB) string {
	t.Helper()
	return tool(t, "crane")
}

// Docker returns the path of the docker CLI (the client only: tests run
// its trust commands, which need no daemon), or calls Require when it is
// missing.
func Docker(t testing.TB) string {
	t.Helper()
	return tool(t, "docker")
}

// Skopeo returns the path of skopeo (Debian package), or calls Require
// when it is missing.
func Skopeo(t testing.TB) string {
	t.Helper()
	return tool(t, "skopeo")
}

// PostgresDSN returns $SIGNET_TEST_POSTGRES_DSN, the DSN of a PostgreSQL
// server that tests may use as a superuser, or calls Require when it is
// unset. Most tests want FreshPostgresDB instead.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvPostgresDSN)
	if dsn == "" {
		Require(t, "PostgreSQL", "%s is not set; start a server with scripts/start-postgres.sh and export its DSN", EnvPostgresDSN)
	}
	return dsn
}

// FreshPostgresDB creates an empty database with a unique name
// (signet_t_<random hex>) on the server of PostgresDSN and returns a DSN
// for it in the same form (URL or key=value) as $SIGNET_TEST_POSTGRES_DSN.
// The database is dropped, with any connections still open to it, when the
// test and its subtests finish. It calls Require when no server is
// configured and fails the test when the configured server cannot be used.
func FreshPostgresDB(t testing.TB) string {
	t.Helper()
	base := PostgresDSN(t)

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random database name: %v", err)
	}
	name := "signet_t_" + hex.EncodeToString(b[:])

	dsn, err := withDBName(base, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}

	db, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("testenv: open postgres %s: %v", redact(base), err)
	}
	defer db.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Identifiers cannot be bind parameters; name is [a-z0-9_] only.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database %q on %s: %v", name, redact(base), err)
	}

	t.Cleanup(func() {
		db, err := sql.Open("postgres", base)
		if err != nil {
			t.Errorf("testenv: open postgres %s: %v", redact(base), err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// WITH (FORCE) (PostgreSQL 13+) ends connections a test leaked.
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %q: %v", name, err)
		}
	})
	return dsn
}

// withDBName returns dsn with its database name replaced by name. It accepts
// the two forms lib/pq accepts: a postgres:// or postgresql:// URL, and
// space-separated key=value pairs.
func withDBName(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse postgres DSN %s: %w", redact(dsn), err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	if strings.Contains(dsn, "://") {
		return "", errors.New("postgres DSN must be a postgres:// URL or key=value pairs")
	}
	// lib/pq lets a later key override an earlier one.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}

// redact hides the password of a URL DSN, for error messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	if strings.Contains(dsn, "password") {
		return "(DSN with password)"
	}
	return dsn
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// starting a server that must be told its port (such as notary-server).
// Another process may take it before the caller does; prefer listening on
// port 0 where the server allows it.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	return port
}
