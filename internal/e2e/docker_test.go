package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testenv"
)

// dockerCLI runs the docker client's trust commands (no daemon needed)
// against a trust server, with a config folder of its own.
type dockerCLI struct {
	t   *testing.T
	bin string
	env []string
	dir string // DOCKER_CONFIG
}

func newDockerCLI(t *testing.T, trustURL, caFile string) *dockerCLI {
	bin := testenv.Docker(t)
	dir := t.TempDir()
	host := strings.TrimPrefix(trustURL, "https://")
	// docker trusts a trust server's CA from $DOCKER_CONFIG/tls/<host:port>/.
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tls", host), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls", host, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "DOCKER_CONFIG="+dir, "DOCKER_CONTENT_TRUST_SERVER="+trustURL,
		"DOCKER_HOST=unix://"+filepath.Join(dir, "no-daemon.sock"), "HOME="+dir)
	for k, v := range passphrases {
		env = append(env, k+"="+v)
	}
	return &dockerCLI{t: t, bin: bin, env: env, dir: dir}
}

func (d *dockerCLI) run(args ...string) string {
	d.t.Helper()
	return d.runIn("", args...)
}

// runIn runs docker with stdin (answers to its prompts).
func (d *dockerCLI) runIn(stdin string, args ...string) string {
	d.t.Helper()
	cmd := exec.Command(d.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = d.env
	cmd.Dir = d.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		d.t.Fatalf("docker %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// inspectJSON is `docker trust inspect` output without signet's
// extension (Expires), as generic JSON.
func inspectJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v []map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("parse inspect JSON: %v\n%s", err, b)
	}
	for _, m := range v {
		delete(m, "Expires")
	}
	return v
}

// TestDockerSignerRemoval is the case from the field: a tag signed by
// the repository key, a signer added with the real docker CLI who signs
// another tag, then `docker trust signer remove`. Every reader must then
// serve the first tag (targets) and refuse the removed signer's tag,
// by tag and by digest, on a proxy that had served it before and on a
// fresh one; and `signet inspect -o json` must match `docker trust
// inspect` field for field, before and after.
func TestDockerSignerRemoval(t *testing.T) {
	reg := newRegistry(t)
	trustURL, caFile := tlsTrustServer(t)
	docker := newDockerCLI(t, trustURL, caFile)
	r := newReaders(t, reg.host, trustURL, caFile)
	// One trust dir for docker and signet, as a team shares ~/.docker/trust.
	r.cfg.TrustDir = filepath.Join(docker.dir, "trust")
	repo := reg.host + "/team/app"
	ctx := context.Background()

	reg.push(t, "team/app:v1")
	v2 := reg.push(t, "team/app:v2")
	if _, err := publish.Sign(ctx, r.cfg, []publish.Request{{Image: repo + ":v1"}}); err != nil {
		t.Fatalf("sign v1: %v", err)
	}
	keyDir := t.TempDir()
	docker.run("trust", "key", "generate", "alice", "--dir", keyDir)
	docker.run("trust", "signer", "add", "--key", filepath.Join(keyDir, "alice.pub"), "alice", repo)
	signed, err := publish.Sign(ctx, r.cfg, []publish.Request{{Image: repo + ":v2"}})
	if err != nil {
		t.Fatalf("sign v2 with alice's key: %v", err)
	}
	if got := signed[0].Roles; !reflect.DeepEqual(got, []string{"targets/alice", "targets/releases"}) && !reflect.DeepEqual(got, []string{"targets/releases", "targets/alice"}) {
		t.Fatalf("v2 signed into %v, want targets/releases and targets/alice", got)
	}
	compareInspect(t, docker, r, repo, "alice signed v2")
	r.expect("team/app:v1", true, "")
	r.expect("team/app:v2", true, "")

	// As the field report did: answer the prompt. (docker CLI 28's
	// --force skips the removal altogether: maybePromptForSignerRemoval
	// returns false without prompting.)
	if out := docker.runIn("y\n", "trust", "signer", "remove", "alice", repo); !strings.Contains(out, "Successfully removed alice") {
		t.Fatalf("docker trust signer remove: %s", out)
	}
	r.expect("team/app:v1", true, "")
	r.expect("team/app:v2", false, "targets/releases has no keys")
	for label, host := range map[string]string{"running proxy": r.running, "fresh proxy": r.replica()} {
		if err := pull(host, "team/app@"+v2.digest.String()); !isDenied(err) {
			t.Errorf("%s served the removed signer's image by digest: %v", label, err)
		}
	}
	compareInspect(t, docker, r, repo, "after signer remove")
}

func compareInspect(t *testing.T, docker *dockerCLI, r *readers, repo, when string) {
	t.Helper()
	want := inspectJSON(t, []byte(docker.run("trust", "inspect", repo)))
	ins, err := publish.Inspect(context.Background(), r.cfg, []string{repo})
	if err != nil {
		t.Fatalf("signet inspect (%s): %v", when, err)
	}
	b, _ := json.Marshal(ins)
	got := inspectJSON(t, b)
	if !reflect.DeepEqual(got, want) {
		gb, _ := json.MarshalIndent(got, "", "  ")
		wb, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("%s: signet inspect differs from docker trust inspect\nsignet:\n%s\ndocker:\n%s", when, gb, wb)
	}
}
