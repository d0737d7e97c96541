package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// The files shipped in deploy/ for Grafana and Prometheus.
var (
	dashboardFile  = filepath.Join("..", "..", "deploy", "grafana", "mail2archer.json")
	alertsFile     = filepath.Join("..", "..", "deploy", "prometheus", "alerts.yml")
	promConfigFile = filepath.Join("..", "..", "deploy", "prometheus", "prometheus.example.yml")
)

// tokenFileInExample is how prometheus.example.yml names the admin token's
// file.
const tokenFileInExample = "credentials_file: /etc/prometheus/mail2archer-token"

// ---- Extracting metric names from PromQL ----

// promqlMetricNames returns the metric names an expression selects, each
// once, in order of appearance. It knows enough PromQL to tell a metric
// name from a function, an aggregation, a keyword, a label (in matchers and
// in by/without/on/ignoring/group_left/group_right lists), a string, a
// number, a duration, a range or subquery, a comment and a Grafana
// variable ($x, ${x}); a name given as __name__="..." or as a quoted name
// in braces counts too. Unbalanced parentheses, braces and brackets and
// unterminated strings are errors.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	s := expr
	depth := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			_, j, err := readString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, err := scanMatchers(s, i, add)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '}':
			return nil, fmt.Errorf("unexpected } at offset %d", i)
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated [ at offset %d", i)
			}
			i += j + 1
		case c == ']':
			return nil, fmt.Errorf("unexpected ] at offset %d", i)
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unexpected ) at offset %d", i)
			}
			i++
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				j := strings.IndexByte(s[i:], '}')
				if j < 0 {
					return nil, fmt.Errorf("unterminated ${ at offset %d", i-1)
				}
				i += j + 1
				break
			}
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			// Numbers, durations (5m, 1h30m) and hex: no names in them.
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			word := s[i:j]
			i = j
			next := skipSpace(s, i)
			lower := strings.ToLower(word)
			switch {
			case labelListKeywords[lower]:
				if next < len(s) && s[next] == '(' {
					k := strings.IndexByte(s[next:], ')')
					if k < 0 {
						return nil, fmt.Errorf("unterminated label list after %s at offset %d", word, next)
					}
					i = next + k + 1
				}
			case next < len(s) && s[next] == '(':
				// A function or an aggregation with its argument.
			case aggregations[lower], keywords[lower]:
			default:
				add(word)
			}
		default:
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d unclosed ( in %q", depth, expr)
	}
	return names, nil
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

// aggregations may be followed by "by (...)" before their argument.
var aggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true,
	"stddev": true, "stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true}

// keywords are the other words of PromQL that are not metric names.
var keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"atan2": true, "inf": true, "nan": true, "start": true, "end": true}

// scanMatchers reads a {…} block starting at s[i] and returns the offset
// after it. It reports a name given as __name__="x" or as a lone quoted
// string.
func scanMatchers(s string, i int, add func(string)) (int, error) {
	start := i
	i++
	for {
		i = skipSpace(s, i)
		if i >= len(s) {
			return 0, fmt.Errorf("unterminated { at offset %d", start)
		}
		if s[i] == '}' {
			return i + 1, nil
		}
		var label string
		quoted := false
		switch {
		case s[i] == '"' || s[i] == '\'' || s[i] == '`':
			v, j, err := readString(s, i)
			if err != nil {
				return 0, err
			}
			label, quoted, i = v, true, j
		case isIdentStart(s[i]):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			label, i = s[i:j], j
		default:
			return 0, fmt.Errorf("unexpected %q in matchers at offset %d", s[i], i)
		}
		i = skipSpace(s, i)
		if i < len(s) && quoted && (s[i] == ',' || s[i] == '}') {
			add(label)
			if s[i] == ',' {
				i++
			}
			continue
		}
		var op string
		for _, o := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(s[i:], o) {
				op = o
				break
			}
		}
		if op == "" {
			return 0, fmt.Errorf("no matcher operator after %q at offset %d", label, i)
		}
		i = skipSpace(s, i+len(op))
		if i >= len(s) || (s[i] != '"' && s[i] != '\'' && s[i] != '`') {
			return 0, fmt.Errorf("matcher %s%s needs a string at offset %d", label, op, i)
		}
		v, j, err := readString(s, i)
		if err != nil {
			return 0, err
		}
		if label == "__name__" && op == "=" {
			add(v)
		}
		i = skipSpace(s, j)
		if i < len(s) && s[i] == ',' {
			i++
		}
	}
}

// readString reads the quoted string starting at s[i] and returns its
// content (escapes kept as written) and the offset after it.
func readString(s string, i int) (string, int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return s[i+1 : j], j + 1, nil
		}
	}
	return "", 0, fmt.Errorf("unterminated string at offset %d", i)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) }

func TestPromQLMetricNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, expr string
		want       []string
		wantErr    bool
	}{
		{name: "bare name", expr: "up", want: []string{"up"}},
		{name: "matchers with Grafana variables", expr: `m2a_queue_jobs{state=~"a|b", instance=~"$instance"}`, want: []string{"m2a_queue_jobs"}},
		{name: "range with a Grafana interval", expr: `rate(m2a_x_total[$__rate_interval])`, want: []string{"m2a_x_total"}},
		{name: "braced Grafana variable", expr: `increase(m2a_x_total[${__range}])`, want: []string{"m2a_x_total"}},
		{name: "histogram quantile with by list", expr: `histogram_quantile(0.99, sum by (system, le) (rate(m2a_out_seconds_bucket{i=~"$i"}[5m])))`,
			want: []string{"m2a_out_seconds_bucket"}},
		{name: "by after the aggregation", expr: `sum(rate(a_total[5m])) by (le)`, want: []string{"a_total"}},
		{name: "vector matching", expr: `(x == 0) * on (instance, job) group_right (component) (sum by (instance, outcome) (increase(y[15m])) > 0) or on (instance) x`,
			want: []string{"x", "y"}},
		{name: "group_left without labels", expr: `a * on (job) group_left b`, want: []string{"a", "b"}},
		{name: "keywords in capitals", expr: `SUM BY (job) (a) AND ON (job) b UNLESS c`, want: []string{"a", "b", "c"}},
		{name: "name in __name__", expr: `{__name__="m2a_queue_jobs", state="x"}`, want: []string{"m2a_queue_jobs"}},
		{name: "__name__ regex names nothing fixed", expr: `{__name__=~"m2a_.+"}`, want: nil},
		{name: "quoted name in braces", expr: `{"m2a.dotted", job="x"}`, want: []string{"m2a.dotted"}},
		{name: "strings that look like selectors", expr: `label_replace(a, "dst", "$1 up{x}", "src", "(.*)")`, want: []string{"a"}},
		{name: "escaped quote in a string", expr: `a{x="q\"b"} + c`, want: []string{"a", "c"}},
		{name: "subquery, offset and exponent", expr: `deriv(sum(a)[15m:1m] offset 5m) > 1e3 and b @ 1609746000`, want: []string{"a", "b"}},
		{name: "each name once", expr: `a / a`, want: []string{"a"}},
		{name: "comment", expr: "a # b{", want: []string{"a"}},
		{name: "backquoted label", expr: "count_values(`le`, a)", want: []string{"a"}},
		{name: "no metric", expr: `vector(1) + time()`, want: nil},
		{name: "space before a call", expr: `rate (a[5m])`, want: []string{"a"}},
		{name: "absent", expr: `up{job="m"} == 0 or absent(up{job="m"})`, want: []string{"up"}},
		{name: "unclosed paren", expr: `sum(a`, wantErr: true},
		{name: "extra paren", expr: `sum(a))`, wantErr: true},
		{name: "unclosed brace", expr: `a{job="x"`, wantErr: true},
		{name: "unterminated string", expr: `a{job="x}`, wantErr: true},
		{name: "unclosed bracket", expr: `rate(a[5m)`, wantErr: true},
		{name: "matcher without value", expr: `a{job=}`, wantErr: true},
		{name: "stray brace", expr: `a}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := promqlMetricNames(tc.expr)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("%q: no error, names %q", tc.expr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("%q: %v", tc.expr, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%q: got %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}

// ---- What the service exports ----

// exposition is what one scrape of /metrics holds: each family's type and
// the name of every sample line (histograms appear as _bucket, _sum and
// _count).
type exposition struct {
	types   map[string]string
	samples map[string]bool
}

// parseExposition reads the Prometheus text format.
func parseExposition(r io.Reader) (exposition, error) {
	e := exposition{types: map[string]string{}, samples: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			if len(f) != 2 {
				return e, fmt.Errorf("bad TYPE line %q", line)
			}
			e.types[f[0]] = f[1]
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			return e, fmt.Errorf("bad sample line %q", line)
		}
		e.samples[line[:end]] = true
	}
	return e, sc.Err()
}

// prometheusOwn are series Prometheus makes itself, never on /metrics.
var prometheusOwn = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true, "ALERTS": true, "ALERTS_FOR_STATE": true}

// problem says why name cannot be queried from e, or "" when it can.
func (e exposition) problem(name string) string {
	if prometheusOwn[name] || e.samples[name] {
		return ""
	}
	if t := e.types[name]; t == "histogram" {
		return name + " is a histogram: query its _bucket, _sum or _count series"
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if t, known := e.types[base]; known {
				return fmt.Sprintf("%s: %s is a %s, which has no %s series", name, base, t, suffix)
			}
		}
	}
	return name + " is not exported (a metric with labels appears only once it has a series)"
}

// query is one PromQL expression and where it was found.
type query struct{ where, expr string }

// unexported lists, for each query, the metric names it uses that e does
// not export, and the queries that do not parse.
func unexported(queries []query, e exposition) []string {
	var out []string
	for _, q := range queries {
		names, err := promqlMetricNames(q.expr)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", q.where, err))
			continue
		}
		for _, n := range names {
			if p := e.problem(n); p != "" {
				out = append(out, fmt.Sprintf("%s: %s", q.where, p))
			}
		}
	}
	return out
}

func TestUnexportedFindsMetricsTheServiceDoesNotHave(t *testing.T) {
	t.Parallel()
	const scrape = `# HELP m2a_queue_jobs Jobs.
# TYPE m2a_queue_jobs gauge
m2a_queue_jobs{state="available"} 0
# TYPE m2a_processing_seconds histogram
m2a_processing_seconds_bucket{le="+Inf"} 1
m2a_processing_seconds_sum 0.2
m2a_processing_seconds_count 1
# TYPE m2a_jobs_outcomes_total counter
m2a_jobs_outcomes_total{outcome="created"} 1
# TYPE m2a_notifications_dropped_total counter
go_goroutines 12
`
	e, err := parseExposition(strings.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		expr string
		want string // substring of the only problem; "" for none
	}{
		{expr: `sum(m2a_queue_jobs{state="available"})`},
		{expr: `histogram_quantile(0.9, sum by (le) (rate(m2a_processing_seconds_bucket[5m])))`},
		{expr: `rate(m2a_processing_seconds_sum[5m]) / rate(m2a_processing_seconds_count[5m])`},
		{expr: `up == 0 and go_goroutines > 1`},
		{expr: `rate(m2a_processing_seconds[5m])`, want: "is a histogram"},
		{expr: `m2a_queue_jobs_count`, want: "m2a_queue_jobs is a gauge, which has no _count"},
		{expr: `rate(m2a_jobs_outcome_total[5m])`, want: "m2a_jobs_outcome_total is not exported"},
		{expr: `rate(m2a_notifications_dropped_total[5m])`, want: "m2a_notifications_dropped_total is not exported"},
		{expr: `sum(rate(m2a_queue_jobs[5m]`, want: "unclosed"},
	} {
		got := unexported([]query{{where: "q", expr: tc.expr}}, e)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: unexpected problems %q", tc.expr, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: got %q, want one problem with %q", tc.expr, got, tc.want)
		}
	}
}

// ---- The dashboard ----

type dashboard struct {
	SchemaVersion int              `json:"schemaVersion"`
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID      int              `json:"id"`
	Type    string           `json:"type"`
	Title   string           `json:"title"`
	GridPos gridPos          `json:"gridPos"`
	Panels  []dashboardPanel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

type gridPos struct{ H, W, X, Y int }

func readDashboard(t *testing.T) (dashboard, any) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var raw any
	_ = json.Unmarshal(b, &raw)
	return d, raw
}

// allPanels flattens rows' panels.
func allPanels(ps []dashboardPanel) []dashboardPanel {
	var out []dashboardPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardQueries are every panel query and the metric named by every
// query variable.
func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	var qs []query
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{where: fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var s string
			if err := json.Unmarshal(v.Query, &s); err != nil {
				t.Fatalf("variable %s: query is neither an object nor a string", v.Name)
			}
			q.Query = s
		}
		if expr, ok := variableSelector(q.Query); ok {
			qs = append(qs, query{where: "variable " + v.Name, expr: expr})
		}
	}
	return qs
}

// variableSelector returns the PromQL inside a Grafana Prometheus variable
// query: the series of label_values(series, label), the expression of
// query_result(expr) or the query itself; false for queries that name no
// metric (label_values(label), label_names(), metrics(re)).
func variableSelector(q string) (string, bool) {
	q = strings.TrimSpace(q)
	inner := func(prefix string) (string, bool) {
		rest, ok := strings.CutPrefix(q, prefix+"(")
		if !ok || !strings.HasSuffix(rest, ")") {
			return "", false
		}
		return strings.TrimSuffix(rest, ")"), true
	}
	if args, ok := inner("label_values"); ok {
		i := strings.LastIndexByte(args, ',')
		if i < 0 {
			return "", false
		}
		return strings.TrimSpace(args[:i]), true
	}
	if expr, ok := inner("query_result"); ok {
		return expr, true
	}
	if strings.HasPrefix(q, "label_names(") || strings.HasPrefix(q, "metrics(") {
		return "", false
	}
	return q, q != ""
}

func TestDashboardShape(t *testing.T) {
	t.Parallel()
	d, raw := readDashboard(t)
	if d.SchemaVersion < 41 {
		t.Errorf("schemaVersion %d: export it from Grafana 12 or later", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDatasourceVar = true
		}
	}
	if !hasDatasourceVar {
		t.Error(`no template variable "datasource" of type datasource for Prometheus`)
	}
	// Every data source reference is the variable, never a fixed uid.
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "datasource" {
					checkDatasourceRef(t, path+".datasource", x)
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("$", raw)

	ids := map[int]string{}
	var placed []dashboardPanel
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: grid position %+v outside the 24 columns", p.Title, g)
		}
		for _, q := range placed {
			o := q.GridPos
			if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", q.Title, p.Title)
			}
		}
		placed = append(placed, p)
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: query %q needs an expression and its own refId", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
		}
	}
	if n := len(dashboardQueries(t, d)); n < 20 {
		t.Errorf("only %d queries in the dashboard", n)
	}
}

func checkDatasourceRef(t *testing.T, path string, v any) {
	t.Helper()
	switch ref := v.(type) {
	case string:
		if ref != "${datasource}" && ref != "$datasource" {
			t.Errorf("%s is %q, not the datasource variable", path, ref)
		}
	case map[string]any:
		if ref["type"] == "grafana" || ref["type"] == "datasource" {
			return // Grafana's own annotations and mixed queries.
		}
		if uid, _ := ref["uid"].(string); uid != "${datasource}" && uid != "$datasource" {
			t.Errorf("%s has uid %q, not the datasource variable", path, uid)
		}
	}
}

// ---- The alert rules ----

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return rf
}

// runbookDoc is the runbook every alert's "runbook" annotation points at,
// relative to the repository's root, as docs/alerts.md#<lower-cased alert
// name>: GitHub's anchor for the heading "## <alert name>".
const runbookDoc = "docs/alerts.md"

// runbookHeadings returns the titles of the runbook's second-level
// headings ("## Title"), outside code blocks.
func runbookHeadings(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(runbookDoc)))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	inCode := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if title, ok := strings.CutPrefix(line, "## "); ok && !inCode {
			headings[strings.TrimSpace(title)] = true
		}
	}
	return headings
}

func alertQueries(rf ruleFile) []query {
	var qs []query
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: "alert " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	return qs
}

func TestAlertRulesTellTheOperatorWhatToDo(t *testing.T) {
	t.Parallel()
	rf := readRules(t)
	headings := runbookHeadings(t)
	var names []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if r.Alert == "" {
				t.Errorf("group %s: a rule that is not an alert", g.Name)
				continue
			}
			if _, err := time.ParseDuration(r.For); err != nil || r.For == "0s" {
				t.Errorf("%s: for %q is not a duration", r.Alert, r.For)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 100 {
				t.Errorf("%s: needs a summary and a description that says what to do", r.Alert)
			}
			rb := r.Annotations["runbook"]
			anchor, ok := strings.CutPrefix(rb, runbookDoc+"#")
			switch {
			case !ok:
				t.Errorf("%s: runbook %q does not point at %s", r.Alert, rb, runbookDoc)
			case anchor != strings.ToLower(r.Alert):
				t.Errorf("%s: runbook %q, want the anchor #%s", r.Alert, rb, strings.ToLower(r.Alert))
			case !headings[r.Alert]:
				t.Errorf("%s: runbook %q leads nowhere: %s has no line \"## %s\"", r.Alert, rb, runbookDoc, r.Alert)
			}
		}
	}
	want := []string{"M2AArcherFailing", "M2AGraphFailing", "M2AMappingPreflightFailing", "M2ANotificationsNotArriving",
		"M2AQueueBacklogGrowing", "M2AReportsEndingInFailure", "M2AServiceDown", "M2ASubscriptionExpiringSoon", "M2AWebhookAckSlow"}
	sort.Strings(names)
	if !reflect.DeepEqual(names, want) {
		t.Errorf("alerts %q, want %q", names, want)
	}
}

// ---- promtool ----

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus); the rules and the example configuration are not checked")
	}
	return p
}

func runPromtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtoolAcceptsTheRulesAndTheExampleConfig(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	runPromtool(t, bin, "check", "rules", alertsFile)
	// As shipped, the token file does not exist here: check the syntax,
	// then check everything on a copy that names an existing token file.
	runPromtool(t, bin, "check", "config", "--syntax-only", promConfigFile)

	dir := t.TempDir()
	cfg, err := os.ReadFile(promConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(cfg), tokenFileInExample); n != 1 {
		t.Fatalf("the example has %q %d times, want once", tokenFileInExample, n)
	}
	token := filepath.Join(dir, "mail2archer-token")
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		token:                                []byte("0123456789abcdef0123456789abcdef\n"),
		filepath.Join(dir, "alerts.yml"):     rules,
		filepath.Join(dir, "prometheus.yml"): []byte(strings.Replace(string(cfg), tokenFileInExample, "credentials_file: "+token, 1)),
	} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runPromtool(t, bin, "check", "config", filepath.Join(dir, "prometheus.yml"))
}

// alertTests are promtool unit tests of the rules' expressions: each alert
// fires on the series that mean trouble, with the labels that say where,
// and stays quiet on healthy ones. They run against a copy of the rules
// without annotations (promtool would otherwise compare every rendered
// text).
const alertTests = `rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - name: service down, and no target at all
    interval: 1m
    input_series:
      - series: 'up{job="mail2archer", instance="a"}'
        values: '1 1 0x15'
    alert_rule_test:
      - {eval_time: 4m, alertname: M2AServiceDown, exp_alerts: []}
      - eval_time: 10m
        alertname: M2AServiceDown
        exp_alerts: [{exp_labels: {severity: critical, job: mail2archer, instance: a}}]
  - name: no target
    interval: 1m
    input_series:
      - series: 'up{job="other", instance="b"}'
        values: '1x15'
    alert_rule_test:
      - eval_time: 10m
        alertname: M2AServiceDown
        exp_alerts: [{exp_labels: {severity: critical, job: mail2archer}}]
  - name: subscription expiring
    interval: 1m
    input_series:
      - series: 'm2a_subscription_expiry_seconds{mailbox="phish@contoso.com", instance="a", job="mail2archer"}'
        values: '90000-600x30'
      - series: 'm2a_subscription_expiry_seconds{mailbox="other@contoso.com", instance="a", job="mail2archer"}'
        values: '300000x30'
    alert_rule_test:
      - {eval_time: 10m, alertname: M2ASubscriptionExpiringSoon, exp_alerts: []}
      - eval_time: 20m
        alertname: M2ASubscriptionExpiringSoon
        exp_alerts: [{exp_labels: {severity: critical, mailbox: phish@contoso.com, instance: a, job: mail2archer}}]
  - name: a job cancelled
    interval: 1m
    input_series:
      - series: 'm2a_queue_jobs{state="cancelled", instance="a", job="mail2archer"}'
        values: '0 0 0 1x20'
      - series: 'm2a_queue_jobs{state="discarded", instance="a", job="mail2archer"}'
        values: '0x23'
    alert_rule_test:
      - eval_time: 10m
        alertname: M2AReportsEndingInFailure
        exp_alerts: [{exp_labels: {severity: warning, instance: a, job: mail2archer}}]
  - name: a job ended while the queue's retention removed an old one
    interval: 1m
    input_series:
      - series: 'm2a_queue_jobs{state="cancelled", instance="a", job="mail2archer"}'
        values: '4x20'
      - series: 'm2a_jobs_outcomes_total{outcome="archer_http_422", instance="a", job="mail2archer"}'
        values: '0 0 0 1x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: M2AReportsEndingInFailure
        exp_alerts: [{exp_labels: {severity: warning, instance: a, job: mail2archer}}]
  - name: retried failures do not count as ended
    interval: 1m
    input_series:
      - series: 'm2a_queue_jobs{state="cancelled", instance="a", job="mail2archer"}'
        values: '4x20'
      - series: 'm2a_jobs_outcomes_total{outcome="archer_http_503", instance="a", job="mail2archer"}'
        values: '0+1x20'
      - series: 'm2a_jobs_outcomes_total{outcome="archer_http_408", instance="a", job="mail2archer"}'
        values: '0+1x20'
      - series: 'm2a_jobs_outcomes_total{outcome="archer_timeout", instance="a", job="mail2archer"}'
        values: '0+1x20'
      - series: 'm2a_jobs_outcomes_total{outcome="created", instance="a", job="mail2archer"}'
        values: '0+5x20'
    alert_rule_test:
      - {eval_time: 10m, alertname: M2AReportsEndingInFailure, exp_alerts: []}
  - name: backlog growing, and a steady one
    interval: 1m
    input_series:
      - series: 'm2a_queue_jobs{state="available", instance="a", job="mail2archer"}'
        values: '0+1x40'
      - series: 'm2a_queue_jobs{state="scheduled", instance="b", job="mail2archer"}'
        values: '50x40'
    alert_rule_test:
      - {eval_time: 10m, alertname: M2AQueueBacklogGrowing, exp_alerts: []}
      - eval_time: 25m
        alertname: M2AQueueBacklogGrowing
        exp_alerts: [{exp_labels: {severity: warning, instance: a, job: mail2archer}}]
  - name: archer login refused, named by the job outcomes
    interval: 1m
    input_series:
      - series: 'm2a_component_ready{component="archer", instance="a", job="mail2archer"}'
        values: '1 1 0x20'
      - series: 'm2a_jobs_outcomes_total{outcome="archer_login_refused", instance="a", job="mail2archer"}'
        values: '0 0 0+1x20'
      - series: 'm2a_jobs_outcomes_total{outcome="created", instance="a", job="mail2archer"}'
        values: '0+1x22'
    alert_rule_test:
      - eval_time: 15m
        alertname: M2AArcherFailing
        exp_alerts:
          - exp_labels: {severity: critical, component: archer, outcome: archer_login_refused, instance: a, job: mail2archer}
  - name: archer failing with an idle queue, and a working one
    interval: 1m
    input_series:
      - series: 'm2a_component_ready{component="archer", instance="a", job="mail2archer"}'
        values: '0x20'
      - series: 'm2a_component_ready{component="archer", instance="b", job="mail2archer"}'
        values: '1x20'
      - series: 'm2a_jobs_outcomes_total{outcome="archer_timeout", instance="b", job="mail2archer"}'
        values: '0+1x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: M2AArcherFailing
        exp_alerts: [{exp_labels: {severity: critical, component: archer, instance: a, job: mail2archer}}]
  - name: mapping preflight and graph failing
    interval: 1m
    input_series:
      - series: 'm2a_component_ready{component="mapping", instance="a", job="mail2archer"}'
        values: '0x20'
      - series: 'm2a_component_ready{component="graph", instance="a", job="mail2archer"}'
        values: '0x20'
      - series: 'm2a_jobs_outcomes_total{outcome="graph_permission", instance="a", job="mail2archer"}'
        values: '0+1x20'
    alert_rule_test:
      - {eval_time: 5m, alertname: M2AMappingPreflightFailing, exp_alerts: []}
      - eval_time: 15m
        alertname: M2AMappingPreflightFailing
        exp_alerts: [{exp_labels: {severity: critical, component: mapping, instance: a, job: mail2archer}}]
      - eval_time: 15m
        alertname: M2AGraphFailing
        exp_alerts:
          - exp_labels: {severity: critical, component: graph, outcome: graph_permission, instance: a, job: mail2archer}
  - name: notifications not arriving while the resync finds mail
    interval: 5m
    input_series:
      # a: the webhook gets nothing, the resync catches up on mail.
      - series: 'm2a_resync_messages_queued_total{mailbox="phish@contoso.com", instance="a", job="mail2archer"}'
        values: '0+1x60'
      - series: 'm2a_notifications_received_total{endpoint="notifications", instance="a", job="mail2archer"}'
        values: '3x60'
      # b: notifications arrive; the resync finds one now and then.
      - series: 'm2a_resync_messages_queued_total{mailbox="phish@contoso.com", instance="b", job="mail2archer"}'
        values: '0+1x60'
      - series: 'm2a_notifications_received_total{endpoint="notifications", instance="b", job="mail2archer"}'
        values: '0+2x60'
      # c: no notification ever since the start.
      - series: 'm2a_resync_messages_queued_total{mailbox="phish@contoso.com", instance="c", job="mail2archer"}'
        values: '0+1x60'
      # d: quiet mailbox, nothing to find.
      - series: 'm2a_resync_messages_queued_total{mailbox="phish@contoso.com", instance="d", job="mail2archer"}'
        values: '0x60'
    alert_rule_test:
      - eval_time: 4h
        alertname: M2ANotificationsNotArriving
        exp_alerts:
          - exp_labels: {severity: warning, instance: a, job: mail2archer}
          - exp_labels: {severity: warning, instance: c, job: mail2archer}
  - name: slow webhook answers
    interval: 1m
    input_series:
      - series: 'm2a_webhook_ack_seconds_bucket{endpoint="notifications", status="202", le="1", instance="a", job="mail2archer"}'
        values: '0x30'
      - series: 'm2a_webhook_ack_seconds_bucket{endpoint="notifications", status="202", le="3", instance="a", job="mail2archer"}'
        values: '0+10x30'
      - series: 'm2a_webhook_ack_seconds_bucket{endpoint="notifications", status="202", le="+Inf", instance="a", job="mail2archer"}'
        values: '0+10x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: M2AWebhookAckSlow
        exp_alerts: [{exp_labels: {severity: warning, instance: a, job: mail2archer}}]
`

func TestPromtoolAlertsFireWhenTheyShould(t *testing.T) {
	t.Parallel()
	bin := promtool(t)
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	groups, _ := rules["groups"].([]any)
	for _, g := range groups {
		rs, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rs {
			delete(r.(map[string]any), "annotations")
		}
	}
	stripped, err := yaml.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), stripped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yml"), []byte(alertTests), 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, bin, "test", "rules", filepath.Join(dir, "alerts_test.yml"))
}

// ---- Against the running service ----

// scrapeMetrics fetches /metrics from the sandbox's admin listener.
func scrapeMetrics(ctx context.Context, sb *Sandbox) (exposition, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+sb.App.AdminAddr()+"/metrics", nil)
	if err != nil {
		return exposition{}, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	if tok := sb.Config.AdminToken.Reveal(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return exposition{}, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return exposition{}, fmt.Errorf("scrape /metrics: %s", resp.Status)
	}
	return parseExposition(io.LimitReader(resp.Body, 8<<20))
}

// TestDashboardAndAlertsUseExportedMetrics runs the service through what
// the dashboard shows (notifications, duplicates, a dropped item, a
// notification Graph never sent that the resync catches up on, incidents,
// write-backs), then checks that every metric the dashboard and the alert
// rules query is on /metrics.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	ctx := waitCtx(t, 60*time.Second)

	sb.Graph.SetBehavior(graphsim.Behavior{Redeliver: true})
	for _, prefix := range []string{"01-", "02-"} {
		if _, err := sb.Deliver(sample(t, prefix)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sb.WaitRecords(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// A report whose notification is lost, found by the resync that a
	// "missed" lifecycle event starts.
	sb.Graph.SetBehavior(graphsim.Behavior{Drop: true})
	if _, err := sb.Deliver(sample(t, "04-")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range sb.Graph.Subscriptions() {
		if err := sb.Graph.Lifecycle(sub.ID, "missed"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sb.WaitRecords(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := sb.WaitIdle(waitCtx(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}

	// A malformed notification, so the drop counter has a series.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sb.ServiceURL()+"/webhooks/graph", strings.NewReader("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed notification answered %s", resp.Status)
	}

	e, err := scrapeMetrics(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := readDashboard(t)
	queries := append(dashboardQueries(t, d), alertQueries(readRules(t))...)
	for _, p := range unexported(queries, e) {
		t.Error(p)
	}

	// The check has teeth against this very scrape: a misspelt counter, a
	// histogram queried without its suffix and a gauge queried with one
	// are all reported.
	bogus := []query{
		{where: "misspelt", expr: `sum(rate(m2a_job_outcomes_total[5m]))`},
		{where: "bare histogram", expr: `rate(m2a_processing_seconds[5m])`},
		{where: "suffixed gauge", expr: `m2a_queue_jobs_count`},
	}
	if got := unexported(bogus, e); len(got) != len(bogus) {
		t.Errorf("the check missed some unexported names: %q", got)
	}
	if t.Failed() {
		var have []string
		for n := range e.samples {
			have = append(have, n)
		}
		sort.Strings(have)
		t.Logf("the scrape holds: %s", strings.Join(have, " "))
	}
}
