package app

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// outboundMetrics counts the requests made to Graph and Archer, by status.
type outboundMetrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newOutboundMetrics(reg prometheus.Registerer) *outboundMetrics {
	m := &outboundMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m2a_outbound_requests_total",
			Help: "HTTP requests to Microsoft Graph and Archer, by system and status (\"error\" when no response came).",
		}, []string{"system", "status"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "m2a_outbound_request_seconds",
			Help:    "Duration of HTTP requests to Microsoft Graph and Archer.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"system"}),
	}
	reg.MustRegister(m.requests, m.seconds)
	return m
}

// wrap returns a client whose transport counts every request, built on
// parent (or the default transport) and keeping parent's timeout.
func (m *outboundMetrics) wrap(system string, parent *http.Client) *http.Client {
	c := &http.Client{}
	if parent != nil {
		*c = *parent
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = m.transport(system)(base)
	return c
}

// transport returns a wrapper that counts the requests of one system.
func (m *outboundMetrics) transport(system string) func(http.RoundTripper) http.RoundTripper {
	return func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			start := time.Now()
			resp, err := base.RoundTrip(r)
			m.seconds.WithLabelValues(system).Observe(time.Since(start).Seconds())
			status := "error"
			if err == nil {
				status = strconv.Itoa(resp.StatusCode)
			}
			m.requests.WithLabelValues(system, status).Inc()
			return resp, err
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
