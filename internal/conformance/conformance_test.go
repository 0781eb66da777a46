package conformance

import (
	"bytes"
	"context"
	"io"
	"log/slog"
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
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/registry/proxy"
	"github.com/signet-project/signet/trust/verify"
)

// suiteTool is the suite's binary, installed into SIGNET_TOOLS by
// scripts/install-tools.sh (github.com/opencontainers/distribution-spec/
// conformance at a pinned version).
const suiteTool = "oci-conformance"

// Names of the suite's tests, as its report prints them.
const (
	missingDigest  = "OCI Conformance Test/missing-manifest/by-digest"
	missingTag     = "OCI Conformance Test/missing-manifest/by-tag"
	emptyReferrers = "OCI Conformance Test/empty/referrers"
	roReferrers    = "OCI Conformance Test/read-only/referrers"
)

// Why a test is expected to fail through the proxy.
const (
	deny403 = "the proxy answers 403 DENIED, not 404, for a digest or tag that is not signed, " +
		"before the upstream is asked: it tells nothing about what exists upstream " +
		"(docs/proxy.md, protocol notes)"
	noReferrers = "the upstream has no referrers API: the proxy passes its 404 on, so that " +
		"clients fall back to the referrers tag schema; the suite wants 200"
)

// mustPass are tests that must run and pass in every case, so that a
// suite that ran nothing (data or APIs disabled) cannot pass.
var mustPass = []string{
	"OCI Conformance Test/ping",
	"OCI Conformance Test/empty/tag list",
	"OCI Conformance Test/read-only/tag-list",
	"OCI Conformance Test/read-only/head/manifest-head-by-tag",
	"OCI Conformance Test/read-only/head/manifest-head-by-digest",
	"OCI Conformance Test/read-only/head/blob-head",
	"OCI Conformance Test/read-only/pull/manifest-by-tag",
	"OCI Conformance Test/read-only/pull/manifest-by-digest",
	"OCI Conformance Test/read-only/pull/blob-get",
	"OCI Conformance Test/invalid-digest-format/manifest-get",
}

// TestConformance runs the suite's pull and content-discovery tests
// through the proxy, with every rule mode, and checks that exactly the
// expected tests fail, for the reasons given.
func TestConformance(t *testing.T) {
	bin := suiteBinary(t)
	trustURL := testservers.TrustServer(t)
	withReferrers := startUpstream(t, true)
	withoutReferrers := startUpstream(t, false)
	content := map[string]content{
		withReferrers:    pushContent(t, withReferrers, trustURL),
		withoutReferrers: pushContent(t, withoutReferrers, trustURL),
	}
	for _, tc := range []struct {
		name     string
		upstream string
		mode     string
		fail     map[string]string // test name -> why it fails
	}{
		{name: "allow", upstream: withReferrers, mode: proxy.ModeAllow},
		{name: "warn", upstream: withReferrers, mode: proxy.ModeWarn},
		{name: "enforce", upstream: withReferrers, mode: proxy.ModeEnforce, fail: map[string]string{
			missingDigest: deny403,
			missingTag:    deny403,
		}},
		{name: "enforce-no-referrers-upstream", upstream: withoutReferrers, mode: proxy.ModeEnforce, fail: map[string]string{
			missingDigest:  deny403,
			missingTag:     deny403,
			emptyReferrers: noReferrers,
			roReferrers:    noReferrers,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := startProxy(t, tc.upstream, trustURL, tc.mode)
			got := runSuite(t, bin, host, content[tc.upstream])
			check(t, got, tc.fail)
		})
	}
}

// check compares the suite's results with the expected failures: a test
// that fails unexpectedly, or passes where it should fail, is an error.
func check(t *testing.T, got []result, fail map[string]string) {
	t.Helper()
	passed, failed := map[string]bool{}, map[string]bool{}
	for _, r := range got {
		switch r.status {
		case "Pass":
			passed[r.name] = true
		case "Disabled": // by the configuration: push and delete
		default: // FAIL, Error, Skip (the suite found an API unsupported)
			failed[r.name] = true
			if _, ok := fail[r.name]; !ok {
				t.Errorf("new failure: %s: %s: %s", r.name, r.status, strings.Join(r.errs, "; "))
			}
		}
	}
	for name, why := range fail {
		switch {
		case passed[name]:
			t.Errorf("unexpected pass: %s was expected to fail (%s); update the expected failures", name, why)
		case !failed[name]:
			t.Errorf("%s did not run; it was expected to fail (%s)", name, why)
		}
	}
	for _, name := range mustPass {
		if !passed[name] && fail[name] == "" {
			t.Errorf("%s did not pass", name)
		}
	}
}

func suiteBinary(t *testing.T) string {
	t.Helper()
	p, err := testenv.LookTool(suiteTool)
	if err != nil {
		testenv.Require(t, suiteTool, "%v; run `make tools` (scripts/install-tools.sh)", err)
	}
	return p
}

// startUpstream starts go-containerregistry's registry, with or without
// the referrers API, and returns its host:port.
func startUpstream(t *testing.T, referrers bool) string {
	t.Helper()
	s := httptest.NewServer(ggcrregistry.New(
		ggcrregistry.Logger(slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelError)),
		ggcrregistry.WithReferrersSupport(referrers)))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func startProxy(t *testing.T, upstream, trustURL, mode string) string {
	t.Helper()
	// With the blob cache on, as `signet proxy` runs by default.
	store, err := blobcache.Open(t.TempDir(), blobcache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	p, err := proxy.New(proxy.Options{
		Upstreams: []proxy.Upstream{{URL: "http://" + upstream}},
		Policy: proxy.Policy{Rules: []proxy.Rule{{
			Name: mode, Match: upstream + "/*", TrustServer: trustURL, Pin: verify.Pin{TOFU: true}, Mode: mode,
		}}},
		Store: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(p.Handler())
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// content is what the suite reads, named to it as read-only data: pushed
// to the upstream and signed first.
type content struct {
	repo      string
	tags      []string
	manifests []string
	blobs     []string
	referrers []string // subjects
}

// pushContent pushes an image, a two-platform index and an artifact that
// refers to the image (its subject), signs their tags, and pushes an
// unsigned tag beside them.
func pushContent(t *testing.T, upstream, trustURL string) content {
	t.Helper()
	c := content{repo: "conformance/repo1", tags: []string{"latest", "multi", "v1", "v1-sbom"}}
	ref := func(tag string) string { return upstream + "/" + c.repo + ":" + tag }
	img := testservers.PushRandom(t, ref("v1"))
	idx := testservers.PushRandomIndex(t, ref("multi"))
	testservers.PushRandomIndex(t, ref("latest"))
	testservers.PushRandom(t, ref("unsigned"))

	imgDesc := descriptor(t, img)
	c.manifests = append(c.manifests, imgDesc.Digest.String())
	c.blobs = append(c.blobs, blobs(t, img)...)
	id, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	c.manifests = append(c.manifests, id.String())
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	child, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	c.manifests = append(c.manifests, im.Manifests[0].Digest.String()) // a child of a signed index
	c.blobs = append(c.blobs, blobs(t, child)...)

	// An artifact whose subject is the image, for the referrers API.
	sbom := mutate.Subject(mutate.ConfigMediaType(testservers.PushRandom(t, ref("v1-sbom")), "application/vnd.example.sbom.v1+json"), imgDesc).(v1.Image)
	tag, err := name.NewTag(ref("v1-sbom"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, sbom, remote.WithReferrersTagFallback(true)); err != nil {
		t.Fatalf("push %s: %v", tag, err)
	}
	c.referrers = append(c.referrers, imgDesc.Digest.String())

	cfg := publish.Config{
		TrustDir: t.TempDir(),
		Server:   trustURL,
		Passphrases: &keys.Retriever{Getenv: func(k string) string {
			return map[string]string{"SIGNET_ROOT_PASSPHRASE": "root passphrase", "SIGNET_REPOSITORY_PASSPHRASE": "repo passphrase"}[k]
		}},
	}
	var reqs []publish.Request
	for _, tag := range c.tags {
		reqs = append(reqs, publish.Request{Image: ref(tag)})
	}
	if _, err := publish.Sign(context.Background(), cfg, reqs); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return c
}

func descriptor(t *testing.T, img v1.Image) v1.Descriptor {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	n, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: d}
}

// blobs are an image's config and layers.
func blobs(t *testing.T, img v1.Image) []string {
	t.Helper()
	cd, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{cd.String()}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

// result is one test of the suite as its report names it ("OCI
// Conformance Test/read-only/pull/blob-get"), with its status (Pass,
// FAIL, Error, Skip, Disabled) and the errors it reported. A name
// appears once per item tested (each tag, manifest, blob).
type result struct {
	name   string
	status string
	errs   []string
}

// reportLine is a test's line in the suite's report on stdout.
var reportLine = regexp.MustCompile(`^(OCI Conformance Test(?:/[^:]+)?): (Pass|FAIL|Error|Skip|Disabled|Unknown)$`)

// parseReport reads the results tree the suite prints on stdout, and
// whether the report is complete. The suite's results.yaml and junit.xml
// are not read: with push disabled (read-only data) this version of the
// suite panics writing results.yaml, before it writes junit.xml.
func parseReport(out string) ([]result, bool) {
	var res []result
	tree, _, _ := strings.Cut(out, "\nConfiguration:\n")
	for _, line := range strings.Split(tree, "\n") {
		l := strings.TrimSpace(line)
		if m := reportLine.FindStringSubmatch(l); m != nil {
			res = append(res, result{name: m[1], status: m[2]})
		} else if e, ok := strings.CutPrefix(l, "- "); ok && len(res) > 0 {
			res[len(res)-1].errs = append(res[len(res)-1].errs, e)
		}
	}
	// Keep the leaves: the tests, not the groups above them.
	var leaves []result
	for i, r := range res {
		if i+1 < len(res) && strings.HasPrefix(res[i+1].name, r.name+"/") {
			continue
		}
		leaves = append(leaves, r)
	}
	return leaves, strings.Contains(out, "\nOCI Conformance Result: ")
}

// runSuite runs the suite's pull and content-discovery tests (push and
// delete disabled) against the registry at host.
func runSuite(t *testing.T, bin, host string, c content) []result {
	t.Helper()
	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"OCI_REGISTRY="+host,
		"OCI_TLS=disabled",
		"OCI_REPO1="+c.repo,
		"OCI_REPO2="+c.repo,
		"OCI_RESULTS_DIR="+filepath.Join(dir, "results"),
		"OCI_LOG=error",
		"OCI_API_PULL=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_API_PUSH=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_RO_DATA_TAGS="+strings.Join(c.tags, " "),
		"OCI_RO_DATA_MANIFESTS="+strings.Join(c.manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(c.blobs, " "),
		"OCI_RO_DATA_REFERRERS="+strings.Join(c.referrers, " "),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = dir // no oci-conformance.yaml there
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run() // exits non-zero when a test fails; the report says which
	res, complete := parseReport(stdout.String())
	if !complete || len(res) == 0 {
		t.Fatalf("%s printed no complete report (%v):\n%s\n%s", bin, err, stdout.String(), stderr.String())
	}
	if testing.Verbose() {
		t.Logf("%s:\n%s", bin, stdout.String())
	}
	return res
}
