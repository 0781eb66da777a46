//go:build linux

package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/signet-project/signet/internal/testenv"
)

// imageName is the tag the test builds; the private engine holds nothing
// else.
const imageName = "signet:image-test"

// TestImage builds the image, runs the trust server and the proxy from it
// (read-only root file system, data and cache in volumes), signs with the
// host's signet into the containerised server, and pulls through the
// containerised proxy: signed images are served as signed, an unsigned
// one is denied, and the image itself, pushed with `signet push` from its
// `docker save` tarball, comes back through the proxy as signed.
func TestImage(t *testing.T) {
	start := time.Now()
	d := startDockerd(t)
	t.Logf("dockerd ready in %v", time.Since(start).Round(time.Millisecond))

	// The image, built by the release script against the private engine.
	dist := t.TempDir()
	saved := filepath.Join(dist, "image.tar")
	t0 := time.Now()
	out := testenv.Script(t, append(d.env, "SIGNET_DIST="+dist, "SIGNET_IMAGE="+imageName, "SIGNET_IMAGE_SAVE="+saved), "release.sh", "image")
	t.Logf("scripts/release.sh image (%v):\n%s", time.Since(t0).Round(time.Millisecond), out)
	signet := filepath.Join(dist, "image", "signet") // the static binary in the image, run on the host
	checkImageConfig(t, d)

	// `signet version` in the image: the build the release stamps.
	version := d.mustDocker(t, "run", "--rm", "--pull", "never", "--read-only", imageName, "version")
	for _, re := range []string{`(?m)^signet v\S+$`, `(?m)^commit:    [0-9a-f]{40}`, `(?m)^platform:  linux/`, `(?m)^yubikey:   no \(built without PC/SC\)$`} {
		if !regexp.MustCompile(re).MatchString(version) {
			t.Errorf("signet version in the image does not match %s:\n%s", re, version)
		}
	}

	// The upstream registry, on loopback: the containers share the
	// host's network.
	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	upstream := strings.TrimPrefix(reg.URL, "http://")

	serverAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d.run(t, "signet-server", "-v", "signet-data:/var/lib/signet", imageName, "server", "--addr", serverAddr)
	d.waitReady(t, "signet-server", "http://"+serverAddr)
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d.run(t, "signet-proxy", "-v", "signet-cache:/var/cache/signet", imageName, "proxy",
		"--addr", proxyAddr, "--upstream", "http://"+upstream, "--trust-server", "http://"+serverAddr, "--tofu")
	d.waitReady(t, "signet-proxy", "http://"+proxyAddr)

	// The host's signet signs into the containerised server.
	home := t.TempDir()
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(signet, args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
			"SIGNET_TRUST_DIR="+filepath.Join(home, "trust"), "SIGNET_TRUST_SERVER=http://"+serverAddr,
			"SIGNET_ROOT_PASSPHRASE=image test root", "SIGNET_REPOSITORY_PASSPHRASE=image test repository")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("signet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	signedDigest := pushRandom(t, upstream+"/team/app:signed")
	pushRandom(t, upstream+"/team/app:unsigned")
	cli("sign", upstream+"/team/app:signed")

	t.Run("signed", func(t *testing.T) {
		desc, err := remote.Get(ref(t, proxyAddr+"/team/app:signed"))
		if err != nil {
			t.Fatalf("pull through the proxy: %v", err)
		}
		if desc.Digest.String() != signedDigest {
			t.Errorf("proxy served %s, want the signed %s", desc.Digest, signedDigest)
		}
		pullLayers(t, proxyAddr+"/team/app:signed")
	})
	t.Run("unsigned", func(t *testing.T) {
		_, err := remote.Get(ref(t, proxyAddr+"/team/app:unsigned"))
		var te *transport.Error
		if !errors.As(err, &te) || te.StatusCode != http.StatusForbidden {
			t.Fatalf("pull of an unsigned tag through the proxy: %v, want 403 DENIED", err)
		}
		t.Logf("denied: %v", err)
	})

	// The release flow: the image, from `docker save`, pushed and signed,
	// then pulled back through the proxy.
	t.Run("image signed", func(t *testing.T) {
		tag := upstream + "/signet/signet:" + firstField(version)
		pushed := cli("push", "-q", saved, tag)
		m := regexp.MustCompile(`signed \S+ (sha256:[0-9a-f]{64}) \((\d+) bytes\)`).FindStringSubmatch(pushed)
		if m == nil {
			t.Fatalf("signet push says:\n%s", pushed)
		}
		proxied := proxyAddr + "/signet/signet:" + firstField(version)
		desc, err := remote.Get(ref(t, proxied))
		if err != nil {
			t.Fatalf("pull the image through the proxy: %v", err)
		}
		if desc.Digest.String() != m[1] {
			t.Errorf("proxy served %s, signet push signed %s", desc.Digest, m[1])
		}
		img, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != "65532:65532" || cf.Config.Labels["org.opencontainers.image.version"] != firstField(version) {
			t.Errorf("pulled image: user %q, version label %q", cf.Config.User, cf.Config.Labels["org.opencontainers.image.version"])
		}
		n := pullLayers(t, proxied)
		t.Logf("pulled %s through the proxy as %s: %d layer bytes", proxied, desc.Digest, n)
	})
	t.Logf("TestImage took %v", time.Since(start).Round(time.Millisecond))
}

// checkImageConfig checks what the Dockerfile promises: a non-root user,
// the volumes, the entrypoint and the OCI labels; and logs the size.
func checkImageConfig(t *testing.T, d *dockerd) {
	t.Helper()
	var cfg []struct {
		Size   int64
		Config struct {
			User       string
			Env        []string
			Entrypoint []string
			Volumes    map[string]struct{}
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal([]byte(d.mustDocker(t, "image", "inspect", imageName)), &cfg); err != nil || len(cfg) != 1 {
		t.Fatalf("docker image inspect %s: %v", imageName, err)
	}
	c := cfg[0].Config
	t.Logf("image size: %d bytes (%.1f MiB)", cfg[0].Size, float64(cfg[0].Size)/(1<<20))
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	for _, v := range []string{"/var/lib/signet", "/var/cache/signet"} {
		if _, ok := c.Volumes[v]; !ok {
			t.Errorf("no volume %s in %v", v, c.Volumes)
		}
	}
	if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/signet" {
		t.Errorf("entrypoint %q", c.Entrypoint)
	}
	for _, l := range []string{"version", "revision", "created", "source", "title"} {
		if c.Labels["org.opencontainers.image."+l] == "" {
			t.Errorf("no label org.opencontainers.image.%s in %v", l, c.Labels)
		}
	}
}

// pushRandom pushes a random image to refStr and returns its digest.
func pushRandom(t *testing.T, refStr string) string {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, refStr), img); err != nil {
		t.Fatalf("push %s: %v", refStr, err)
	}
	dg, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return dg.String()
}

// pullLayers reads every layer of the image at refStr (checked against its
// digest as it is read) and returns the bytes read.
func pullLayers(t *testing.T, refStr string) int64 {
	t.Helper()
	img, err := remote.Image(ref(t, refStr))
	if err != nil {
		t.Fatalf("pull %s: %v", refStr, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("layers of %s: %v", refStr, err)
	}
	var total int64
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer of %s: %v", refStr, err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read a layer of %s: %v", refStr, err)
		}
		total += n
	}
	return total
}

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// firstField is the version in `signet version`'s first line.
func firstField(version string) string {
	line, _, _ := strings.Cut(version, "\n")
	return strings.TrimPrefix(line, "signet ")
}

// dockerd is a private Docker engine (scripts/start-dockerd.sh).
type dockerd struct {
	cli string
	env []string // for the docker CLI and the release script
}

// startDockerd starts a private dockerd for the test, or calls
// testenv.Require when something it needs is missing.
func startDockerd(t *testing.T) *dockerd {
	t.Helper()
	bin := "/usr/sbin/dockerd"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("dockerd"); err != nil {
			testenv.Require(t, "dockerd", "%v; apt-get install docker.io", err)
		}
	}
	for _, tool := range []string{"unshare", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Require(t, tool, "%v", err)
		}
	}
	cli := testenv.Docker(t)
	if os.Getuid() != 0 {
		testenv.Require(t, "dockerd", "dockerd runs as root here; run the tests as root")
	}
	// A short path: the daemon's socket is in it.
	dir, err := os.MkdirTemp("/tmp", "sigimg.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	t.Cleanup(func() {
		testenv.StopDaemon(t, filepath.Join(dir, "dockerd.pid"))
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "dockerd.log")); err == nil {
				t.Logf("dockerd log:\n%s", testenv.LastLines(string(b), 30))
			}
		}
	})
	sock := testenv.Script(t, append(os.Environ(), "SIGNET_DOCKERD="+bin), "start-dockerd.sh", dir)
	return &dockerd{cli: cli, env: append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(dir, "client"))}
}

func (d *dockerd) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, args...)
	cmd.Env = d.env
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String() + stderr.String(), err
	}
	return out.String(), nil
}

func (d *dockerd) mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.docker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// run starts a container named name, detached, on the host's network,
// with a read-only root file system; args are the rest of `docker run`.
func (d *dockerd) run(t *testing.T, name string, args ...string) {
	t.Helper()
	d.mustDocker(t, append([]string{"run", "-d", "--name", name, "--pull", "never", "--network", "host", "--read-only"}, args...)...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := d.docker("logs", name)
			t.Logf("docker logs %s:\n%s", name, testenv.LastLines(out, 30))
		}
		if out, err := d.docker("rm", "-f", name); err != nil {
			t.Logf("docker rm -f %s: %v\n%s", name, err, out)
		}
	})
}

// waitReady waits up to 30s for the container's /healthz and /readyz at
// base to answer 200.
func (d *dockerd) waitReady(t *testing.T, name, base string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for _, path := range []string{"/healthz", "/readyz"} {
		for {
			resp, err := client.Get(base + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("%s", resp.Status)
			}
			if running, _ := d.docker("inspect", "-f", "{{.State.Running}}", name); strings.TrimSpace(running) != "true" {
				logs, _ := d.docker("logs", name)
				t.Fatalf("container %s is not running:\n%s", name, testenv.LastLines(logs, 30))
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s%s not ready after 30s: %v", base, path, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
