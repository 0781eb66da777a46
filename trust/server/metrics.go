package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	publishes *prometheus.CounterVec
	imports   *prometheus.CounterVec
	// reads counts metadata reads by read cache result (readcache.go).
	reads   *prometheus.CounterVec
	handler http.Handler
}

func newMetrics(reg prometheus.Registerer, gather prometheus.Gatherer, inFlight func() int64, cache *readCache) (*metrics, error) {
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gather = r, r
	}
	if gather == nil {
		gather = prometheus.DefaultGatherer
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_trust_server_requests_total",
			Help: "Trust server requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signet_trust_server_request_duration_seconds",
			Help:    "Trust server request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_trust_server_publishes_total",
			Help: "Metadata updates by outcome (ok, invalid, conflict, busy, error).",
		}, []string{"outcome"}),
		imports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_trust_server_imports_total",
			Help: "Imports of trust data from another server by outcome (ok, invalid, conflict, busy, error).",
		}, []string{"outcome"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_trust_server_read_cache_total",
			Help: "Metadata reads by read cache result: hit (served from memory), miss (not in memory), stale (the repository changed since), expired (a server-signed timestamp or snapshot past its expiry), error (the change counter could not be read), off (no cache).",
		}, []string{"result"}),
	}
	bytesInFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signet_trust_server_update_bytes_in_flight",
		Help: "Bytes of update requests being handled, bounded by --max-bytes-in-flight.",
	}, func() float64 { return float64(inFlight()) })
	cacheBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signet_trust_server_read_cache_bytes",
		Help: "Bytes the read cache holds, bounded by Options.ReadCacheBytes.",
	}, func() float64 { b, _, _ := cache.stats(); return float64(b) })
	cacheEntries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "signet_trust_server_read_cache_entries",
		Help: "Metadata answers the read cache holds.",
	}, func() float64 { _, n, _ := cache.stats(); return float64(n) })
	cacheEvictions := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "signet_trust_server_read_cache_evictions_total",
		Help: "Answers the read cache dropped to stay within its cap.",
	}, func() float64 { _, _, n := cache.stats(); return float64(n) })
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.publishes, m.imports, m.reads, bytesInFlight, cacheBytes, cacheEntries, cacheEvictions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(gather, promhttp.HandlerOpts{})
	return m, nil
}

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
