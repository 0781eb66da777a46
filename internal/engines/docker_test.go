package engines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// Names the private dockerd resolves to ::1 (its own /etc/hosts): docker
// treats every registry in 127.0.0.0/8 as insecure and never checks its
// certificate, so the https proxy must have another address for its CA
// to matter, and the http one for insecure-registries to matter.
const (
	proxyNameHTTPS = "signet-proxy.test"
	proxyNameHTTP  = "signet-proxy-http.test"
)

// dockerd is a private Docker engine (scripts/start-dockerd.sh).
type dockerd struct {
	dir    string
	cli    string
	env    []string
	etc    string // mounted on /etc/docker in the daemon's namespace
	config string // the CLI's DOCKER_CONFIG
}

// requireDockerd returns the paths of dockerd and the docker CLI, or
// calls testenv.Require when dockerd, unshare or the docker CLI is missing
// or the test does not run as root.
func requireDockerd(t *testing.T) (dockerdBin, cli string) {
	t.Helper()
	dockerdBin = "/usr/sbin/dockerd"
	if _, err := os.Stat(dockerdBin); err != nil {
		p, err := exec.LookPath("dockerd")
		if err != nil {
			testenv.Require(t, "dockerd", "%v; apt-get install docker.io", err)
		}
		dockerdBin = p
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.Require(t, "unshare", "%v; apt-get install util-linux", err)
	}
	cli = testenv.Docker(t)
	if os.Getuid() != 0 {
		testenv.Require(t, "dockerd", "dockerd runs as root here; run the tests as root")
	}
	return dockerdBin, cli
}

// startDockerd starts a private dockerd whose /etc/hosts maps names to
// ::1 and whose daemon.json is daemonJSON (see requireDockerd). caFiles
// are CAs to put in its certs.d, by host:port.
func startDockerd(t *testing.T, names []string, daemonJSON any, caFiles map[string]string) *dockerd {
	t.Helper()
	dockerdBin, cli := requireDockerd(t)
	dir := shortTempDir(t, "dockerd.")
	d := &dockerd{dir: dir, cli: cli, etc: filepath.Join(dir, "etc-docker"), config: filepath.Join(dir, "client")}
	hosts := "127.0.0.1 localhost\n::1 localhost6\n"
	for _, n := range names {
		hosts += "::1 " + n + "\n"
	}
	write(t, filepath.Join(dir, "hosts"), hosts)
	b, err := json.Marshal(daemonJSON)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(d.etc, "daemon.json"), string(b))
	for hostPort, ca := range caFiles {
		pem, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d.etc, "certs.d", hostPort, "ca.crt"), string(pem))
	}
	t.Cleanup(func() {
		testenv.StopDaemon(t, filepath.Join(dir, "dockerd.pid"))
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "dockerd.log")); err == nil {
				t.Logf("dockerd log:\n%s", testenv.LastLines(string(b), 40))
			}
		}
	})
	sock := testenv.Script(t, append(loopbackOnly(names...), "SIGNET_DOCKERD="+dockerdBin), "start-dockerd.sh", dir)
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+d.config, "HOME="+dir)
	return d
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// docker runs the docker CLI against the daemon and returns its
// combined output.
func (d *dockerd) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, args...)
	cmd.Env = d.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// repoDigest returns the digest docker recorded for repo (name without
// tag) from image ref.
func (d *dockerd) repoDigest(t *testing.T, ref, repo string) string {
	t.Helper()
	out, err := d.docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if err != nil {
		t.Fatalf("docker image inspect %s: %v: %s", ref, err, out)
	}
	var rds []string
	if err := json.Unmarshal([]byte(out), &rds); err != nil {
		t.Fatalf("docker image inspect %s: %v: %s", ref, err, out)
	}
	for _, rd := range rds {
		if r, dg, ok := strings.Cut(rd, "@"); ok && r == repo {
			return dg
		}
	}
	t.Fatalf("docker image inspect %s: no digest for %s in %v", ref, repo, rds)
	return ""
}

// TestDocker pulls through the proxy with the Docker engine: over https
// with the proxy's CA in the daemon's certs.d, and over plain http as an
// insecure registry in daemon.json. A signed tag is pulled as its signed
// digest (also when moved upstream); an unsigned one is refused, and
// docker's output gives the proxy's reason.
func TestDocker(t *testing.T) {
	requireDockerd(t)
	w := newWorld(t)
	httpsProxy := startProxy(t, w, "[::1]:0", []string{proxyNameHTTPS})
	httpProxy := startProxy(t, w, "[::1]:0", nil)
	httpsName := proxyNameHTTPS + ":" + port(httpsProxy.host)
	httpName := proxyNameHTTP + ":" + port(httpProxy.host)
	d := startDockerd(t, []string{proxyNameHTTPS, proxyNameHTTP},
		map[string]any{"insecure-registries": []string{httpName}},
		map[string]string{httpsName: httpsProxy.caFile})

	for _, tc := range []struct {
		scheme string
		name   string // the proxy's registry name for docker
		ps     *proxyServer
	}{
		{"https", httpsName, httpsProxy},
		{"http", httpName, httpProxy},
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			repo := tc.name + "/" + repoApp
			t.Run("signed", func(t *testing.T) {
				tc.ps.rec.reset()
				if out, err := d.docker("pull", repo+":signed"); err != nil {
					t.Fatalf("docker pull %s:signed: %v\n%s", repo, err, out)
				}
				if got, want := d.repoDigest(t, repo+":signed", repo), w.images[repoApp+":signed"].digest; got != want {
					t.Errorf("pulled as %s, want the signed %s", got, want)
				}
			})
			t.Run("unsigned", func(t *testing.T) {
				before := len(tc.ps.denials(repoApp, "unsigned"))
				out, err := d.docker("pull", repo+":unsigned")
				if err == nil {
					t.Fatalf("docker pull %s:unsigned worked:\n%s", repo, out)
				}
				t.Logf("docker pull says: %s", strings.TrimSpace(out))
				reason := fmt.Sprintf(`denied: %s/%s:unsigned: tag not signed`, w.upstream, repoApp)
				for _, want := range []string{"may require 'docker login'", reason, `(policy rule "quick-start")`} {
					if !strings.Contains(out, want) {
						t.Errorf("docker pull output does not say %q:\n%s", want, out)
					}
				}
				if n := len(tc.ps.denials(repoApp, "unsigned")) - before; n < 1 {
					t.Errorf("no denial in the proxy's audit log")
				}
			})
			t.Run("moved", func(t *testing.T) {
				if out, err := d.docker("pull", repo+":moved"); err != nil {
					t.Fatalf("docker pull %s:moved: %v\n%s", repo, err, out)
				}
				if got, want := d.repoDigest(t, repo+":moved", repo), w.images[repoApp+":moved"].digest; got != want {
					t.Errorf("pulled as %s, want the signed %s (upstream now has %s)", got, want, w.movedTo.digest)
				}
			})
		})
	}

	// The configuration matters, because the proxy's names are not in
	// 127.0.0.0/8: a proxy whose CA the daemon lacks is refused, and so is
	// a plain http one not listed in insecure-registries.
	t.Run("https/unknown-ca", func(t *testing.T) {
		other := startProxy(t, w, "[::1]:0", []string{proxyNameHTTPS})
		otherName := proxyNameHTTPS + ":" + port(other.host)
		out, err := d.docker("pull", otherName+"/"+repoApp+":signed")
		if err == nil {
			t.Fatalf("pulled from a proxy whose CA the daemon does not have:\n%s", out)
		}
		t.Logf("docker pull says: %s", strings.TrimSpace(out))
		if !strings.Contains(out, "x509") {
			t.Errorf("want a certificate error, got:\n%s", out)
		}
		// docker reads certs.d on every pull: the CA works without a
		// restart.
		pem, err := os.ReadFile(other.caFile)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d.etc, "certs.d", otherName, "ca.crt"), string(pem))
		if out, err := d.docker("pull", otherName+"/"+repoApp+":signed"); err != nil {
			t.Errorf("pull once the CA is in certs.d: %v\n%s", err, out)
		}
	})
	// docker's exception, which docs/proxy.md warns of: a registry in
	// 127.0.0.0/8 is insecure, its certificate unchecked.
	t.Run("https/loopback-unchecked", func(t *testing.T) {
		lo := startProxy(t, w, "127.0.0.1:0", []string{proxyNameHTTPS})
		if out, err := d.docker("pull", lo.host+"/"+repoApp+":signed"); err != nil {
			t.Errorf("docker checked the certificate of a registry on 127.0.0.1 (docs/proxy.md says it does not): %v\n%s", err, out)
		}
	})
	t.Run("http/not-insecure", func(t *testing.T) {
		other := startProxy(t, w, "[::1]:0", nil)
		out, err := d.docker("pull", proxyNameHTTP+":"+port(other.host)+"/"+repoApp+":signed")
		if err == nil {
			t.Fatalf("pulled over plain http from a proxy not in insecure-registries:\n%s", out)
		}
		t.Logf("docker pull says: %s", strings.TrimSpace(out))
		if !strings.Contains(out, "HTTP response to HTTPS client") {
			t.Errorf("want docker to insist on https, got:\n%s", out)
		}
	})
}

func port(hostPort string) string {
	i := strings.LastIndexByte(hostPort, ':')
	return hostPort[i+1:]
}
