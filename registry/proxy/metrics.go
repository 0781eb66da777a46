package proxy

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/signet-project/signet/registry/blobcache"
)

type metrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	refresh   *prometheus.HistogramVec
	cache     *prometheus.CounterVec
	refreshes *prometheus.CounterVec
	reg       prometheus.Registerer
	handler   http.Handler
}

// watchStale exports the number of repositories served from older
// verified trust data (their latest refresh failed).
func (m *metrics) watchStale(n func() float64) {
	// A second proxy on one registerer keeps the first one's gauge.
	m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{ //nolint:errcheck
		Name: "signet_proxy_trust_stale_repositories",
		Help: "Repositories served from older verified trust data because their latest refresh failed (see /_signet/status).",
	}, n))
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var gather prometheus.Gatherer = prometheus.DefaultGatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gather = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gather = g
	}
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_proxy_decisions_total", Help: "Proxy decisions by outcome (allow, deny, warn, error) and reason.",
		}, []string{"decision", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "signet_proxy_request_duration_seconds", Help: "Proxy request latency by kind (manifests, blobs, tags, referrers, ping).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}, []string{"kind"}),
		refresh: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "signet_proxy_trust_refresh_seconds", Help: "TUF refresh latency by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"outcome"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_proxy_cache_total", Help: "Cache lookups by cache (trust, manifest) and result (hit, miss).",
		}, []string{"cache", "result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_proxy_trust_refresh_total",
			Help: "Trust data refreshes by result: ok, rejected (the data failed verification) or unreachable.",
		}, []string{"result"}),
		reg: reg,
	}
	for _, c := range []prometheus.Collector{m.decisions, m.duration, m.refresh, m.cache, m.refreshes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register proxy metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(gather, promhttp.HandlerOpts{})
	return m, nil
}

// watchStore exports the blob cache's own counters and sizes, read from
// Store.Stats at each scrape: the store counts, the proxy does not count
// again. A second proxy on one registerer keeps the first one's.
func (m *metrics) watchStore(s *blobcache.Store) error {
	err := m.reg.Register(storeCollector{s})
	var are prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &are) {
		return fmt.Errorf("register blob cache metrics: %w", err)
	}
	return nil
}

// storeCollector turns one blobcache.Stats snapshot into metrics.
type storeCollector struct{ s *blobcache.Store }

func storeDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("signet_proxy_blobcache_"+name, help, labels, nil)
}

var (
	descHits = storeDesc("hits_total", "Blob cache lookups (blobs and manifests) answered from a cached file.")
	descMiss = storeDesc("misses_total", "Blob cache lookups that found no usable file (corrupt ones included); a blob miss then counts as an upstream fetch or a shared fetch.")
	descUp   = storeDesc("upstream_fetches_total", "Fetches into the blob cache started (one upstream GET each).")
	descJoin = storeDesc("joined_fetches_total", "Requests that joined a fetch already in progress instead of asking the upstream again.")
	descShar = storeDesc("shared_total", "Use of the shared cache (--cache-shared) by result: hit and miss (lookups before the upstream), put (blobs copied to it), error (lookups and copies that failed), mismatch (objects that did not match their digest, deleted).", "result")
	descErr  = storeDesc("fetch_errors_total", "Fetches into the blob cache that failed (upstream errors, cancellations, local I/O).")
	descMism = storeDesc("mismatches_total", "Fetches whose bytes did not hash to the digest or had another length: nothing was cached and no client got a complete body.")
	descCorr = storeDesc("corrupt_total", "Cached files found truncated or changed (at first use after a start, or by a scrub) and deleted.")
	descEvic = storeDesc("evictions_total", "Cached files deleted to stay within the size bound (least recently used first).")
	descSent = storeDesc("served_bytes_total", "Blob bytes sent to clients by source: cache (a cached file) or upstream (a fetch in progress).", "source")
	descGot  = storeDesc("fetched_bytes_total", "Bytes read from upstreams into the blob cache.")
	descSize = storeDesc("size_bytes", "Bytes of the files in the blob cache.")
	descObjs = storeDesc("objects", "Files (blobs and manifests) in the blob cache.")
	descFly  = storeDesc("fetches_in_flight", "Fetches into the blob cache in progress.")
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHits, descMiss, descUp, descJoin, descErr, descMism, descCorr, descEvic, descSent, descGot, descSize, descObjs, descFly, descShar} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(descHits, st.Hits)
	counter(descMiss, st.Misses)
	counter(descUp, st.UpstreamFetches)
	counter(descJoin, st.Joins)
	counter(descErr, st.FetchErrors)
	counter(descMism, st.Mismatches)
	counter(descCorr, st.Corrupt)
	counter(descEvic, st.Evictions)
	counter(descSent, st.BytesServed, "cache")
	counter(descSent, st.BytesStreamed, "upstream")
	counter(descGot, st.BytesFetched)
	if c.s.HasShared() {
		counter(descShar, st.Shared.Hits, "hit")
		counter(descShar, st.Shared.Misses, "miss")
		counter(descShar, st.Shared.Puts, "put")
		counter(descShar, st.Shared.Errors, "error")
		counter(descShar, st.Shared.Mismatches, "mismatch")
	}
	gauge(descSize, st.Size)
	gauge(descObjs, int64(st.Objects))
	gauge(descFly, int64(st.InFlight))
}
