// Command proxyload times registry pulls for bench/proxy.sh: manifest GETs
// by tag or blob GETs, against any distribution API registry: the upstream
// itself, signet's proxy or distribution's pull-through cache. By default
// one request at a time on one keep-alive connection; with -c N, N clients
// at once (each with its own connection), sharing the -n requests. Every
// answer is checked: status 200, the Content-Length, and the bytes must
// hash to the expected digest (the client hashes blobs as docker and
// containerd do).
//
// It prints one line in the Go benchmark format (benchstat reads it):
//
//	BenchmarkProxy/op=manifest/target=signet 500 182345 ns/op 170.2 p50-us 420.0 p99-us 91 wall-ms
//	BenchmarkProxy/op=blob-64MiB/target=signet 5 61234567 ns/op 1095.1 MB/s 60123.0 p50-us 64001.0 p99-us 306 wall-ms 21.3 peak-rss-MiB 58.0 srv-cpu-ms/op
//
// ns/op is the wall time over the requests; with -c above 1 it is not a
// request's latency (p50-us and p99-us are, over all requests).
//
// With -pid, two figures of that (server) process during the timed
// requests are reported: its peak RSS (the high-water mark is reset
// first, by writing 5 to /proc/PID/clear_refs, and VmHWM read from
// /proc/PID/status after) and its CPU time per request (user + system,
// from /proc/PID/stat, in 10 ms ticks).
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const manifestAccept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

func main() {
	var (
		base    = flag.String("url", "", "registry base URL (http://127.0.0.1:5000)")
		target  = flag.String("target", "", "name of the registry in the output (direct, signet, distribution)")
		op      = flag.String("op", "manifest", "manifest (GET by tag) or blob (GET by digest)")
		label   = flag.String("label", "", "op name in the output (default -op)")
		repo    = flag.String("repo", "", "repository")
		ref     = flag.String("ref", "", "tag (manifest) or digest (blob)")
		want    = flag.String("want", "", "digest the bytes must hash to (default: -ref for blobs)")
		n       = flag.Int("n", 500, "timed requests")
		warm    = flag.Int("warm", 1, "untimed requests first")
		conc    = flag.Int("c", 1, "clients at once, sharing the -n requests")
		pid     = flag.Int("pid", 0, "process whose peak RSS to report (0: none)")
		timeout = flag.Duration("timeout", 5*time.Minute, "bound on the whole run")
	)
	flag.Parse()
	if *base == "" || *target == "" || *repo == "" || *ref == "" || *n < 1 || *conc < 1 {
		fmt.Fprintln(os.Stderr, "proxyload: give -url, -target, -repo, -ref, -n >= 1 and -c >= 1")
		os.Exit(2)
	}
	if *label == "" {
		*label = *op
	}
	path := "/v2/" + *repo + "/manifests/" + *ref
	if *op == "blob" {
		path = "/v2/" + *repo + "/blobs/" + *ref
		if *want == "" {
			*want = *ref
		}
	} else if *op != "manifest" {
		fmt.Fprintf(os.Stderr, "proxyload: -op %q: use manifest or blob\n", *op)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(4, *conc)
	tr.MaxConnsPerHost = 0
	tr.DisableCompression = true
	hc := &http.Client{Transport: tr}
	newClient := func() *client {
		return &client{ctx: ctx, http: hc, url: strings.TrimSuffix(*base, "/") + path, want: *want, buf: make([]byte, 256<<10), h: sha256.New()}
	}
	c := newClient()

	for range *warm {
		if _, err := c.get(); err != nil {
			fail(err)
		}
	}
	if *pid > 0 {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", *pid), []byte("5"), 0); err != nil {
			fail(fmt.Errorf("reset the peak RSS of %d: %w", *pid, err))
		}
	}
	var cpu0 int64
	if *pid > 0 {
		var err error
		if cpu0, err = cpuTicks(*pid); err != nil {
			fail(err)
		}
	}
	lat, bytes, total := run(newClient, *n, *conc)
	line := fmt.Sprintf("BenchmarkProxy/op=%s/target=%s %d %d ns/op", *label, *target, *n, total.Nanoseconds()/int64(*n))
	if *op == "blob" {
		line += fmt.Sprintf(" %.2f MB/s", float64(bytes)/total.Seconds()/1e6)
	}
	slices.Sort(lat)
	line += fmt.Sprintf(" %.1f p50-us %.1f p99-us %d wall-ms", us(lat[len(lat)/2]), us(lat[(len(lat)*99)/100]), total.Milliseconds())
	if *pid > 0 {
		kib, err := vmHWM(*pid)
		if err != nil {
			fail(err)
		}
		cpu1, err := cpuTicks(*pid)
		if err != nil {
			fail(err)
		}
		line += fmt.Sprintf(" %.1f peak-rss-MiB %.3f srv-cpu-ms/op", float64(kib)/1024, float64(cpu1-cpu0)*10/float64(*n))
	}
	fmt.Println(line)
}

// run sends n requests from conc clients at once and returns every
// request's latency, the bytes read and the wall time. The clients start
// together.
func run(newClient func() *client, n, conc int) ([]time.Duration, int64, time.Duration) {
	var (
		mu    sync.Mutex
		lat   = make([]time.Duration, 0, n)
		bytes int64
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	gate := make(chan struct{})
	for range conc {
		c := newClient()
		wg.Go(func() {
			<-gate
			for next.Add(1) <= int64(n) {
				t := time.Now()
				k, err := c.get()
				if err != nil {
					fail(err)
				}
				d := time.Since(t)
				mu.Lock()
				lat = append(lat, d)
				bytes += k
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	return lat, bytes, time.Since(start)
}

type client struct {
	ctx  context.Context
	http *http.Client
	url  string
	want string
	buf  []byte
	h    hash.Hash
}

// get GETs the URL once and checks the answer; it returns the body size.
func (c *client) get() (int64, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	c.h.Reset()
	n, err := io.CopyBuffer(c.h, resp.Body, c.buf)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", c.url, n, err)
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("GET %s: %s", c.url, resp.Status)
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.FormatInt(n, 10) {
		return n, fmt.Errorf("GET %s: Content-Length %s, read %d bytes", c.url, cl, n)
	}
	if c.want != "" {
		if got := "sha256:" + hex.EncodeToString(c.h.Sum(nil)); got != c.want {
			return n, fmt.Errorf("GET %s: bytes hash to %s, want %s", c.url, got, c.want)
		}
	}
	return n, nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// vmHWM reads the peak resident set size of a process, in KiB.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/" + strconv.Itoa(pid) + "/status")
}

// cpuTicks reads the user + system CPU time of a process, in clock ticks
// (USER_HZ, 100 per second on Linux).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return u + s, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "proxyload:", err)
	os.Exit(1)
}
