package metrics

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNamesAreEscapedAndMetricsWritten(t *testing.T) {
	t.Parallel()
	cases := []struct {
		labels []string
		want   string
	}{
		{nil, "m"},
		{[]string{"a", "b"}, `m{a="b"}`},
		{[]string{"a", `x"y\z` + "\n"}, `m{a="x\"y\\z\n"}`},
		{[]string{"a", "b", "c", "d"}, `m{a="b",c="d"}`},
		{[]string{"a", "b", "odd"}, `m{a="b"}`},
	}
	for _, tc := range cases {
		if got := Name("m", tc.labels...); got != tc.want {
			t.Errorf("Name(%q) = %s, want %s", tc.labels, got, tc.want)
		}
	}
	s := NewSet()
	s.Counter("m2a_things_total", "kind", "a").Add(3)
	s.Counter("m2a_things_total", "kind", "a").Inc()
	s.Gauge("m2a_ready", "component", "archer").Set(1)
	s.GaugeFunc("m2a_depth", func() float64 { return 7 })
	s.Histogram("m2a_seconds", []float64{0.1, 1}).Update(0.5)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{`m2a_things_total{kind="a"} 4`, `m2a_ready{component="archer"} 1`, `m2a_depth 7`,
		`m2a_seconds_bucket{le="1"} 1`, `m2a_seconds_count 1`, "go_goroutines", "process_resident_memory_bytes", "process_open_fds"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	var b bytes.Buffer
	s.Write(&b)
	if b.Len() == 0 {
		t.Error("Write wrote nothing")
	}
}
