package workload

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// Metrics are the Workload API's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	svids       *prometheus.CounterVec
	attestFails prometheus.Counter
	rpc         *prometheus.HistogramVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		svids: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_svids_issued_total", Help: "SVIDs signed for workloads, by type (x509, jwt).",
		}, []string{"type"}),
		attestFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writ_attestation_failures_total", Help: "Workload attestations that failed.",
		}),
		rpc: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "writ_workload_api_rpc_duration_seconds",
			Help:    "Latency of unary Workload API calls, by method and gRPC code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}, []string{"method", "code"}),
	}
	reg.MustRegister(m.svids, m.attestFails, m.rpc)
	return m
}

func (m *Metrics) issued(typ string) {
	if m != nil {
		m.svids.WithLabelValues(typ).Inc()
	}
}

func (m *Metrics) attestFailed() {
	if m != nil {
		m.attestFails.Inc()
	}
}

func (m *Metrics) observe(method string, start time.Time, err error) {
	if m != nil {
		m.rpc.WithLabelValues(method, status.Code(err).String()).Observe(time.Since(start).Seconds())
	}
}
