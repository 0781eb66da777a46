package engines

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/signet-project/signet/internal/testenv"
)

// registryName is the registry the engines are told to pull from; its
// hosts.toml makes the proxy its server, so the name never resolves.
const registryName = "registry.example.com"

// containerd is a private containerd daemon (scripts/start-containerd.sh).
type containerd struct {
	dir      string
	sock     string
	hostsDir string // its CRI config_path, and ctr's --hosts-dir
	ctr      string
}

// requireContainerd returns the path of ctr, or calls testenv.Require
// when containerd or ctr is missing or the test does not run as root.
func requireContainerd(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("containerd"); err != nil {
		testenv.Require(t, "containerd", "%v; apt-get install containerd", err)
	}
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		testenv.Require(t, "ctr", "%v; apt-get install containerd", err)
	}
	if os.Getuid() != 0 {
		testenv.Require(t, "containerd", "containerd runs as root here; run the tests as root")
	}
	return ctr
}

// startContainerd starts a private containerd (see requireContainerd).
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	ctr := requireContainerd(t)
	dir := shortTempDir(t, "ctrd.")
	c := &containerd{dir: dir, hostsDir: filepath.Join(dir, "certs.d"), ctr: ctr}
	t.Cleanup(func() {
		testenv.StopDaemon(t, filepath.Join(dir, "containerd.pid"))
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "containerd.log")); err == nil && registryLines(string(b)) != "" {
				t.Logf("containerd log (registry lines):\n%s", registryLines(string(b)))
			}
		}
	})
	c.sock = testenv.Script(t, loopbackOnly(), "start-containerd.sh", dir)
	return c
}

// registryLines keeps the log lines about registry requests.
func registryLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "registry.example.com") || strings.Contains(l, "/v2/") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// hostsTOML returns the hosts.toml of docs/proxy.md whose server line is
// server (one of the examples there), with the example proxy URL and
// folder replaced by the test's. The test uses exactly the documented
// files.
func hostsTOML(t *testing.T, exampleServer, proxyURL, hostsDir string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "proxy.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	line := fmt.Sprintf("server = %q\n", exampleServer)
	var found []string
	for _, b := range blocks {
		if strings.Contains(b[1], line) && strings.Contains(b[1], "hosts.toml") {
			found = append(found, b[1])
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/proxy.md: want one hosts.toml example with %q, found %d", strings.TrimSpace(line), len(found))
	}
	// The example proxy (http and https), with any path after it.
	proxyRe := regexp.MustCompile(`https?://signet-proxy\.internal:\d+`)
	s := proxyRe.ReplaceAllLiteralString(found[0], proxyURL)
	return strings.ReplaceAll(s, "/etc/containerd/certs.d/", hostsDir+"/")
}

// writeHosts writes the documented hosts.toml for registry (and the
// proxy's CA beside it, where the example puts it).
func (c *containerd) writeHosts(t *testing.T, registry, exampleServer string, ps *proxyServer) string {
	t.Helper()
	dir := filepath.Join(c.hostsDir, registry)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := hostsTOML(t, exampleServer, ps.url, c.hostsDir)
	if ps.caFile != "" {
		ca, err := os.ReadFile(ps.caFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "signet-proxy-ca.crt"), ca, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return toml
}

// puller is a way to pull with containerd: ctr, or the CRI.
type puller interface {
	// pull pulls ref and returns the error as the user sees it.
	pull(t *testing.T, ref string) error
	// digest returns the manifest digest containerd recorded for ref.
	digest(t *testing.T, ref string) string
}

// ctrPuller is `ctr images pull --hosts-dir`.
type ctrPuller struct{ c *containerd }

func (p ctrPuller) run(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"--address", p.c.sock}, args...)
	cmd := exec.CommandContext(ctx, p.c.ctr, args...)
	cmd.Env = loopbackOnly()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (p ctrPuller) pull(t *testing.T, ref string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := p.run(ctx, "images", "pull", "--snapshotter", "native", "--hosts-dir", p.c.hostsDir, ref)
	if err != nil {
		return fmt.Errorf("ctr images pull %s: %v: %s", ref, err, testenv.LastLines(out, 5))
	}
	return nil
}

func (p ctrPuller) digest(t *testing.T, ref string) string {
	t.Helper()
	out, err := p.run(context.Background(), "images", "ls", "name=="+ref)
	if err != nil {
		t.Fatalf("ctr images ls: %v: %s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == ref {
			return f[2]
		}
	}
	t.Fatalf("ctr images ls: no image %s:\n%s", ref, out)
	return ""
}

// criPuller is the CRI ImageService the kubelet calls, over containerd's
// socket.
type criPuller struct{ images runtimeapi.ImageServiceClient }

func newCRIPuller(t *testing.T, c *containerd) criPuller {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+c.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return criPuller{images: runtimeapi.NewImageServiceClient(conn)}
}

func (p criPuller) pull(t *testing.T, ref string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// As the kubelet does: the image, no credentials, the pod's sandbox.
	_, err := p.images.PullImage(ctx, &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: ref},
		SandboxConfig: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "engines", Namespace: "default", Uid: "engines-test", Attempt: 0},
		},
	})
	return err
}

func (p criPuller) digest(t *testing.T, ref string) string {
	t.Helper()
	st, err := p.images.ImageStatus(context.Background(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("CRI ImageStatus %s: %v", ref, err)
	}
	if st.Image == nil {
		t.Fatalf("CRI ImageStatus %s: no image", ref)
	}
	repo, _, _ := strings.Cut(ref, ":")
	for _, rd := range st.Image.RepoDigests {
		if r, d, ok := strings.Cut(rd, "@"); ok && r == repo {
			return d
		}
	}
	t.Fatalf("CRI ImageStatus %s: no repo digest in %v", ref, st.Image.RepoDigests)
	return ""
}

// The documented hosts.toml examples, by their server line.
const (
	exampleHTTPS  = "https://signet-proxy.internal:5443"
	exampleHTTP   = "http://signet-proxy.internal:5001"
	examplePrefix = "https://signet-proxy.internal:5443/v2/docker.io"
)

// TestContainerd pulls through the proxy with containerd, over http and
// https, with ctr and with the CRI PullImage call the kubelet makes, each
// on a containerd of its own (they would share downloaded blobs), with
// the hosts.toml files of docs/proxy.md.
func TestContainerd(t *testing.T) {
	requireContainerd(t)
	w := newWorld(t)
	for _, scheme := range []string{"http", "https"} {
		var tlsNames []string
		example := exampleHTTP
		if scheme == "https" {
			tlsNames, example = []string{"signet-proxy.internal"}, exampleHTTPS
		}
		ps := startProxy(t, w, "127.0.0.1:0", tlsNames)
		for _, client := range []string{"ctr", "cri"} {
			t.Run(scheme+"/"+client, func(t *testing.T) {
				c := startContainerd(t)
				var p puller = ctrPuller{c}
				if client == "cri" {
					p = newCRIPuller(t, c)
				}
				c.writeHosts(t, registryName, example, ps)
				if scheme == "https" {
					c.writeHosts(t, hubPrefix, examplePrefix, ps)
				}
				testContainerdPulls(t, w, ps, p, scheme == "https")
			})
		}
	}
}

func testContainerdPulls(t *testing.T, w *world, ps *proxyServer, p puller, prefixed bool) {
	t.Run("signed", func(t *testing.T) {
		ref := registryName + "/" + repoApp + ":signed"
		ps.rec.reset()
		if err := p.pull(t, ref); err != nil {
			t.Fatalf("signed image: %v", err)
		}
		if got, want := p.digest(t, ref), w.images[repoApp+":signed"].digest; got != want {
			t.Errorf("pulled %s as %s, want the signed %s", ref, got, want)
		}
		// One resolve per pull: the proxy is asked once.
		if n := len(ps.rec.requests("/manifests/signed")); n != 1 {
			t.Errorf("the proxy was asked %d times for the tag, want once: %v", n, ps.rec.requests("/manifests/"))
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		ref := registryName + "/" + repoApp + ":unsigned"
		ps.rec.reset()
		before := len(ps.denials(repoApp, "unsigned"))
		err := p.pull(t, ref)
		if err == nil {
			t.Fatalf("unsigned image pulled")
		}
		t.Logf("containerd says: %v", err)
		// containerd resolves a tag with HEAD: an answer without a
		// body, so it shows the status only ("pulling from host
		// HOST failed with status code [manifests unsigned]: 403
		// Forbidden" in 1.6, "unexpected status from HEAD request to
		// URL: 403 Forbidden" later). The reason is in the audit log.
		if !strings.Contains(err.Error(), "403 Forbidden") {
			t.Errorf("error does not show the proxy's 403: %v", err)
		}
		reqs := ps.rec.requests("/manifests/unsigned")
		if len(reqs) != 1 {
			t.Errorf("the proxy was asked %d times, want once (hosts.toml asks it twice?): %v", len(reqs), reqs)
		}
		denials := ps.denials(repoApp, "unsigned")[before:]
		if len(denials) != 1 {
			t.Errorf("%d denials logged for one pull, want 1:\n%s", len(denials), strings.Join(denials, "\n"))
		}
		for _, d := range denials {
			if !strings.Contains(d, "not signed") || !strings.Contains(d, `rule=quick-start`) {
				t.Errorf("denial does not give the reason and rule: %s", d)
			}
		}
	})
	t.Run("moved", func(t *testing.T) {
		ref := registryName + "/" + repoApp + ":moved"
		if err := p.pull(t, ref); err != nil {
			t.Fatalf("signed tag moved upstream: %v", err)
		}
		got, want := p.digest(t, ref), w.images[repoApp+":moved"].digest
		if got != want {
			t.Errorf("pulled %s as %s, want the signed %s (upstream now has %s)", ref, got, want, w.movedTo.digest)
		}
	})
	if prefixed {
		t.Run("prefixed", func(t *testing.T) {
			ref := hubPrefix + "/" + repoApp + ":signed"
			ps.rec.reset()
			if err := p.pull(t, ref); err != nil {
				t.Fatalf("signed image through the docker.io upstream: %v", err)
			}
			if got, want := p.digest(t, ref), w.images[repoApp+":signed"].digest; got != want {
				t.Errorf("pulled %s as %s, want %s", ref, got, want)
			}
			if reqs := ps.rec.requests("/v2/" + hubPrefix + "/" + repoApp + "/manifests/signed"); len(reqs) != 1 {
				t.Errorf("want one request for /v2/docker.io/team/app/manifests/signed, got %v", ps.rec.requests("/manifests/"))
			}
			if err := p.pull(t, hubPrefix+"/"+repoApp+":unsigned"); err == nil || !strings.Contains(err.Error(), "403") {
				t.Errorf("unsigned image through the docker.io upstream: %v, want 403", err)
			}
		})
	}
	t.Run("resume", func(t *testing.T) {
		testResume(t, w, ps, p)
	})
}

// testResume cuts the download of a layer in the middle and checks that
// containerd gets the image all the same, resuming the layer with a Range
// request that the proxy answers with the rest of the blob only (206).
// containerd resumes within the same pull (it reopens the download at the
// offset it had reached); should the pull fail, a second pull must resume
// from what the first one kept.
func testResume(t *testing.T, w *world, ps *proxyServer, p puller) {
	ref := registryName + "/" + repoBig + ":v1"
	big := w.images[repoBig+":v1"]
	layerPath := "/v2/" + repoBig + "/blobs/" + big.layer
	const cutAt = 1 << 20
	ps.rec.reset()
	ps.rec.cutNext(layerPath, cutAt)
	if err := p.pull(t, ref); err != nil {
		t.Logf("interrupted pull failed: %v", err)
		if err := p.pull(t, ref); err != nil {
			t.Fatalf("pull after the interruption: %v\nrequests for the layer: %v", err, ps.rec.requests(layerPath))
		}
	}
	if got := p.digest(t, ref); got != big.digest {
		t.Errorf("pulled %s as %s, want %s", ref, got, big.digest)
	}
	var gets []seen
	for _, s := range ps.rec.requests(layerPath) {
		if s.method == "GET" {
			gets = append(gets, s)
		}
	}
	t.Logf("GETs of the layer: %v", gets)
	if len(gets) < 2 || !gets[0].cut {
		t.Fatalf("want the cut GET of the layer and another, got %v", gets)
	}
	resumed := gets[1]
	var from int64
	if _, err := fmt.Sscanf(resumed.rangeHdr, "bytes=%d-", &from); err != nil || from <= 0 || from > cutAt {
		t.Fatalf("containerd did not resume the layer from where it was cut (%d bytes): %v", cutAt, resumed)
	}
	if resumed.status != 206 {
		t.Fatalf("the proxy answered the resumed download (Range: %s) with %d and %d bytes, want 206 Partial Content with the last %d bytes (containerd copes by discarding the first %d bytes it gets, so the pull worked, downloading the blob again)",
			resumed.rangeHdr, resumed.status, resumed.bytes, big.lsize-from, from)
	}
	if want := fmt.Sprintf("bytes %d-", from); !strings.HasPrefix(resumed.contentRange, want) {
		t.Errorf("206 with Content-Range %q, want %q...", resumed.contentRange, want)
	}
	if resumed.bytes != big.lsize-from {
		t.Errorf("206 with %d bytes, want the %d bytes of the blob from byte %d", resumed.bytes, big.lsize-from, from)
	}
}
