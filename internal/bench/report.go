package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/mail2archer/mail2archer/internal/clip"
)

// ReportVersion is the version of the JSON layout written by WriteJSON.
const ReportVersion = 1

// Report is the outcome of one bench run.
type Report struct {
	Version   int              `json:"version"`
	Started   time.Time        `json:"started"`
	Duration  float64          `json:"duration_s"`
	Host      Host             `json:"host"`
	Params    Params           `json:"params"`
	Scenarios []ScenarioResult `json:"scenarios"`
}

// Host describes the machine the run used.
type Host struct {
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
}

func thisHost() Host {
	return Host{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
}

// ScenarioResult holds one scenario's figures, the settings it printed and
// the error that stopped it, if any.
type ScenarioResult struct {
	Name    string   `json:"name"`
	Notes   []string `json:"notes,omitempty"`
	Metrics []Metric `json:"metrics"`
	Error   string   `json:"error,omitempty"`
}

// Metric is one measured figure.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Target is the goal, when the issue names one.
	Target *Target `json:"target,omitempty"`
	// Scope says what was measured when it is not the service alone, for
	// example "service + simulators".
	Scope string `json:"scope,omitempty"`
}

// Target is an upper or lower bound for a metric.
type Target struct {
	// Op is "<=" or ">=".
	Op    string  `json:"op"`
	Value float64 `json:"value"`
}

// Met reports whether v satisfies the target.
func (t Target) Met(v float64) bool {
	if t.Op == ">=" {
		return v >= t.Value
	}
	return v <= t.Value
}

func (t Target) String() string { return t.Op + " " + formatValue(t.Value) }

func atMost(v float64) *Target  { return &Target{Op: "<=", Value: v} }
func atLeast(v float64) *Target { return &Target{Op: ">=", Value: v} }

func (r *ScenarioResult) add(name string, v float64, unit string, target *Target) *Metric {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: v, Unit: unit, Target: target})
	return &r.Metrics[len(r.Metrics)-1]
}

func (r *ScenarioResult) addDuration(name string, d time.Duration, target *Target) *Metric {
	return r.add(name, float64(d)/float64(time.Millisecond), "ms", target)
}

func (r *ScenarioResult) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Missed returns "scenario: metric" for every figure that missed its target
// and every scenario that failed.
func (r *Report) Missed() []string {
	var out []string
	for _, s := range r.Scenarios {
		if s.Error != "" {
			out = append(out, s.Name+": did not finish: "+s.Error)
		}
		for _, m := range s.Metrics {
			if m.Target != nil && !m.Target.Met(m.Value) {
				out = append(out, fmt.Sprintf("%s: %s = %s %s (target %s)", s.Name, m.Name, formatValue(m.Value), m.Unit, m.Target))
			}
		}
	}
	return out
}

// WriteJSON writes the report as indented JSON to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// maxReportBytes bounds a baseline file read by ReadReport.
const maxReportBytes = 8 << 20

// ReadReport reads a report written by WriteJSON, for --compare.
func ReadReport(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	defer func() { _ = f.Close() }()
	return decodeReport(io.LimitReader(f, maxReportBytes+1))
}

func decodeReport(rd io.Reader) (*Report, error) {
	b, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	if len(b) > maxReportBytes {
		return nil, fmt.Errorf("baseline is larger than %d bytes", maxReportBytes)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("baseline is not a bench report: %w", err)
	}
	if r.Version != ReportVersion {
		return nil, fmt.Errorf("baseline has report version %d, this bench writes %d", r.Version, ReportVersion)
	}
	for _, s := range r.Scenarios {
		for _, m := range s.Metrics {
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				return nil, fmt.Errorf("baseline figure %s/%s is not a number", s.Name, m.Name)
			}
		}
	}
	return &r, nil
}

// lookup finds a figure of the report by scenario and metric name.
func (r *Report) lookup(scenario, metric string) (Metric, bool) {
	if r == nil {
		return Metric{}, false
	}
	for _, s := range r.Scenarios {
		if s.Name != scenario {
			continue
		}
		for _, m := range s.Metrics {
			if m.Name == metric {
				return m, true
			}
		}
	}
	return Metric{}, false
}

// WriteTable prints the report as a table: one line per figure with its
// target and whether it was met. With a baseline, two more columns show the
// baseline's figure and the ratio now/baseline.
func (r *Report) WriteTable(w io.Writer, baseline *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "SCENARIO\tFIGURE\tVALUE\tTARGET\tMET"
	if baseline != nil {
		header += "\tBASELINE\tRATIO"
	}
	_, _ = fmt.Fprintln(tw, header)
	for _, s := range r.Scenarios {
		if s.Error != "" {
			_, _ = fmt.Fprintf(tw, "%s\tdid not finish\t%s\t\t\n", s.Name, clip.String(s.Error, 120))
		}
		for _, m := range s.Metrics {
			target, met := "", ""
			if m.Target != nil {
				target = m.Target.String()
				met = "yes"
				if !m.Target.Met(m.Value) {
					met = "NO"
				}
			}
			name := m.Name
			if m.Scope != "" {
				name += " (" + m.Scope + ")"
			}
			line := fmt.Sprintf("%s\t%s\t%s %s\t%s\t%s", s.Name, name, formatValue(m.Value), m.Unit, target, met)
			if baseline != nil {
				if b, ok := baseline.lookup(s.Name, m.Name); ok {
					line += fmt.Sprintf("\t%s %s\t%s", formatValue(b.Value), b.Unit, ratio(m.Value, b.Value))
				} else {
					line += "\t-\t-"
				}
			}
			_, _ = fmt.Fprintln(tw, line)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Scenarios {
		for _, n := range s.Notes {
			if _, err := fmt.Fprintf(w, "  %s: %s\n", s.Name, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func ratio(now, base float64) string {
	switch {
	case base == 0 && now == 0:
		return "1.00x"
	case base == 0:
		return "n/a"
	}
	return strconv.FormatFloat(now/base, 'f', 2, 64) + "x"
}

func formatValue(v float64) string {
	switch a := math.Abs(v); {
	case a == math.Trunc(a) && a < 1e9:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// errUnknownScenario is returned for a scenario name Run does not know.
var errUnknownScenario = errors.New("unknown scenario")
