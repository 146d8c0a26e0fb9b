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
	revoked  *prometheus.CounterVec
	logins   *prometheus.CounterVec
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
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zbca_revocations_total", Help: "Certificates revoked through this node, by reason (superseded: by a renewal).",
		}, []string{"reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zbca_logins_total", Help: "Enterprise password logins by outcome: ok, failed (wrong password, unknown or malformed user), locked (refused unchecked: account locked), rate_limited (client address over its rate), error (undecided); lockout counts the failures that locked an account (also counted as failed).",
		}, []string{"outcome"}),
	}
	m.issued.WithLabelValues("client", "ok") // show the series from the start
	m.revoked.WithLabelValues(revocation.KeyCompromise.String())
	for _, o := range []string{"ok", "failed", "locked", "lockout", "rate_limited", "error"} {
		m.logins.WithLabelValues(o)
	}
	r.MustRegister(m.issued, m.latency, m.revoked, m.logins, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRevocation is revocation.Service.Observe.
func (m *Metrics) ObserveRevocation(r revocation.Reason) {
	m.revoked.WithLabelValues(r.String()).Inc()
}

// ObserveLogin counts an enterprise login attempt's outcome (see the
// zbca_logins_total help for the values).
func (m *Metrics) ObserveLogin(outcome string) {
	m.logins.WithLabelValues(outcome).Inc()
}

// WatchCRL exports the age of each CRL being served and its entries.
func (m *Metrics) WatchCRL(p *revocation.Publisher, now func() time.Time) {
	for _, name := range p.Names() {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "zbca_crl_age_seconds", Help: "Time since thisUpdate of the CRL served (-1: none yet).", ConstLabels: prometheus.Labels{"crl": name},
		}, func() float64 {
			if c := p.Get(name); c != nil {
				return now().Sub(c.ThisUpdate).Seconds()
			}
			return -1
		}))
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "zbca_crl_entries", Help: "Revoked certificates listed in the CRL served.", ConstLabels: prometheus.Labels{"crl": name},
		}, func() float64 {
			if c := p.Get(name); c != nil {
				return float64(c.Entries)
			}
			return 0
		}))
		// Shards are published with their full CRL: one series for the
		// oldest of them, rather than one per shard.
		if shards := p.Shards(name); len(shards) > 0 {
			m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "zbca_crl_shards_max_age_seconds", Help: "Time since thisUpdate of the oldest shard CRL served (-1: a shard is missing).", ConstLabels: prometheus.Labels{"crl": name},
			}, func() float64 {
				oldest := 0.0
				for _, s := range shards {
					c := p.Get(s)
					if c == nil {
						return -1
					}
					oldest = max(oldest, now().Sub(c.ThisUpdate).Seconds())
				}
				return oldest
			}))
		}
	}
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
		Name: "zbca_ocsp_certificates", Help: "Certificates the OCSP responder knows (those past NotAfter + ocsp.expired_grace are dropped hourly).",
	}, func() float64 { return float64(r.Count()) }))
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "zbca_ocsp_forgotten_total", Help: "Certificates the OCSP responder dropped past NotAfter + ocsp.expired_grace.",
	}, func() float64 { return float64(r.Stats.Forgotten.Load()) }))
}

// WatchRootMaterial exports how long the pre-signed root material lasts
// while the root is offline (absent with the root online).
func (m *Metrics) WatchRootMaterial(left func() (time.Duration, bool)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "zbca_root_material_seconds_left", Help: "Seconds until the pre-signed root CRL and OCSP answers about the issuing CAs run out (exported only with the root offline; 0 without material). Alert below 30 days.",
	}, func() float64 {
		d, ok := left()
		if !ok {
			return 0
		}
		return max(d.Seconds(), 0)
	}))
}

// WatchFeed exports the status feed's position and health.
func (m *Metrics) WatchFeed(f *revocation.Feed) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "zbca_status_feed_applied", Help: "Number of the last status change this node applied (compare nodes: they converge).",
	}, func() float64 { return float64(f.Applied()) }))
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "zbca_status_feed_changes_total", Help: "Status changes applied from the feed.",
	}, func() float64 { return float64(f.Changes.Load()) }))
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "zbca_status_feed_reloads_total", Help: "Full reloads of every status (the node fell behind what the feed keeps, or the database went back).",
	}, func() float64 { return float64(f.Reloads.Load()) }))
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "zbca_status_feed_trusted", Help: "1 while verification answers from memory; 0 while it reads the database (feed not read recently, notifications lost).",
	}, func() float64 {
		if f.Trusted() {
			return 1
		}
		return 0
	}))
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
