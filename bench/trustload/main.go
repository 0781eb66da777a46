// Command trustload drives a Notary v1 trust server (signet's or the
// original notary-server) the way docker's content trust does, and times
// it.
//
// Phases, each timed on its own:
//
//	init        K repositories initialised with notary's client library
//	            (root key made locally, Initialize with the server managing
//	            snapshot and timestamp, then the first Publish of root and
//	            an empty targets)
//	publish     N targets updates (AddTarget + Publish), spread round-robin
//	            over the K repositories; min(C, K) publishers run at once,
//	            each owning its own repositories
//	get-timestamp, get-targets
//	            N GETs each of /v2/<gun>/_trust/tuf/timestamp.json and
//	            targets.json, spread over the K repositories, from C workers
//	            sharing one http.Client
//
// A publish through the notary client is several requests: it refreshes
// the repository first (root, timestamp, snapshot and targets GETs), signs
// the new targets, then POSTs it; the server signs a new snapshot and
// timestamp. So "publish" measures what a `docker push` with content trust
// costs the server, plus the client's own work, on the same machine.
//
// Output: one line per phase on stdout in the Go benchmark format, which
// benchstat reads:
//
//	BenchmarkTrustload/op=publish  200  195.2 ops/s  4.81 p50-ms  9.13 p99-ms  2.10 srv-cpu-ms/op
//
// ops/s is the phase's operations over its wall time (throughput, with
// the phase's concurrency); p50-ms and p99-ms are per-operation latency;
// srv-cpu-ms/op, given -server-pid of a local server (Linux), is the CPU
// time the server process spent per operation, which other load on the
// machine disturbs far less than throughput. The same figures go to stderr
// as a plain table.
//
// Any publish error, any GET that is not 200 or whose body differs from
// the metadata fetched before the phase, and any repository whose targets
// do not hold exactly what was published make it exit 1. -timeout bounds
// the whole run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theupdateframework/notary/client"
	"github.com/theupdateframework/notary/passphrase"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf/data"
)

const keyPassphrase = "trustload benchmark passphrase"

type config struct {
	url         string
	gunPrefix   string
	repos       int
	publishes   int
	gets        int
	concurrency int
	trustDir    string
	timeout     time.Duration
	serverPID   int
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "http://127.0.0.1:4443", "trust server base URL")
	flag.StringVar(&c.gunPrefix, "gun-prefix", "localhost:5000/trustload/", "prefix of the repository names (GUNs) created; use a fresh one per run")
	flag.IntVar(&c.repos, "repos", 4, "repositories (K) to initialise and publish to")
	flag.IntVar(&c.publishes, "publishes", 100, "targets updates (N) to publish in all")
	flag.IntVar(&c.gets, "gets", 2000, "GETs of timestamp.json and again of targets.json")
	flag.IntVar(&c.concurrency, "concurrency", 8, "concurrent GET workers (C); publishers are min(C, repos)")
	flag.StringVar(&c.trustDir, "trust-dir", "", "client trust folder (default: a temporary folder, removed at exit)")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "give up (exit 2) after this long")
	flag.IntVar(&c.serverPID, "server-pid", 0, "process ID of the server, if local (Linux): report the CPU time it spends per operation")
	flag.Parse()
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "trustload:", err)
		os.Exit(2)
	}
	// The notary client takes no context: a watchdog bounds the run.
	watchdog := time.AfterFunc(c.timeout, func() {
		fmt.Fprintf(os.Stderr, "trustload: timed out after %s\n", c.timeout)
		os.Exit(2)
	})
	defer watchdog.Stop()
	if err := run(c, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "trustload:", err)
		os.Exit(1)
	}
}

func (c *config) check() error {
	switch {
	case c.repos < 1:
		return errors.New("-repos must be at least 1")
	case c.publishes < 0, c.gets < 0:
		return errors.New("-publishes and -gets must not be negative")
	case c.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case !strings.HasPrefix(c.url, "http://") && !strings.HasPrefix(c.url, "https://"):
		return fmt.Errorf("-url %q: want http:// or https://", c.url)
	}
	c.url = strings.TrimRight(c.url, "/")
	return nil
}

// phase is the timing of one phase.
type phase struct {
	name    string
	elapsed time.Duration
	lat     []time.Duration
	cpu     time.Duration // server CPU time in the phase; -1 if unknown
}

func (p phase) print(stdout, stderr io.Writer) {
	n := len(p.lat)
	if n == 0 {
		return
	}
	sort.Slice(p.lat, func(i, j int) bool { return p.lat[i] < p.lat[j] })
	q := func(f float64) float64 {
		i := int(f*float64(n)+0.5) - 1
		i = max(0, min(i, n-1))
		return float64(p.lat[i]) / float64(time.Millisecond)
	}
	ops := float64(n) / p.elapsed.Seconds()
	var cpu, cpuText string
	if p.cpu >= 0 {
		ms := float64(p.cpu) / float64(time.Millisecond) / float64(n)
		cpu = fmt.Sprintf("\t%.3f srv-cpu-ms/op", ms)
		cpuText = fmt.Sprintf("  server CPU %7.3f ms/op", ms)
	}
	fmt.Fprintf(stdout, "BenchmarkTrustload/op=%s\t%d\t%.1f ops/s\t%.3f p50-ms\t%.3f p99-ms%s\n",
		p.name, n, ops, q(0.50), q(0.99), cpu)
	fmt.Fprintf(stderr, "%-14s %6d ops %8.3f s %9.1f ops/s  p50 %7.3f ms  p99 %7.3f ms%s\n",
		p.name, n, p.elapsed.Seconds(), ops, q(0.50), q(0.99), cpuText)
}

// repo is one repository under load and the targets published to it.
type repo struct {
	gun     string
	client  client.Repository
	targets int // published since init
	base    int // targets version after init
}

func run(c config, stdout, stderr io.Writer) error {
	if c.trustDir == "" {
		dir, err := os.MkdirTemp("", "trustload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.trustDir = dir
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * c.concurrency
	tr.MaxIdleConnsPerHost = 4 * c.concurrency
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Minute}

	fmt.Fprintf(stderr, "trustload: %s repos=%d publishes=%d gets=%d concurrency=%d\n", c.url, c.repos, c.publishes, c.gets, c.concurrency)
	if err := ping(hc, c.url); err != nil {
		return err
	}
	repos := make([]*repo, c.repos)
	for i := range repos {
		gun := fmt.Sprintf("%s%d", c.gunPrefix, i)
		// One trust folder per repository: publishers never share files.
		cr, err := client.NewFileCachedRepository(filepath.Join(c.trustDir, fmt.Sprint(i)), data.GUN(gun), c.url, tr,
			passphrase.ConstantRetriever(keyPassphrase), trustpinning.TrustPinConfig{})
		if err != nil {
			return fmt.Errorf("new repository %q: %w", gun, err)
		}
		repos[i] = &repo{gun: gun, client: cr}
	}
	publishers := min(c.concurrency, c.repos)
	serverCPU := func() time.Duration { return -1 }
	if c.serverPID > 0 {
		if _, err := processCPU(c.serverPID); err != nil {
			return fmt.Errorf("-server-pid: %w", err)
		}
		serverCPU = func() time.Duration {
			d, err := processCPU(c.serverPID)
			if err != nil {
				return -1
			}
			return d
		}
	}

	// Phase init: as `docker trust` does on the first signed push.
	initPhase, err := parallel(serverCPU, "init", publishers, len(repos), func(w, i int) error {
		r := repos[i]
		key, err := r.client.GetCryptoService().Create(data.CanonicalRootRole, "", data.ECDSAKey)
		if err != nil {
			return fmt.Errorf("create root key for %q: %w", r.gun, err)
		}
		if err := r.client.Initialize([]string{key.ID()}, data.CanonicalSnapshotRole); err != nil {
			return fmt.Errorf("initialize %q: %w", r.gun, err)
		}
		if err := r.client.Publish(); err != nil {
			return fmt.Errorf("first publish of %q: %w", r.gun, err)
		}
		return nil
	}, func(i, w int) bool { return i%publishers == w })
	if err != nil {
		return err
	}
	initPhase.print(stdout, stderr)
	// The first publish signs targets again after Initialize signed it, so
	// the version after init is the client's business: note it.
	for _, r := range repos {
		t, err := getTargets(hc, c.url, r.gun)
		if err != nil {
			return err
		}
		if len(t.Signed.Targets) != 0 {
			return fmt.Errorf("targets of new repository %q has %d targets", r.gun, len(t.Signed.Targets))
		}
		r.base = t.Signed.Version
	}

	// Phase publish: update i goes to repository i mod K, and repository
	// j is published only by publisher j mod P, so no repository has two
	// publishers (which would make the second fail as out of date).
	pubPhase, err := parallel(serverCPU, "publish", publishers, c.publishes, func(w, i int) error {
		r := repos[i%len(repos)]
		r.targets++
		name := fmt.Sprintf("v%d", r.targets)
		meta, err := data.NewFileMeta(strings.NewReader(r.gun+":"+name), data.NotaryDefaultHashes...)
		if err != nil {
			return err
		}
		if err := r.client.AddTarget(&client.Target{Name: name, Hashes: meta.Hashes, Length: meta.Length}); err != nil {
			return fmt.Errorf("add target %s to %q: %w", name, r.gun, err)
		}
		if err := r.client.Publish(); err != nil {
			return fmt.Errorf("publish %s to %q: %w", name, r.gun, err)
		}
		return nil
	}, func(i, w int) bool { return (i%len(repos))%publishers == w })
	if err != nil {
		return err
	}
	pubPhase.print(stdout, stderr)

	// Before reading: every repository holds exactly what was published.
	for _, r := range repos {
		t, err := getTargets(hc, c.url, r.gun)
		if err != nil {
			return err
		}
		if len(t.Signed.Targets) != r.targets || t.Signed.Version != r.base+r.targets {
			return fmt.Errorf("targets of %q: version %d with %d targets, want version %d with %d", r.gun, t.Signed.Version, len(t.Signed.Targets), r.base+r.targets, r.targets)
		}
	}

	for _, role := range []string{"timestamp", "targets"} {
		want := make([][]byte, len(repos))
		for i, r := range repos {
			if want[i], err = get(hc, c.url+tufPath(r.gun, role)); err != nil {
				return err
			}
		}
		p, err := parallel(serverCPU, "get-"+role, c.concurrency, c.gets, func(w, i int) error {
			url := c.url + tufPath(repos[i%len(repos)].gun, role)
			body, err := get(hc, url)
			if err != nil {
				return err
			}
			if !bytes.Equal(body, want[i%len(repos)]) {
				return fmt.Errorf("GET %s: %d bytes differ from the %d read before", url, len(body), len(want[i%len(repos)]))
			}
			return nil
		}, nil)
		if err != nil {
			return err
		}
		p.print(stdout, stderr)
	}
	return nil
}

// parallel runs op(w, i) for i in [0, n) on workers goroutines and times
// the whole and each op, and the server's CPU time (serverCPU returns
// the server's total so far, or -1). With owns nil, workers take the next i from a
// shared counter; otherwise worker w does, in order, the i for which
// owns(i, w). It stops at the first error.
func parallel(serverCPU func() time.Duration, name string, workers, n int, op func(w, i int) error, owns func(i, w int) bool) (phase, error) {
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		lat    = make([]time.Duration, n)
	)
	cpu0 := serverCPU()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do := func(i int) bool {
				t0 := time.Now()
				err := op(w, i)
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					failed.Store(true)
					return false
				}
				return true
			}
			if owns == nil {
				for !failed.Load() {
					i := int(next.Add(1) - 1)
					if i >= n || !do(i) {
						return
					}
				}
				return
			}
			for i := 0; i < n && !failed.Load(); i++ {
				if owns(i, w) && !do(i) {
					return
				}
			}
		}()
	}
	wg.Wait()
	p := phase{name: name, elapsed: time.Since(start), lat: lat, cpu: -1}
	if cpu0 >= 0 {
		if cpu1 := serverCPU(); cpu1 >= 0 {
			p.cpu = cpu1 - cpu0
		}
	}
	if first != nil {
		return p, fmt.Errorf("%s: %w", name, first)
	}
	return p, nil
}

// processCPU returns the user and system CPU time that process pid has
// used, from /proc/<pid>/stat (Linux; clock ticks of 10 ms, USER_HZ 100).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces: skip past it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("read CPU time of process %d: unexpected /proc stat %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time of process %d: short /proc stat", pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
		}
		ticks += v
	}
	const userHZ = 100
	return time.Duration(ticks) * time.Second / userHZ, nil
}

func tufPath(gun, role string) string {
	return "/v2/" + gun + "/_trust/tuf/" + role + ".json"
}

func getTargets(hc *http.Client, base, gun string) (*data.SignedTargets, error) {
	body, err := get(hc, base+tufPath(gun, "targets"))
	if err != nil {
		return nil, err
	}
	var t data.SignedTargets
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("parse targets of %q: %w", gun, err)
	}
	return &t, nil
}

// get returns the body of a 200 answer to GET url, and an error for any
// other answer.
func get(hc *http.Client, url string) ([]byte, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %.200s", url, resp.StatusCode, body)
	}
	return body, nil
}

// ping waits up to 10 s for the server to answer /v2/.
func ping(hc *http.Client, base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("server at %s does not answer /v2/: %v", base, last)
}
