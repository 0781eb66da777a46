// Package testnotary runs the original Notary v1 tools for tests: the
// notary v0.7.0 CLI with a trust dir of its own, notary-server v0.7.0 as
// a process (memory or PostgreSQL storage), and a repository history
// published with the CLI (several publishes, a root key rotation, the
// snapshot key moved to the server), as DCT users have them.
package testnotary

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq" // PostgreSQL for notary-server's schema

	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testlog"
	"github.com/signet-project/signet/internal/testservers"
)

// Passphrase protects every key the notary CLI makes here.
const Passphrase = "mirror test passphrase"

// CLI runs the notary v0.7.0 CLI with a trust dir of its own.
type CLI struct {
	t   testing.TB
	bin string
	// TrustDir holds its keys and cached metadata.
	TrustDir string
	// CACert, if set, is the CA it trusts for https trust servers.
	CACert string
	home   string
}

// NewCLI returns a notary CLI with an empty trust dir.
func NewCLI(t testing.TB) *CLI {
	return &CLI{t: t, bin: testenv.NotaryCLI(t), TrustDir: t.TempDir(), home: t.TempDir()}
}

// Run runs notary against server with stdin, every passphrase set.
func (n *CLI) Run(stdin, server string, args ...string) (string, error) {
	n.t.Helper()
	global := []string{"-s", server, "-d", n.TrustDir}
	if n.CACert != "" {
		global = append(global, "--tlscacert", n.CACert)
	}
	cmd := exec.Command(n.bin, append(global, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+n.home,
		"NOTARY_ROOT_PASSPHRASE="+Passphrase, "NOTARY_TARGETS_PASSPHRASE="+Passphrase,
		"NOTARY_SNAPSHOT_PASSPHRASE="+Passphrase, "NOTARY_DELEGATION_PASSPHRASE="+Passphrase)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Must is Run with no stdin, failing the test on an error.
func (n *CLI) Must(server string, args ...string) string {
	n.t.Helper()
	out, err := n.Run("", server, args...)
	if err != nil {
		n.t.Fatalf("notary %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Server is the original notary-server v0.7.0, run as a process.
type Server struct {
	URL string
	t   testing.TB
	cfg string
	cmd *exec.Cmd
	log *testlog.Buffer
}

// StartServer runs notary-server on storage (its config's
// "storage" object): {"backend":"memory"} or PostgreSQL.
func StartServer(t testing.TB, storage string) *Server {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s := &Server{URL: "http://" + addr, t: t, cfg: filepath.Join(t.TempDir(), "config.json")}
	conf := `{"server":{"http_addr":"` + addr + `"},"trust_service":{"type":"local","key_algorithm":"ecdsa"},"storage":` + storage + `,"logging":{"level":"error"}}`
	if err := os.WriteFile(s.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.log = &testlog.Buffer{}
	s.cmd = exec.Command(testenv.NotaryServer(s.t), "-config", s.cfg)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start notary-server: %v", err)
	}
	WaitReady(s.t, s.URL+"/_notary_server/health", s.log)
}

func (s *Server) Stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// restart starts it again on the same storage and address: its memory
// cache of metadata by checksum is gone.
func (s *Server) Restart() {
	s.Stop()
	s.start()
}

// WaitReady polls url until it answers 200: the server was just
// started, and says when it listens only by answering.
func WaitReady(t testing.TB, url string, log *testlog.Buffer) {
	t.Helper()
	for range 300 {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer; log:\n%s", url, log)
}

// Postgres makes a fresh PostgreSQL database with notary-server's
// own schema (its migrations) and returns its DSN.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := testenv.FreshPostgresDB(t)
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/theupdateframework/notary").Output()
	if err != nil {
		t.Fatalf("find notary's module (for its migrations): %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "migrations", "server", "postgresql", "*.up.sql"))
	if len(files) == 0 {
		t.Fatalf("no notary migrations in %s", out)
	}
	sort.Strings(files)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range files {
		q, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(q)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
	return dsn
}

// PublishHistory gives gun, through the notary CLI, the history of a
// real repository: targets over several publishes, a root key rotation,
// the snapshot key moved to the server, and tag "signed" for the digest
// of an image pushed to registryHost. It returns the publisher.
func PublishHistory(t testing.TB, url, gun, registryHost string) *CLI {
	t.Helper()
	n := NewCLI(t)
	n.Must(url, "init", gun, "-p")
	n.Must(url, "addhash", gun, "v1", "100", "--sha256", strings.Repeat("a1", 32), "-p")
	n.Must(url, "addhash", gun, "v2", "200", "--sha256", strings.Repeat("b2", 32), "-p")
	if out, err := n.Run("yes\n", url, "key", "rotate", gun, "root"); err != nil {
		t.Fatalf("notary key rotate root: %v\n%s", err, out)
	}
	n.Must(url, "key", "rotate", gun, "snapshot", "-r")
	if registryHost != "" {
		img := testservers.PushRandom(t, registryHost+strings.TrimPrefix(gun, registryHost)+":signed")
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		n.Must(url, "addhash", gun, "signed", fmt.Sprint(len(raw)), "--sha256", d.Hex, "-p")
	}
	n.Must(url, "addhash", gun, "v3", "300", "--sha256", strings.Repeat("c3", 32), "-p")
	return n
}
