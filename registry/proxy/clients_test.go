package proxy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testservers"
)

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRealClients pulls through the proxy with the crane and skopeo
// binaries: signed tags (and one platform of a signed index) arrive;
// unsigned ones are refused with the reason visible in the client's output.
func TestRealClients(t *testing.T) {
	crane, skopeo := testenv.Crane(t), testenv.Skopeo(t)
	e := newEnv(t, nil)
	img := e.push("team/app:v1")
	e.sign("team/app:v1")
	e.push("team/app:unsigned")
	testservers.PushRandomIndex(t, e.upstream+"/team/multi:1")
	e.sign("team/multi:1")

	// crane
	out, err := run(t, crane, "digest", "--insecure", e.proxy+"/team/app:v1")
	if err != nil || strings.TrimSpace(out) != digestOf(t, img) {
		t.Fatalf("crane digest: %v %q, want %s", err, out, digestOf(t, img))
	}
	tarball := filepath.Join(t.TempDir(), "app.tar")
	if out, err := run(t, crane, "pull", "--insecure", e.proxy+"/team/app:v1", tarball); err != nil {
		t.Fatalf("crane pull: %v\n%s", err, out)
	}
	if fi, err := os.Stat(tarball); err != nil || fi.Size() < 2048 {
		t.Fatalf("crane pull wrote %v %v", fi, err)
	}
	out, err = run(t, crane, "manifest", "--insecure", e.proxy+"/team/app:unsigned")
	if err == nil || !strings.Contains(out, "DENIED") || !strings.Contains(out, "tag not signed") {
		t.Fatalf("crane manifest of an unsigned tag: %v\n%s", err, out)
	}
	armTar := filepath.Join(t.TempDir(), "arm.tar")
	if out, err := run(t, crane, "pull", "--insecure", "--platform", "linux/arm64", e.proxy+"/team/multi:1", armTar); err != nil {
		t.Fatalf("crane pull --platform linux/arm64: %v\n%s", err, out)
	}

	// skopeo
	dir := filepath.Join(t.TempDir(), "oci")
	if out, err := run(t, skopeo, "copy", "--src-tls-verify=false", "docker://"+e.proxy+"/team/app:v1", "oci:"+dir); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	out, err = run(t, skopeo, "copy", "--src-tls-verify=false", "docker://"+e.proxy+"/team/app:unsigned", "oci:"+filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(out, "tag not signed") {
		t.Fatalf("skopeo copy of an unsigned tag: %v\n%s", err, out)
	}
	t.Logf("skopeo's view of a denial: %s", strings.TrimSpace(out))
	out, err = run(t, skopeo, "copy", "--src-tls-verify=false", "--override-arch", "arm64", "docker://"+e.proxy+"/team/multi:1", "oci:"+filepath.Join(t.TempDir(), "arm"))
	if err != nil {
		t.Fatalf("skopeo copy arm64 of a signed index: %v\n%s", err, out)
	}
	out, err = run(t, skopeo, "inspect", "--tls-verify=false", "docker://"+e.proxy+"/team/app:v1")
	if err != nil || !strings.Contains(out, digestOf(t, img)) {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
}
