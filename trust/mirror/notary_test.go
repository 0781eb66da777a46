package mirror

import (
	"context"
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

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testlog"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
)

const notaryPassphrase = "mirror test passphrase"

// notaryCLI runs the notary v0.7.0 CLI with a trust dir of its own.
type notaryCLI struct {
	t        *testing.T
	bin      string
	trustDir string
	home     string
}

func newNotaryCLI(t *testing.T) *notaryCLI {
	return &notaryCLI{t: t, bin: testenv.NotaryCLI(t), trustDir: t.TempDir(), home: t.TempDir()}
}

func (n *notaryCLI) run(stdin, server string, args ...string) (string, error) {
	n.t.Helper()
	cmd := exec.Command(n.bin, append([]string{"-s", server, "-d", n.trustDir}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+n.home,
		"NOTARY_ROOT_PASSPHRASE="+notaryPassphrase, "NOTARY_TARGETS_PASSPHRASE="+notaryPassphrase,
		"NOTARY_SNAPSHOT_PASSPHRASE="+notaryPassphrase, "NOTARY_DELEGATION_PASSPHRASE="+notaryPassphrase)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *notaryCLI) must(server string, args ...string) string {
	n.t.Helper()
	out, err := n.run("", server, args...)
	if err != nil {
		n.t.Fatalf("notary %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// notaryServer is the original notary-server v0.7.0, run as a process.
type notaryServer struct {
	URL string
	t   *testing.T
	cfg string
	cmd *exec.Cmd
	log *testlog.Buffer
}

// startNotaryServer runs notary-server on storage (its config's
// "storage" object): {"backend":"memory"} or PostgreSQL.
func startNotaryServer(t *testing.T, storage string) *notaryServer {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s := &notaryServer{URL: "http://" + addr, t: t, cfg: filepath.Join(t.TempDir(), "config.json")}
	conf := `{"server":{"http_addr":"` + addr + `"},"trust_service":{"type":"local","key_algorithm":"ecdsa"},"storage":` + storage + `,"logging":{"level":"error"}}`
	if err := os.WriteFile(s.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *notaryServer) start() {
	s.t.Helper()
	s.log = &testlog.Buffer{}
	s.cmd = exec.Command(testenv.NotaryServer(s.t), "-config", s.cfg)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start notary-server: %v", err)
	}
	waitReady(s.t, s.URL+"/_notary_server/health", s.log)
}

func (s *notaryServer) stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// restart starts it again on the same storage and address: its memory
// cache of metadata by checksum is gone.
func (s *notaryServer) restart() {
	s.stop()
	s.start()
}

// waitReady polls url until it answers 200: the server was just
// started, and says when it listens only by answering.
func waitReady(t *testing.T, url string, log *testlog.Buffer) {
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

// notaryPostgres makes a fresh PostgreSQL database with notary-server's
// own schema (its migrations) and returns its DSN.
func notaryPostgres(t *testing.T) string {
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

// publishHistory gives gun, through the notary CLI, the history of a
// real repository: targets over several publishes, a root key rotation,
// the snapshot key moved to the server, and tag "signed" for the digest
// of an image pushed to registryHost. It returns the publisher.
func publishHistory(t *testing.T, url, gun, registryHost string) *notaryCLI {
	t.Helper()
	n := newNotaryCLI(t)
	n.must(url, "init", gun, "-p")
	n.must(url, "addhash", gun, "v1", "100", "--sha256", strings.Repeat("a1", 32), "-p")
	n.must(url, "addhash", gun, "v2", "200", "--sha256", strings.Repeat("b2", 32), "-p")
	if out, err := n.run("yes\n", url, "key", "rotate", gun, "root"); err != nil {
		t.Fatalf("notary key rotate root: %v\n%s", err, out)
	}
	n.must(url, "key", "rotate", gun, "snapshot", "-r")
	if registryHost != "" {
		img := testservers.PushRandom(t, registryHost+strings.TrimPrefix(gun, registryHost)+":signed")
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		n.must(url, "addhash", gun, "signed", fmt.Sprint(len(raw)), "--sha256", d.Hex, "-p")
	}
	n.must(url, "addhash", gun, "v3", "300", "--sha256", strings.Repeat("c3", 32), "-p")
	return n
}

// notaryFiles are the files of a repository publishHistory made.
var notaryFiles = []string{"1.root.json", "2.root.json", "3.root.json", "root.json", "timestamp.json", "snapshot.json", "targets.json"}

// TestFromNotaryServer mirrors a repository the notary CLI published to
// notary-server v0.7.0 (root rotation, server-managed snapshot) into
// signet's server on both stores. Then the notary CLI, with the trust dir
// it filled from notary-server, reads the same targets from signet; a
// fresh `signet verify` passes for a signed image; and the trust dir
// alone, imported into an empty server once notary-server is gone, gives
// the same targets too.
func TestFromNotaryServer(t *testing.T) {
	ns := startNotaryServer(t, `{"backend":"memory"}`)
	reg := testservers.Registry(t)
	gun := reg + "/team/app"
	publishHistory(t, ns.URL, gun, reg)
	reader := newNotaryCLI(t)
	want := reader.must(ns.URL, "list", gun)
	for _, tag := range []string{"v1", "v2", "v3", "signed"} {
		if !strings.Contains(want, tag) {
			t.Fatalf("notary list from notary-server lacks %s:\n%s", tag, want)
		}
	}

	for store, dsn := range backends(t) {
		t.Run(store, func(t *testing.T) {
			dst := startSignet(t, dsn(t), true)
			src := serverSource(t, ns.URL)
			r := one(t, src, dst.sink(t), gun)
			wantOutcome(t, r, Copied)
			if fmt.Sprint(r.RootVersions) != "[1 2 3]" {
				t.Fatalf("root versions %v", r.RootVersions)
			}
			sameFiles(t, ns.URL, dst.URL, gun, notaryFiles)
			if got := reader.must(dst.URL, "list", gun); got != want {
				t.Fatalf("notary list from signet:\n%s\nfrom notary-server:\n%s", got, want)
			}
			if got := newNotaryCLI(t).must(dst.URL, "list", gun); got != want {
				t.Fatalf("fresh notary list from signet:\n%s\nfrom notary-server:\n%s", got, want)
			}
			v, err := publish.Verify(context.Background(), publish.Config{TrustDir: t.TempDir(), Server: dst.URL}, gun+":signed")
			if err != nil {
				t.Fatalf("signet verify against the mirror: %v", err)
			}
			ref, _ := name.ParseReference(gun + ":signed")
			if d, err := remote.Head(ref); err != nil || d.Digest.String() != v.Digest {
				t.Fatalf("verified %s, registry has %v (%v)", v.Digest, d, err)
			}
			if again := one(t, src, dst.sink(t), gun); again.Outcome != Unchanged {
				t.Fatalf("second run: %s %v", again.Outcome, again.Err)
			}
		})
	}

	t.Run("trust dir", func(t *testing.T) {
		ns.stop()
		from, err := OpenSource(reader.trustDir, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dst := newSignet(t)
		rep := mustRun(t, Options{Source: from, Sink: dst.sink(t)})
		if len(rep.Results) != 1 {
			t.Fatalf("results %+v", rep.Results)
		}
		r := rep.Results[0]
		wantOutcome(t, r, Copied)
		if r.Anchor != "the trust dir's root v3" || fmt.Sprint(r.RootVersions) != "[3]" {
			t.Fatalf("anchor %q, roots %v", r.Anchor, r.RootVersions)
		}
		if got := reader.must(dst.URL, "list", gun); got != want {
			t.Fatalf("notary list from the imported cache:\n%s\nwant:\n%s", got, want)
		}
		if got := newNotaryCLI(t).must(dst.URL, "list", gun); got != want {
			t.Fatalf("fresh notary list from the imported cache:\n%s\nwant:\n%s", got, want)
		}
	})
}

// TestTamperedNotaryServer edits a targets row in notary-server's
// PostgreSQL database: the mirror refuses that repository, stores the
// others, and after the row is restored a second run completes it and
// leaves the others' rows as they were.
func TestTamperedNotaryServer(t *testing.T) {
	nsDSN := notaryPostgres(t)
	ns := startNotaryServer(t, `{"backend":"postgres","db_url":"`+nsDSN+`"}`)
	var guns []string
	for _, n := range []string{"a", "b", "c"} {
		g := "registry.example.com/team/" + n
		pub := newNotaryCLI(t)
		pub.must(ns.URL, "init", g, "-p")
		pub.must(ns.URL, "addhash", g, "v1", "100", "--sha256", strings.Repeat("a1", 32), "-p")
		guns = append(guns, g)
	}
	bad := guns[1]
	db, err := sql.Open("postgres", nsDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int
	var orig []byte
	if err := db.QueryRow(`SELECT id, data FROM tuf_files WHERE gun = $1 AND role = 'targets' ORDER BY version DESC LIMIT 1`, bad).Scan(&id, &orig); err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(orig), `"v1"`, `"v9"`, 1)
	if edited == string(orig) {
		t.Fatal("the targets row has no target to edit")
	}
	// set stores data in the row and restarts notary-server, which
	// caches metadata by checksum.
	set := func(data []byte) {
		t.Helper()
		if _, err := db.Exec(`UPDATE tuf_files SET data = $1 WHERE id = $2`, data, id); err != nil {
			t.Fatal(err)
		}
		ns.restart()
	}

	for store, dsn := range backends(t) {
		t.Run(store, func(t *testing.T) {
			set([]byte(edited))
			dst := startSignet(t, dsn(t), true)
			rep := mustRun(t, Options{Source: serverSource(t, ns.URL), Sink: dst.sink(t), Repositories: guns})
			for _, r := range rep.Results {
				if r.GUN == bad {
					if r.Outcome != Failed || !strings.Contains(r.Err.Error(), "targets: metadata does not match its hash") {
						t.Fatalf("tampered %s: %s %v", r.GUN, r.Outcome, r.Err)
					}
					continue
				}
				wantOutcome(t, r, Copied)
			}
			if rows := dst.rows(t, bad); len(rows) != 0 {
				t.Fatalf("stored for the tampered repository: %v", rows)
			}
			before := map[string][]string{}
			for _, g := range guns {
				before[g] = dst.rows(t, g)
			}

			set(orig)
			rep = mustRun(t, Options{Source: serverSource(t, ns.URL), Sink: dst.sink(t), Repositories: guns})
			for _, r := range rep.Results {
				want := Unchanged
				if r.GUN == bad {
					want = Copied
				}
				wantOutcome(t, r, want)
			}
			for _, g := range []string{guns[0], guns[2]} {
				if got := dst.rows(t, g); fmt.Sprint(got) != fmt.Sprint(before[g]) {
					t.Fatalf("rows of %s changed:\n%v\nwere\n%v", g, got, before[g])
				}
			}
			// The completed repository has the files of the others: one
			// row each, no duplicates.
			if got, other := len(dst.rows(t, bad)), len(before[guns[0]]); got != other {
				t.Fatalf("%s has %d rows, %s %d", bad, got, guns[0], other)
			}
			sameFiles(t, ns.URL, dst.URL, bad, []string{"1.root.json", "root.json", "timestamp.json", "snapshot.json", "targets.json"})
		})
	}
}

// TestTakeOver: after the mirror, the repository is taken over on signet
// (`signet rotate`: server-held timestamp and snapshot keys in a new root
// signed by the root key the notary CLI made). The notary CLI that read
// notary-server follows the rotation and can publish on signet, and a
// mirror run from notary-server again changes nothing.
func TestTakeOver(t *testing.T) {
	ns := startNotaryServer(t, `{"backend":"memory"}`)
	gun := "registry.example.com/team/app"
	pub := publishHistory(t, ns.URL, gun, "")
	reader := newNotaryCLI(t)
	want := reader.must(ns.URL, "list", gun)
	dst := newSignet(t)
	wantOutcome(t, one(t, serverSource(t, ns.URL), dst.sink(t), gun), Copied)

	passphrases := &keys.Retriever{Getenv: func(string) string { return notaryPassphrase }}
	_, res, err := publish.Rotate(context.Background(), publish.Config{TrustDir: pub.trustDir, Server: dst.URL, Passphrases: passphrases},
		gun, []string{"timestamp", "snapshot"}, true)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	if res.RootVersion != 4 {
		t.Fatalf("root version %d after the take-over, want 4", res.RootVersion)
	}
	rows := dst.rows(t, gun)

	r := one(t, serverSource(t, ns.URL), dst.sink(t), gun)
	wantOutcome(t, r, Unchanged)
	if r.Anchor != "the destination's root v3 (the destination has moved on to v4)" {
		t.Fatalf("anchor %q", r.Anchor)
	}
	if got := dst.rows(t, gun); fmt.Sprint(got) != fmt.Sprint(rows) {
		t.Fatalf("rows changed:\n%v\nwere\n%v", got, rows)
	}
	if got := reader.must(dst.URL, "list", gun); got != want {
		t.Fatalf("notary list after the take-over:\n%s\nwant:\n%s", got, want)
	}
	pub.must(dst.URL, "addhash", gun, "v4", "400", "--sha256", strings.Repeat("d4", 32), "-p")
	if got := reader.must(dst.URL, "list", gun); !strings.Contains(got, "v4") {
		t.Fatalf("notary list lacks v4 published after the take-over:\n%s", got)
	}
}
