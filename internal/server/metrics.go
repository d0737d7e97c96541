package server

import (
	"strconv"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/mail2archer/mail2archer/internal/metrics"
)

// ackBuckets are the upper bounds of the acknowledgement histogram: Graph
// waits 3 s for an answer.
var ackBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 3, 10}

// webhookMetrics are the webhook's counters, by endpoint (and reason or
// status):
//
//	m2a_notifications_received_total{endpoint}   items received
//	m2a_notifications_accepted_total{endpoint}   items that passed every check and were queued (duplicates included)
//	m2a_notifications_duplicate_total{endpoint}  accepted items whose job already existed
//	m2a_notifications_dropped_total{endpoint,reason}
//	m2a_validation_handshakes_total{endpoint}
//	m2a_webhook_ack_seconds{endpoint,status}     time from receiving a POST to answering it
type webhookMetrics struct{ set *metrics.Set }

func (m webhookMetrics) received(endpoint string) *vm.Counter {
	return m.set.Counter("m2a_notifications_received_total", "endpoint", endpoint)
}

func (m webhookMetrics) accepted(endpoint string) *vm.Counter {
	return m.set.Counter("m2a_notifications_accepted_total", "endpoint", endpoint)
}

func (m webhookMetrics) duplicates(endpoint string) *vm.Counter {
	return m.set.Counter("m2a_notifications_duplicate_total", "endpoint", endpoint)
}

func (m webhookMetrics) dropped(endpoint, reason string) *vm.Counter {
	return m.set.Counter("m2a_notifications_dropped_total", "endpoint", endpoint, "reason", reason)
}

func (m webhookMetrics) handshakes(endpoint string) *vm.Counter {
	return m.set.Counter("m2a_validation_handshakes_total", "endpoint", endpoint)
}

func (m webhookMetrics) ack(endpoint string, status int) *vm.PrometheusHistogram {
	return m.set.Histogram("m2a_webhook_ack_seconds", ackBuckets, "endpoint", endpoint, "status", strconv.Itoa(status))
}
