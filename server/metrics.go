package server

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/verify"
)

// Metrics are the Prometheus collectors of one server.
type Metrics struct {
	Registry *prometheus.Registry
	issued   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers zbca's collectors and the Go and process ones.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zbca_issuance_total", Help: "Certificate issuance attempts by profile and outcome (ok or the error kind).",
		}, []string{"profile", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "zbca_issuance_duration_seconds", Help: "Time from request to durably stored certificate.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"profile"}),
	}
	m.issued.WithLabelValues("client", "ok") // show the series from the start
	r.MustRegister(m.issued, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchOCSP exports the responder's counters and the age of its oldest
// response.
func (m *Metrics) WatchOCSP(r *revocation.Responder) {
	for name, c := range map[string]*atomic.Int64{
		"good": &r.Stats.Good, "revoked": &r.Stats.Revoked, "not_issued": &r.Stats.NotIssued, "unauthorized": &r.Stats.Unauthorized,
		"malformed": &r.Stats.Malformed, "try_later": &r.Stats.TryLater,
	} {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "zbca_ocsp_responses_total", Help: "OCSP answers by status.", ConstLabels: prometheus.Labels{"status": name},
		}, func() float64 { return float64(c.Load()) }))
	}
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "zbca_ocsp_live_signatures_total", Help: "OCSP responses signed on request (nonce, SHA-256 CertID, not yet pre-signed).",
	}, func() float64 { return float64(r.Stats.Live.Load()) }))
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "zbca_ocsp_oldest_response_age_seconds", Help: "Age of the oldest pre-signed OCSP response.",
	}, func() float64 { d, _ := r.OldestResponse(); return d.Seconds() }))
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "zbca_ocsp_certificates", Help: "Certificates the OCSP responder knows.",
	}, func() float64 { return float64(r.Count()) }))
}

// WatchVerify exports the verification API's answers by result and the
// size of its certificate cache.
func (m *Metrics) WatchVerify(v *verify.Service) {
	for _, r := range verify.Results {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "zbca_verify_total", Help: "Verification API answers by result.", ConstLabels: prometheus.Labels{"result": string(r)},
		}, func() float64 { return float64(v.Count(r)) }))
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "zbca_verify_cached_certificates", Help: "Parsed and verified certificates in the verification cache.",
	}, func() float64 { return float64(v.CacheLen()) }))
}

// ObserveIssuance is ca.Options.Observe.
func (m *Metrics) ObserveIssuance(profile, outcome string, d time.Duration) {
	m.issued.WithLabelValues(profile, outcome).Inc()
	if outcome == "ok" {
		m.latency.WithLabelValues(profile).Observe(d.Seconds())
	}
}
