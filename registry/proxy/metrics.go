package proxy

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
