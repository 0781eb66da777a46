package mirror

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testnotary"
	"github.com/signet-project/signet/trust/verify"
)

// TestKilledMidRun kills `signet mirror` (the built binary) with SIGKILL
// while it copies eight repositories from notary-server, one of them held
// up by the source. Every repository the destination then holds verifies
// and matches the source; a second run completes the rest and leaves one
// row per file.
func TestKilledMidRun(t *testing.T) {
	ns := testnotary.StartServer(t, `{"backend":"memory"}`)
	pub := testnotary.NewCLI(t)
	var guns []string
	for i := range 8 {
		g := fmt.Sprintf("registry.example.com/team/app%d", i)
		pub.Must(ns.URL, "init", g, "-p")
		pub.Must(ns.URL, "addhash", g, "v1", "100", "--sha256", strings.Repeat("a1", 32), "-p")
		guns = append(guns, g)
	}
	held := guns[5]
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	target, _ := url.Parse(ns.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // the killed client goes away mid-request
	front := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/"+held+"/_trust/tuf/timestamp.json" {
			once.Do(func() { close(arrived) })
			<-release
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	dst := newSignet(t)
	bin := buildSignet(t)
	list := filepath.Join(t.TempDir(), "repos.txt")
	if err := os.WriteFile(list, []byte(strings.Join(guns, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mirrorCmd := func() *exec.Cmd {
		cmd := exec.Command(bin, "mirror", "--from", front, "--to", dst.URL, "--parallel", "2", "--file", list)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "SIGNET_TRUST_SERVER=")
		return cmd
	}

	cmd := mirrorCmd()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	progress := regexp.MustCompile(`^\[\d+/8\] `)
	sc := bufio.NewScanner(stderr)
	done := 0
	for done == 0 && sc.Scan() {
		if progress.MatchString(sc.Text()) {
			done++
		}
	}
	<-arrived
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("mirror was not killed mid-run: %v", err)
	}
	close(release)

	// Each repository is there whole, or not at all.
	stored := 0
	for _, g := range guns {
		if len(dst.rows(t, g)) == 0 {
			continue
		}
		stored++
		checkCopy(t, ns.URL, dst.URL, g)
	}
	if stored == 0 || stored == len(guns) {
		t.Fatalf("%d of %d repositories stored after the kill: not mid-run", stored, len(guns))
	}

	out, err := mirrorCmd().CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("8 repositories: %d copied, %d unchanged, 0 failed", len(guns)-stored, stored); !strings.Contains(string(out), want) {
		t.Fatalf("second run lacks %q:\n%s", want, out)
	}
	rows := len(dst.rows(t, guns[0]))
	for _, g := range guns {
		checkCopy(t, ns.URL, dst.URL, g)
		if n := len(dst.rows(t, g)); n != rows {
			t.Fatalf("%s has %d rows, %s %d", g, n, guns[0], rows)
		}
	}
}

// checkCopy: what signet serves for gun verifies, by a reader that never
// saw it, and is the source's, byte for byte.
func checkCopy(t *testing.T, srcURL, dstURL, gun string) {
	t.Helper()
	_, _, err := verify.Update(context.Background(), verify.Request{GUN: gun, Fetcher: verify.HTTPFetcher{Server: dstURL, GUN: gun},
		Pin: verify.Pin{TOFU: true}, Now: time.Now(), AllDelegations: true})
	if err != nil {
		t.Fatalf("%s on the destination: %v", gun, err)
	}
	sameFiles(t, srcURL, dstURL, gun, []string{"1.root.json", "root.json", "timestamp.json", "snapshot.json", "targets.json"})
}

// buildSignet builds the signet command into a temporary folder.
func buildSignet(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "signet")
	cmd := exec.Command("go", "build", "-tags", "nopcsc", "-o", bin, "github.com/signet-project/signet/cmd/signet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build signet: %v\n%s", err, out)
	}
	return bin
}
