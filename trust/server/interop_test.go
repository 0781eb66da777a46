package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testkeys"
	"github.com/signet-project/signet/internal/testlog"
	"github.com/signet-project/signet/trust/server/auth"
)

// notaryCLI runs the real notary v0.7.0 client with its own trust dir and
// HOME, passphrases from the environment as a pipeline would set them.
type notaryCLI struct {
	t        *testing.T
	bin      string
	trustDir string
	home     string
	env      []string
}

func newNotaryCLI(t *testing.T) *notaryCLI {
	return &notaryCLI{t: t, bin: testenv.NotaryCLI(t), trustDir: t.TempDir(), home: t.TempDir()}
}

func (n *notaryCLI) run(server string, args ...string) (string, error) {
	n.t.Helper()
	full := append([]string{"-s", server, "-d", n.trustDir}, args...)
	cmd := exec.Command(n.bin, full...)
	cmd.Env = append(os.Environ(),
		"HOME="+n.home,
		"NOTARY_ROOT_PASSPHRASE="+testPassphrase,
		"NOTARY_TARGETS_PASSPHRASE="+testPassphrase,
		"NOTARY_SNAPSHOT_PASSPHRASE="+testPassphrase,
		"NOTARY_DELEGATION_PASSPHRASE="+testPassphrase,
	)
	cmd.Env = append(cmd.Env, n.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *notaryCLI) must(server string, args ...string) string {
	n.t.Helper()
	out, err := n.run(server, args...)
	if err != nil {
		n.t.Fatalf("notary %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestNotaryCLIInterop drives the real notary v0.7.0 CLI through the
// whole life of a repository against signet's server: init, targets and
// delegation signing, key rotation, restart, delete.
func TestNotaryCLIInterop(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			n := newNotaryCLI(t)
			db := dsn(t)
			ts, _ := startServer(t, db, Options{})
			url := ts.URL
			gun := "registry.example.com/team/app"
			work := t.TempDir()

			n.must(url, "init", gun, "-p")

			// A target in "targets" from a file, one from a hash.
			file := filepath.Join(work, "manifest.json")
			content := []byte(`{"schemaVersion":2}`)
			if err := os.WriteFile(file, content, 0o600); err != nil {
				t.Fatal(err)
			}
			n.must(url, "add", gun, "v1", file)
			n.must(url, "addhash", gun, "v2", "1234", "--sha256", strings.Repeat("ab", 32))
			n.must(url, "publish", gun)

			// A delegation, as docker's signers: targets/releases.
			cert, key := testkeys.Delegation(t, work, "releases")
			n.must(url, "delegation", "add", gun, "targets/releases", cert, "--all-paths", "-p")
			n.must(url, "key", "import", key, "--role", "targets/releases")
			n.must(url, "add", gun, "v3", file, "--roles", "targets/releases", "-p")

			out := n.must(url, "list", gun)
			for _, want := range []string{"v1", "v2", "v3", sha256Hex(content), strings.Repeat("ab", 32), "targets/releases"} {
				if !strings.Contains(out, want) {
					t.Fatalf("notary list lacks %q:\n%s", want, out)
				}
			}

			// Server-managed keys rotate, and the repository still reads.
			n.must(url, "key", "rotate", gun, "snapshot", "-r")
			n.must(url, "key", "rotate", gun, "timestamp", "-r")
			fresh := newNotaryCLI(t)
			if out := fresh.must(url, "list", gun); !strings.Contains(out, "v3") {
				t.Fatalf("list after rotation lacks v3:\n%s", out)
			}

			// Restart on the same database: a cached client and a fresh
			// one still verify, and publishing again works.
			ts.Close()
			ts2, _ := startServer(t, db, Options{})
			url = ts2.URL
			if out := n.must(url, "list", gun); !strings.Contains(out, "v3") {
				t.Fatalf("list after restart lacks v3:\n%s", out)
			}
			n.must(url, "addhash", gun, "v4", "99", "--sha256", strings.Repeat("cd", 32), "-p")
			fresh2 := newNotaryCLI(t)
			if out := fresh2.must(url, "list", gun); !strings.Contains(out, "v4") {
				t.Fatalf("list after restart and publish lacks v4:\n%s", out)
			}

			n.must(url, "delete", gun, "--remote")
			if out, err := newNotaryCLI(t).run(url, "list", gun); err == nil {
				t.Fatalf("list after delete --remote succeeded:\n%s", out)
			} else if !strings.Contains(out, "does not have trust data") {
				t.Fatalf("list after delete: want 'does not have trust data', got:\n%s", out)
			}
		})
	}
}

// TestNotaryCLIWithBasicAuth protects writes with htpasswd: the notary CLI
// publishes with NOTARY_AUTH, is refused without it, and (with
// --public-reads) anyone can list.
func TestNotaryCLIWithBasicAuth(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := auth.NewHtpasswd(htpasswd, "signet")
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := startServer(t, filepath.Join(dir, "server.db"), Options{Auth: auth.ReadOpen(h)})
	gun := "registry.example.com/team/app"

	// Without credentials the CLI cannot initialise (it needs push).
	anon := newNotaryCLI(t)
	if out, err := anon.run(ts.URL, "init", gun, "-p"); err == nil {
		t.Fatalf("init without credentials succeeded:\n%s", out)
	}
	// A wrong password fails as well.
	wrong := newNotaryCLI(t)
	wrong.env = []string{"NOTARY_AUTH=" + base64.StdEncoding.EncodeToString([]byte("ci:nope"))}
	if out, err := wrong.run(ts.URL, "init", gun, "-p"); err == nil {
		t.Fatalf("init with a wrong password succeeded:\n%s", out)
	}
	ci := newNotaryCLI(t)
	ci.env = []string{"NOTARY_AUTH=" + base64.StdEncoding.EncodeToString([]byte("ci:s3cret-pass"))}
	ci.must(ts.URL, "init", gun, "-p")
	ci.must(ts.URL, "addhash", gun, "v1", "10", "--sha256", strings.Repeat("ef", 32), "-p")

	// notary v0.7.0's read-only commands never send Basic credentials
	// (its read path is anonymous, then token-only), so `notary list`
	// cannot read from a Basic-challenging server; docker and signet can.
	// This is recorded in the README; token auth has its own interop test.
	if out, err := newNotaryCLI(t).run(ts.URL, "list", gun); err == nil || !strings.Contains(out, "no basic auth credentials") {
		t.Fatalf("notary list against Basic auth: err %v, output:\n%s", err, out)
	}
	// Reads are public: metadata GETs need no credentials; the ping still
	// challenges, so clients learn how to authenticate writes.
	for path, want := range map[string]int{"/v2/" + gun + "/_trust/tuf/targets.json": 200, "/v2/" + gun + "/_trust/tuf/timestamp.json": 200, "/v2/": 401} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("anonymous GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// Deletion needs "*": an anonymous DELETE is challenged.
	req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/v2/"+gun+"/_trust/tuf/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("anonymous DELETE: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestOriginalNotaryServerRefusesDelegation runs the same delegation
// sequence, as a new user would, against the original notary-server
// v0.7.0 (built with the current Go) and against signet's server: the
// original refuses the targets/releases upload ("invalid role: releases",
// Go >= 1.17 strips directories from multipart file names); signet
// accepts it.
func TestOriginalNotaryServerRefusesDelegation(t *testing.T) {
	bin := testenv.NotaryServer(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"server":{"http_addr":"`+addr+`"},"trust_service":{"type":"local","key_algorithm":"ecdsa"},"storage":{"backend":"memory"},"logging":{"level":"info"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var logBuf testlog.Buffer
	srv := exec.Command(bin, "-config", cfg)
	srv.Stdout, srv.Stderr = &logBuf, &logBuf
	if err := srv.Start(); err != nil {
		t.Fatalf("start notary-server: %v", err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	original := "http://" + addr
	waitReady(t, original+"/_notary_server/health")

	ours, _ := startServer(t, filepath.Join(dir, "signet.db"), Options{})

	sequence := func(url string) (string, error) {
		n := newNotaryCLI(t)
		gun := "example.com/app"
		work := t.TempDir()
		cert, key := testkeys.Delegation(t, work, "releases")
		target := filepath.Join(work, "somefile")
		os.WriteFile(target, []byte("hello v1\n"), 0o600)
		n.must(url, "init", gun, "-p")
		n.must(url, "delegation", "add", gun, "targets/releases", cert, "--all-paths", "-p")
		n.must(url, "key", "import", key, "--role", "targets/releases")
		if out, err := n.run(url, "add", gun, "v1", target, "--roles", "targets/releases", "-p"); err != nil {
			return out, err
		}
		return n.must(url, "list", gun), nil
	}

	out, err := sequence(original)
	if err == nil || !strings.Contains(out, "trust server rejected operation") {
		t.Fatalf("original notary-server accepted the delegation upload (err %v):\n%s", err, out)
	}
	if !strings.Contains(logBuf.String(), "invalid role: releases") {
		t.Fatalf("notary-server log lacks 'invalid role: releases':\n%s", logBuf.String())
	}

	out, err = sequence(ours.URL)
	if err != nil {
		t.Fatalf("signet refused the delegation upload: %v\n%s", err, out)
	}
	if !strings.Contains(out, "targets/releases") || !strings.Contains(out, sha256Hex([]byte("hello v1\n"))) {
		t.Fatalf("list from signet lacks the delegated target:\n%s", out)
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 15s", url)
}
