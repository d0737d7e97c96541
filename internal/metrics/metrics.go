// Package metrics is the service's Prometheus metrics: a set of counters,
// gauges and histograms in the text exposition format, with the Go runtime's
// and the process's own, served on the admin listener's /metrics. It wraps
// github.com/VictoriaMetrics/metrics, which writes the same format as the
// Prometheus client in a fraction of its size.
package metrics

import (
	"bytes"
	"net/http"
	"strings"

	vm "github.com/VictoriaMetrics/metrics"
)

// Set holds the metrics of one service instance. It is safe for concurrent
// use; asking twice for the same name and labels returns the same metric.
type Set struct{ s *vm.Set }

// NewSet returns an empty Set.
func NewSet() *Set { return &Set{s: vm.NewSet()} }

// Counter returns the counter name with the given label pairs
// ("endpoint", "notifications", ...).
func (s *Set) Counter(name string, labels ...string) *vm.Counter {
	return s.s.GetOrCreateCounter(Name(name, labels...))
}

// Gauge returns the settable gauge name with the given label pairs.
func (s *Set) Gauge(name string, labels ...string) *vm.Gauge {
	return s.s.GetOrCreateGauge(Name(name, labels...), nil)
}

// GaugeFunc registers a gauge whose value f computes at scrape time; f must
// be safe for concurrent calls. A second call with the same name and labels
// keeps the first f.
func (s *Set) GaugeFunc(name string, f func() float64, labels ...string) {
	s.s.GetOrCreateGauge(Name(name, labels...), f)
}

// Histogram returns the Prometheus histogram name (buckets with "le"
// labels, the given upper bounds) with the given label pairs.
func (s *Set) Histogram(name string, buckets []float64, labels ...string) *vm.PrometheusHistogram {
	return s.s.GetOrCreatePrometheusHistogramExt(Name(name, labels...), buckets)
}

// Write writes every metric of the set, then the Go runtime's and the
// process's (go_*, process_*, open file descriptors included).
func (s *Set) Write(w *bytes.Buffer) {
	s.s.WritePrometheus(w)
	vm.WriteProcessMetrics(w)
	vm.WriteFDMetrics(w)
}

// Handler serves the metrics in the text exposition format.
func (s *Set) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		s.Write(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(b.Bytes())
	})
}

// Name writes a metric name with its label pairs, values escaped as the
// exposition format wants: name{k="v",...}. An odd last label is dropped.
func Name(name string, labels ...string) string {
	if len(labels) < 2 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		for _, r := range labels[i+1] {
			switch r {
			case '\\':
				b.WriteString(`\\`)
			case '"':
				b.WriteString(`\"`)
			case '\n':
				b.WriteString(`\n`)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
