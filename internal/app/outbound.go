package app

import (
	"net/http"
	"strconv"
	"time"

	"github.com/mail2archer/mail2archer/internal/metrics"
)

// outboundBuckets are the upper bounds of the outbound request histogram.
var outboundBuckets = []float64{0.005, 0.0125, 0.03125, 0.078125, 0.1953125, 0.48828125, 1.220703125, 3.0517578125, 7.62939453125, 19.073486328125}

// outboundMetrics counts the requests made to Graph and Archer:
//
//	m2a_outbound_requests_total{system,status}   by status ("error" when no response came)
//	m2a_outbound_request_seconds{system}
type outboundMetrics struct{ set *metrics.Set }

// wrap returns a client whose transport counts every request, built on
// parent (or the default transport) and keeping parent's timeout.
func (m outboundMetrics) wrap(system string, parent *http.Client) *http.Client {
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
func (m outboundMetrics) transport(system string) func(http.RoundTripper) http.RoundTripper {
	return func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			start := time.Now()
			resp, err := base.RoundTrip(r)
			m.set.Histogram("m2a_outbound_request_seconds", outboundBuckets, "system", system).Update(time.Since(start).Seconds())
			status := "error"
			if err == nil {
				status = strconv.Itoa(resp.StatusCode)
			}
			m.set.Counter("m2a_outbound_requests_total", "system", system, "status", status).Inc()
			return resp, err
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
