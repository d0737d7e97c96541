package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every scenario at its smoke size against the real
// service, in this process.
func TestSmoke(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the service four times")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("memory figures need Linux's /proc:", err)
	}
	rep, err := Run(ctx, Options{Params: SmokeParams(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	if len(rep.Scenarios) != len(Scenarios()) {
		t.Fatalf("%d scenario results, want %d", len(rep.Scenarios), len(Scenarios()))
	}
	for _, s := range rep.Scenarios {
		if s.Error != "" {
			t.Errorf("%s: %s", s.Name, s.Error)
		}
	}
	// Figures that hold whatever the machine's speed.
	p := SmokeParams()
	want := map[[2]string]float64{
		{ScenarioIntake, "notifications"}:                 float64(p.IntakeRate) * p.IntakeDuration.Seconds(),
		{ScenarioIntake, "failed acks"}:                   0,
		{ScenarioBurst, "emails"}:                         float64(p.BurstEmails),
		{ScenarioBurst, "graph fetch requests per email"}: 2,
		// The client's bucket stays inside the simulator's budget.
		{ScenarioBurst, "graph 429s"}: 0,
		{ScenarioOverhead, "emails"}:  float64(p.OverheadEmails),
	}
	for k, v := range want {
		m, ok := rep.lookup(k[0], k[1])
		if !ok {
			t.Errorf("%s/%s missing", k[0], k[1])
			continue
		}
		if m.Value != v {
			t.Errorf("%s/%s = %v, want %v", k[0], k[1], m.Value, v)
		}
	}
	for _, k := range [][2]string{{ScenarioIntake, "ack p99"}, {ScenarioBurst, "drain time"}, {ScenarioBurst, "end-to-end p99"},
		{ScenarioOverhead, "own overhead p99"}, {ScenarioFootprint, "idle RSS"}, {ScenarioFootprint, "peak RSS, one large email"}} {
		if m, ok := rep.lookup(k[0], k[1]); !ok || m.Value <= 0 {
			t.Errorf("%s/%s = %v (found %v), want a positive figure", k[0], k[1], m.Value, ok)
		}
	}
	if m, _ := rep.lookup(ScenarioFootprint, "idle RSS"); m.Scope == "" {
		t.Error("the in-process footprint is not labelled as including the simulators")
	}

	path := filepath.Join(t.TempDir(), "run.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Scenarios) != len(rep.Scenarios) || back.Params != rep.Params {
		t.Error("the JSON report does not read back as written")
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := Run(ctx, Options{Scenarios: []string{"nope"}}); !errors.Is(err, errUnknownScenario) {
		t.Errorf("unknown scenario: %v", err)
	}
	bad := SmokeParams()
	bad.BurstEmails = 0
	if _, err := Run(ctx, Options{Params: bad}); err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("zero burst emails: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(cctx, Options{Params: SmokeParams(), Dir: t.TempDir()}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 99, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"median of unsorted", ms(5, 1, 4, 2, 3), 50, 3 * time.Millisecond},
		{"p99 of 100", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p99 of 10 is the max", ms(seq(10)...), 99, 10 * time.Millisecond},
		{"max", ms(3, 9, 1), 100, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		rss, hwm int64
		wantErr  bool
	}{
		{"linux", "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\nThreads:\t4\n", 1 << 20, 2 << 20, false},
		{"missing", "Name:\tx\n", 0, 0, true},
		{"bad unit", "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", 0, 0, true},
		{"negative", "VmHWM:\t-1 kB\nVmRSS:\t1 kB\n", 0, 0, true},
		{"garbage", "VmHWM:\tlots kB\nVmRSS:\t1 kB\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rss, hwm, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if rss != tt.rss || hwm != tt.hwm {
				t.Errorf("rss %d hwm %d", rss, hwm)
			}
		})
	}
}

func TestProcMemoryOfSelf(t *testing.T) {
	t.Parallel()
	rss, hwm, err := procMemory("self")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	if rss <= 0 || hwm < rss {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
	p := startPeakRSS("self")
	if peak := p.Stop(); peak <= 0 {
		t.Errorf("peak %d", peak)
	}
}

func TestSumCounter(t *testing.T) {
	t.Parallel()
	text := `# HELP m2a_outbound_requests_total HTTP requests.
# TYPE m2a_outbound_requests_total counter
m2a_outbound_requests_total{status="200",system="graph"} 120
m2a_outbound_requests_total{status="429",system="graph"} 3
m2a_outbound_requests_total{status="429",system="archer"} 7
m2a_outbound_requests_total_extra{status="429",system="graph"} 100
m2a_outbound_requests_totalx 5
`
	got, err := sumCounter(strings.NewReader(text), "m2a_outbound_requests_total", map[string]string{"system": "graph", "status": "429"})
	if err != nil || got != 3 {
		t.Errorf("got %v, %v; want 3", got, err)
	}
	got, err = sumCounter(strings.NewReader(text), "m2a_outbound_requests_total", map[string]string{"status": "429"})
	if err != nil || got != 10 {
		t.Errorf("got %v, %v; want 10", got, err)
	}
	for _, bad := range []string{"m2a_outbound_requests_total{status=\"429\" 3\n", "m2a_outbound_requests_total{status=\"429\"} many\n", "m2a_outbound_requests_total{status=\"429\"}\n"} {
		if _, err := sumCounter(strings.NewReader(bad), "m2a_outbound_requests_total", map[string]string{"status": "429"}); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestWithHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string
		absent   []string
	}{
		{"crlf with folded subject", "From: a@b\r\nSubject: old\r\n  still old\r\nTo: c@d\r\n\r\nbody", []string{"Subject: new\r\n", "To: c@d\r\n", "\r\n\r\nbody"}, []string{"old"}},
		{"lf, no message-id", "Subject: old\nFrom: a@b\n\nbody\n", []string{"Message-ID: <id@x>\n", "From: a@b\n", "\n\nbody\n"}, []string{"old"}},
		{"case-insensitive names", "subject: old\r\nmessage-id: <old@x>\r\n\r\n", []string{"Subject: new", "Message-ID: <id@x>"}, []string{"old"}},
		{"no body", "Subject: old", []string{"Subject: new"}, []string{"old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := string(withHeaders([]byte(tt.in), map[string]string{"Subject": "new", "Message-ID": "<id@x>"}))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("%q still has %q", got, a)
				}
			}
		})
	}
}

func TestCorpusEmailsAreDistinct(t *testing.T) {
	t.Parallel()
	c := newCorpus("t")
	seen := map[string]bool{}
	for i := range 12 {
		m := string(c.email(i))
		if seen[m] {
			t.Fatalf("email %d repeats an earlier one", i)
		}
		seen[m] = true
		if !strings.Contains(m, "#"+itoa(i)+"]") {
			t.Errorf("email %d lacks its number", i)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestLargeEmail(t *testing.T) {
	t.Parallel()
	m := largeEmail(1000, 3)
	if !bytes.Contains(m, []byte("filename=\"statement.bin\"")) || !bytes.HasSuffix(m, []byte("--=_bench_large--\r\n")) {
		t.Fatal("not a multipart email with the attachment")
	}
	for _, line := range bytes.Split(m, []byte("\r\n")) {
		if len(line) > 998 {
			t.Fatal("line longer than RFC 5322 allows")
		}
	}
	if !bytes.Equal(m, largeEmail(1000, 3)) {
		t.Error("same seed, different email")
	}
}

func TestPlanBurst(t *testing.T) {
	t.Parallel()
	p := DefaultParams()
	b := planBurst(p)
	if b.perEmail != 2 {
		t.Errorf("per email %d", b.perEmail)
	}
	// 4 in flight at 120 ms allow 33.3 requests/s; the client gets 85 %.
	if math.Abs(b.clientRPS-28.33) > 0.01 || b.clientBurst != 38 {
		t.Errorf("client %.2f/s burst %d", b.clientRPS, b.clientBurst)
	}
	if got := b.clientRPS / b.budgetRPS; math.Abs(got-budgetShare) > 1e-9 {
		t.Errorf("client uses %.3f of the budget", got)
	}
	// The fixed window must hold the client's whole bucket plus a window
	// of its rate, or the simulator answers 429 at window boundaries.
	if float64(b.clientBurst)+b.clientRPS*b.window.Seconds() > float64(b.budget) {
		t.Errorf("bucket %d + %.1f/s × %s exceeds the budget %d", b.clientBurst, b.clientRPS, b.window, b.budget)
	}
	s := SmokeParams()
	sb := planBurst(s)
	if float64(sb.clientBurst)+sb.clientRPS*sb.window.Seconds() > float64(sb.budget) {
		t.Errorf("smoke: bucket %d + %.1f/s × %s exceeds the budget %d", sb.clientBurst, sb.clientRPS, sb.window, sb.budget)
	}
	p.GraphLatency = 0
	p.BurstWriteBack = true
	if b := planBurst(p); b.perEmail != 3 || math.Abs(b.clientRPS-50) > 0.01 {
		t.Errorf("no latency, write-back: %d per email at %.2f/s", b.perEmail, b.clientRPS)
	}
}

func TestReportTableAndCompare(t *testing.T) {
	t.Parallel()
	now := &Report{Version: ReportVersion, Scenarios: []ScenarioResult{{
		Name:  "intake",
		Notes: []string{"a note"},
		Metrics: []Metric{
			{Name: "ack p99", Value: 12, Unit: "ms", Target: atMost(10)},
			{Name: "rate", Value: 200, Unit: "/s"},
			{Name: "new figure", Value: 1, Unit: ""},
		},
	}, {Name: "burst", Error: "it broke"}}}
	base := &Report{Version: ReportVersion, Scenarios: []ScenarioResult{{
		Name:    "intake",
		Metrics: []Metric{{Name: "ack p99", Value: 6, Unit: "ms"}, {Name: "rate", Value: 0, Unit: "/s"}},
	}}}
	var out bytes.Buffer
	if err := now.WriteTable(&out, base); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"BASELINE", "2.00x", "NO", "n/a", "did not finish", "it broke", "intake: a note"} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
	missed := now.Missed()
	if len(missed) != 2 || !strings.Contains(missed[0], "it broke") && !strings.Contains(missed[1], "it broke") {
		t.Errorf("missed %q", missed)
	}
	out.Reset()
	if err := now.WriteTable(&out, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "BASELINE") {
		t.Error("ratio columns without a baseline")
	}
}

func TestReadReportRejectsMalformed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, body string
	}{
		{"not json", "figures: many"},
		{"wrong version", `{"version": 99, "scenarios": []}`},
		{"wrong shape", `{"version": 1, "scenarios": {"intake": 3}}`},
		{"huge", `{"version": 1, "pad": "` + strings.Repeat("x", maxReportBytes) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadReport(path); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := ReadReport(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("accepted a missing file")
	}
}
