package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recordTB records how Require ended a test. Fatalf and Skipf stop the
// caller as the real ones do, by unwinding (here with a panic).
type recordTB struct {
	testing.TB
	how, msg string
}

type stopped struct{}

func (r *recordTB) Helper() {}
func (r *recordTB) Fatalf(format string, args ...any) {
	r.how, r.msg = "fatal", sprintf(format, args...)
	panic(stopped{})
}
func (r *recordTB) Skipf(format string, args ...any) {
	r.how, r.msg = "skip", sprintf(format, args...)
	panic(stopped{})
}

func sprintf(format string, args ...any) string {
	return fmt.Sprintf(format, args...)
}

func runRequire(r *recordTB) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(stopped); !ok {
				panic(v)
			}
		}
	}()
	Require(r, "widget", "no widget in %s", "/nowhere")
}

func TestRequire(t *testing.T) {
	tests := []struct {
		env      string
		wantHow  string
		wantPart string
	}{
		{"", "skip", "widget not available: no widget in /nowhere"},
		{"0", "skip", "widget not available"},
		{"1", "fatal", "required component widget missing: no widget in /nowhere"},
	}
	for _, tt := range tests {
		t.Run("SIGNET_REQUIRE_ALL="+tt.env, func(t *testing.T) {
			t.Setenv(EnvRequireAll, tt.env)
			r := &recordTB{}
			runRequire(r)
			if r.how != tt.wantHow || !strings.Contains(r.msg, tt.wantPart) {
				t.Errorf("Require: got %s %q, want %s containing %q", r.how, r.msg, tt.wantHow, tt.wantPart)
			}
		})
	}
}

func TestToolsDir(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		t.Setenv(EnvTools, "")
		root := RepoRoot()
		if root == "" {
			t.Fatal("RepoRoot found no go.mod above the package directory")
		}
		mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(mod), "module github.com/signet-project/signet") {
			t.Fatalf("RepoRoot %s holds another module", root)
		}
		if got, want := ToolsDir(), filepath.Join(root, ".tools", "bin"); got != want {
			t.Errorf("ToolsDir() = %q, want %q", got, want)
		}
	})
	t.Run("env", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv(EnvTools, dir)
		if got := ToolsDir(); got != dir {
			t.Errorf("ToolsDir() = %q, want %q", got, dir)
		}
	})
}

func TestLookTool(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvTools, dir)
	t.Setenv("PATH", t.TempDir()) // nothing on PATH

	exe := filepath.Join(dir, "fake-tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "not-executable"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	if got, err := LookTool("fake-tool"); err != nil || got != exe {
		t.Errorf("LookTool(fake-tool) = %q, %v; want %q", got, err, exe)
	}
	if got, err := LookTool("not-executable"); err == nil {
		t.Errorf("LookTool(not-executable) = %q, want an error", got)
	}
	if got, err := LookTool("missing-tool"); err == nil {
		t.Errorf("LookTool(missing-tool) = %q, want an error", got)
	}
}

// TestNotaryTools checks that the tools installed by scripts/install-tools.sh
// run and are the pinned version.
func TestNotaryTools(t *testing.T) {
	for _, tc := range []struct {
		find func(testing.TB) string
		args []string
	}{
		{NotaryCLI, []string{"version"}},
		{NotaryServer, []string{"-version"}},
	} {
		path := tc.find(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, path, tc.args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", path, strings.Join(tc.args, " "), err, out)
		}
		if !strings.Contains(string(out), "0.7.0") {
			t.Errorf("%s %s: want version 0.7.0, got:\n%s", path, strings.Join(tc.args, " "), out)
		}
	}
}

func TestFreePort(t *testing.T) {
	port := FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort() = %d", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on the port FreePort returned: %v", err)
	}
	l.Close()
}

func TestWithDBName(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{
			in:   "postgres://postgres@127.0.0.1:55432/signet_test?sslmode=disable",
			want: "postgres://postgres@127.0.0.1:55432/x?sslmode=disable",
		},
		{
			in:   "postgresql://u:p%40ss@localhost/",
			want: "postgresql://u:p%40ss@localhost/x",
		},
		{
			in:   "host=127.0.0.1 port=55432 user=postgres dbname=signet_test sslmode=disable",
			want: "host=127.0.0.1 port=55432 user=postgres dbname=signet_test sslmode=disable dbname=x",
		},
		{in: "mysql://nope", wantErr: true},
	}
	for _, tt := range tests {
		got, err := withDBName(tt.in, "x")
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("withDBName(%q) = %q, %v; want %q (error: %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFreshPostgresDB(t *testing.T) {
	base := PostgresDSN(t)

	var name string
	var leaked *sql.DB
	t.Run("use", func(t *testing.T) {
		dsn := FreshPostgresDB(t)
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		leaked = db
		if err := db.QueryRow("SELECT current_database()").Scan(&name); err != nil {
			t.Fatalf("connect to the fresh database: %v", err)
		}
		if !strings.HasPrefix(name, "signet_t_") {
			t.Errorf("database name %q, want prefix signet_t_", name)
		}
		if _, err := db.Exec("CREATE TABLE t (k text PRIMARY KEY, v int)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO t VALUES ($1, $2)", "a", 42); err != nil {
			t.Fatal(err)
		}
		var v int
		if err := db.QueryRow("SELECT v FROM t WHERE k = $1", "a").Scan(&v); err != nil || v != 42 {
			t.Fatalf("read back: %d, %v", v, err)
		}
		// db stays open (its idle connection to the database too) until
		// after the cleanup dropped the database: WITH (FORCE) must cope.
	})
	if leaked != nil {
		defer leaked.Close()
	}
	if name == "" {
		t.Fatal("subtest did not report the database name")
	}

	db, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after the test finished", name)
	}
}
