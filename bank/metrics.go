package bank

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/otpcash/otpcash/bank/api"
)

// metrics are the bank's Prometheus metrics, served by MetricsHandler. Each
// Bank has its own registry. Labels take bounded values only: route
// patterns, status codes and refusal codes, never an account or a token.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	issued        prometheus.Counter
	credited      prometheus.Counter
	refused       *prometheus.CounterVec
	doubleDeposit prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otpcash_bank_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "otpcash_bank_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to 16 s
		}, []string{"route"}),
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpcash_bank_coins_issued_total", Help: "Coins issued by withdrawals (retries not counted).",
		}),
		credited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpcash_bank_coins_deposited_total", Help: "Coins deposited and credited.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otpcash_bank_coins_refused_total", Help: "Deposited coins refused, by reason code.",
		}, []string{"reason"}),
		doubleDeposit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpcash_bank_double_deposit_attempts_total", Help: "Deposits refused because the coin was already deposited with another chain or to another account.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.issued, m.credited, m.refused, m.doubleDeposit,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MetricsHandler serves the bank's metrics in the Prometheus text format.
// Serve it on its own listener, reachable only from the monitoring network:
// the API handler does not, so a client cannot read the bank's traffic
// figures.
func (b *Bank) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{})
}

// request counts one HTTP request; route is the mux pattern that served it.
func (m *metrics) request(route string, status int, d time.Duration) {
	if route == "" {
		route = "other"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// deposited counts the outcome of each coin of a deposit.
func (m *metrics) deposited(results []api.DepositResult) {
	for _, r := range results {
		switch r.Status {
		case api.StatusCredited:
			m.credited.Inc()
		case api.StatusRefused:
			m.refused.WithLabelValues(r.Code).Inc()
			if r.Code == api.CodeDoubleDeposit {
				m.doubleDeposit.Inc()
			}
		}
	}
}
