package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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

// ObserveIssuance is ca.Options.Observe.
func (m *Metrics) ObserveIssuance(profile, outcome string, d time.Duration) {
	m.issued.WithLabelValues(profile, outcome).Inc()
	if outcome == "ok" {
		m.latency.WithLabelValues(profile).Observe(d.Seconds())
	}
}
