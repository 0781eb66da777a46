package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/signet-project/signet/internal/testservers"
)

// Load test parameters: bounded so that `go test -race` runs it in a few
// seconds on 2 CPUs.
const (
	loadPulls    = 400              // concurrent pulls per round
	loadDeadline = 60 * time.Second // per round; far above the expected 1-2 s
	// loadGoroutineSlack allows for connections still closing after the
	// settle loop gave up; a leak of one goroutine per pull would be
	// hundreds.
	loadGoroutineSlack = 10
	// loadHeapSlack bounds the growth of HeapInuse over the second round:
	// a leak of 1 KiB per request (about 1,700 requests) would pass it.
	loadHeapSlack = 4 << 20
)

// loadCase is one image a pull asks for, and what the right answer is.
type loadCase struct {
	repo, tag string
	// signed: the tag must be answered with exactly want (the signed
	// digest, even if the tag moved upstream since).
	signed bool
	want   string
	// Unsigned images: a manifest digest and a blob digest that must be
	// denied too, not only the tag.
	digest, blob string
}

// wrongAnswer is a security failure: the proxy served what it must not,
// or not what was signed.
type wrongAnswer struct{ msg string }

func (w *wrongAnswer) Error() string { return "WRONG ANSWER: " + w.msg }

func wrong(format string, args ...any) error { return &wrongAnswer{fmt.Sprintf(format, args...)} }

// TestLoad pulls signed and unsigned images through two proxy replicas,
// hundreds of pulls at once: every signed pull must get exactly the signed
// manifest and blobs whose bytes hash right, every unsigned pull 403
// DENIED. A second identical round must leave no more goroutines and no
// more heap than the first.
// With a blob cache, each replica has its own, and the second round is
// served from them.
func TestLoad(t *testing.T) {
	t.Run("no-cache", func(t *testing.T) { testLoad(t, false) })
	t.Run("cache", func(t *testing.T) { testLoad(t, true) })
}

func testLoad(t *testing.T, cached bool) {
	e := newEnv(t, func(o *Options) {
		if cached {
			o.Store = openStore(t, t.TempDir())
		}
	})
	replicas := []string{e.proxy}
	if cached {
		replicas = append(replicas, e.replicaWith(openStore(t, t.TempDir())))
	} else {
		replicas = append(replicas, e.newReplica())
	}

	var cases []loadCase
	setup := time.Now()
	for r := range 4 {
		repo := fmt.Sprintf("load/app%d", r)
		for _, tag := range []string{"v1", "v2"} {
			img := e.push(repo + ":" + tag)
			e.sign(repo + ":" + tag)
			cases = append(cases, loadCase{repo: repo, tag: tag, signed: true, want: loadDigest(t, img)})
		}
		cases = append(cases, unsignedCase(t, repo, "unsigned", e.push(repo+":unsigned")))
	}
	idx := testservers.PushRandomIndex(t, e.upstream+"/load/multi:1")
	e.sign("load/multi:1")
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, loadCase{repo: "load/multi", tag: "1", signed: true, want: d.String()})
	// A signed tag moved upstream after signing: the case load/app3:v2
	// above must still get the signed digest, and the new manifest and its
	// blobs must be denied by digest. (Its tag is one that exists nowhere:
	// denied as not signed.)
	cases = append(cases, unsignedCase(t, "load/app3", "v2-moved", e.push("load/app3:v2")))
	// A repository without trust data.
	cases = append(cases, unsignedCase(t, "load/nosig", "v1", e.push("load/nosig:v1")))
	t.Logf("setup: %d cases (images pushed and signed) in %v", len(cases), time.Since(setup).Round(time.Millisecond))

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = loadPulls
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()

	g0 := runtime.NumGoroutine()
	loadRound(t, client, replicas, cases, 1)
	tr.CloseIdleConnections()
	g1 := settleGoroutines(0)
	h1 := heapInuse()

	loadRound(t, client, replicas, cases, 2)
	tr.CloseIdleConnections()
	g2 := settleGoroutines(g1 + loadGoroutineSlack)
	h2 := heapInuse()

	t.Logf("goroutines: %d before, %d after round 1, %d after round 2; HeapInuse %.1f MiB after round 1, %.1f MiB after round 2 (%+.2f MiB)",
		g0, g1, g2, mib(h1), mib(h2), mib(int64(h2)-int64(h1)))
	if g2 > g1+loadGoroutineSlack {
		buf := make([]byte, 64<<10)
		t.Errorf("goroutines grew over an identical round: %d -> %d (slack %d)\n%s", g1, g2, loadGoroutineSlack, buf[:runtime.Stack(buf, true)])
	}
	if int64(h2)-int64(h1) > loadHeapSlack {
		t.Errorf("HeapInuse grew over an identical round by %.1f MiB (bound %.1f MiB)", mib(int64(h2)-int64(h1)), mib(loadHeapSlack))
	}
}

func loadDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func unsignedCase(t *testing.T, repo, tag string, img v1.Image) loadCase {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return loadCase{repo: repo, tag: tag, digest: loadDigest(t, img), blob: ld.String()}
}

// loadRound runs loadPulls pulls at once and fails the test on any wrong
// answer or failed pull. Pull i asks for case i mod len(cases); its
// variant, i / len(cases), picks the replica, HEAD or GET for the tag and
// the platform of an index, so every case meets every combination.
func loadRound(t *testing.T, client *http.Client, replicas []string, cases []loadCase, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadDeadline)
	defer cancel()
	var (
		wg              sync.WaitGroup
		requests        atomic.Int64
		nWrong, nFailed atomic.Int64
		mu              sync.Mutex
		msgs            []string
	)
	start := make(chan struct{})
	for i := range loadPulls {
		c, variant := cases[i%len(cases)], i/len(cases)
		proxy := replicas[variant%len(replicas)]
		wg.Go(func() {
			<-start
			p := &puller{ctx: ctx, client: client, base: "http://" + proxy, requests: &requests}
			err := p.pull(c, variant)
			if err == nil {
				return
			}
			var w *wrongAnswer
			if errors.As(err, &w) {
				nWrong.Add(1)
			} else {
				nFailed.Add(1)
			}
			mu.Lock()
			if len(msgs) < 10 {
				msgs = append(msgs, fmt.Sprintf("%s %s:%s via %s: %v", map[bool]string{true: "signed", false: "unsigned"}[c.signed], c.repo, c.tag, proxy, err))
			}
			mu.Unlock()
		})
	}
	began := time.Now()
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(loadDeadline + 10*time.Second):
		t.Fatalf("round %d: pulls still running %v after the deadline", round, 10*time.Second)
	}
	took := time.Since(began)
	t.Logf("round %d: %d pulls (%d requests) through %d replicas in %v (%.0f requests/s); %d wrong answers, %d failed",
		round, loadPulls, requests.Load(), len(replicas), took.Round(time.Millisecond), float64(requests.Load())/took.Seconds(), nWrong.Load(), nFailed.Load())
	if nWrong.Load() > 0 || nFailed.Load() > 0 {
		t.Fatalf("round %d: %d wrong answers, %d failed pulls; first ones:\n%s", round, nWrong.Load(), nFailed.Load(), strings.Join(msgs, "\n"))
	}
}

// puller pulls one image as a registry client does, checking every answer.
type puller struct {
	ctx      context.Context
	client   *http.Client
	base     string
	requests *atomic.Int64
}

func (p *puller) do(method, path string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(p.ctx, method, p.base+path, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	p.requests.Add(1)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return resp, body, nil
}

func (p *puller) pull(c loadCase, variant int) error {
	if !c.signed {
		return p.pullUnsigned(c, variant)
	}
	// One pull in three resolves the tag with HEAD and fetches by digest
	// (containerd); the others GET the tag (docker, crane).
	ref := c.tag
	if variant%3 == 0 {
		resp, _, err := p.do(http.MethodHead, "/v2/"+c.repo+"/manifests/"+c.tag)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HEAD %s:%s: %s", c.repo, c.tag, resp.Status)
		}
		if got := resp.Header.Get("Docker-Content-Digest"); got != c.want {
			return wrong("HEAD %s:%s answered digest %s, signed %s", c.repo, c.tag, got, c.want)
		}
		ref = c.want
	}
	body, err := p.manifest(c.repo, ref, c.want)
	if err != nil {
		return err
	}
	var m struct {
		Manifests []v1.Descriptor `json:"manifests"`
		Config    v1.Descriptor   `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return wrong("manifest %s@%s does not parse: %v", c.repo, c.want, err)
	}
	if len(m.Manifests) > 0 {
		// An index: one platform, as a client picks it.
		child := m.Manifests[(variant/2)%len(m.Manifests)].Digest.String()
		if body, err = p.manifest(c.repo, child, child); err != nil {
			return err
		}
		m.Config, m.Layers = v1.Descriptor{}, nil
		if err := json.Unmarshal(body, &m); err != nil {
			return wrong("child manifest %s@%s does not parse: %v", c.repo, child, err)
		}
	}
	if len(m.Layers) == 0 || m.Config.Digest.Hex == "" {
		return wrong("manifest of %s:%s names no config or layers", c.repo, c.tag)
	}
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		resp, body, err := p.do(http.MethodGet, "/v2/"+c.repo+"/blobs/"+b.Digest.String())
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("blob %s@%s: %s", c.repo, b.Digest, resp.Status)
		}
		if got := sha256Hex(body); got != b.Digest.String() || int64(len(body)) != b.Size {
			return wrong("blob %s@%s: got %d bytes hashing to %s, want %d", c.repo, b.Digest, len(body), got, b.Size)
		}
	}
	return nil
}

// manifest GETs a manifest and checks that its bytes hash to want.
func (p *puller) manifest(repo, ref, want string) ([]byte, error) {
	resp, body, err := p.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s manifest %s: %s: %s", repo, ref, resp.Status, body)
	}
	if got := sha256Hex(body); got != want {
		return nil, wrong("GET %s manifest %s: bytes hash to %s, signed %s", repo, ref, got, want)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != want {
		return nil, wrong("GET %s manifest %s: Docker-Content-Digest %s, signed %s", repo, ref, got, want)
	}
	return body, nil
}

// pullUnsigned asks for an unsigned image by tag (HEAD or GET), by digest
// and for one of its blobs: every answer must be 403 DENIED.
func (p *puller) pullUnsigned(c loadCase, variant int) error {
	tagMethod := http.MethodGet
	if variant%3 == 0 {
		tagMethod = http.MethodHead
	}
	for _, rq := range []struct{ method, path string }{
		{tagMethod, "/v2/" + c.repo + "/manifests/" + c.tag},
		{http.MethodGet, "/v2/" + c.repo + "/manifests/" + c.digest},
		{http.MethodGet, "/v2/" + c.repo + "/blobs/" + c.blob},
	} {
		resp, body, err := p.do(rq.method, rq.path)
		if err != nil {
			return err
		}
		switch {
		case resp.StatusCode < 300:
			return wrong("%s %s: unsigned content served (%s, %d bytes)", rq.method, rq.path, resp.Status, len(body))
		case resp.StatusCode != http.StatusForbidden:
			return fmt.Errorf("%s %s: %s, want 403: %s", rq.method, rq.path, resp.Status, body)
		case rq.method == http.MethodGet && !strings.Contains(string(body), `"DENIED"`):
			return fmt.Errorf("%s %s: 403 without DENIED: %s", rq.method, rq.path, body)
		}
	}
	return nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// settleGoroutines waits (up to 5 s) for the goroutine count to drop to
// target or, with target 0, to stop changing, and returns it.
func settleGoroutines(target int) int {
	deadline := time.Now().Add(5 * time.Second)
	last, stable := runtime.NumGoroutine(), 0
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n := runtime.NumGoroutine()
		if target > 0 && n <= target {
			return n
		}
		if n == last {
			if stable++; target == 0 && stable >= 10 {
				return n
			}
		} else {
			last, stable = n, 0
		}
	}
	return runtime.NumGoroutine()
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mib[T ~int | ~int64 | ~uint64](n T) float64 { return float64(n) / (1 << 20) }
