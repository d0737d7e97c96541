package tmpl

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

type address struct {
	Name    string
	Address string
}

func (a address) String() string {
	if a.Name == "" {
		return a.Address
	}
	return a.Name + " <" + a.Address + ">"
}

type file struct {
	Name string
	Size int64
	Tags []string
}

type Inner struct {
	Depth int
}

type PtrInner struct {
	Label string
}

type data struct {
	Inner
	*PtrInner
	Subject string
	When    time.Time
	Zero    time.Time
	From    address
	Empty   address
	To      []address
	Files   []file
	NoFiles []file
	First   *file
	Missing *file
	Headers map[string]string
	Counts  map[string]int
	N       int
	F       float64
	U       uint8
	OK      bool
	Any     any
	Anys    []any
	Bytes   []byte
	private string
}

func sample() data {
	return data{
		Inner:   Inner{Depth: 3},
		Subject: "Action required",
		When:    time.Date(2026, 3, 12, 7, 41, 0, 0, time.UTC),
		From:    address{"IT Desk", "it@evil.example"},
		To:      []address{{"Alice", "alice@contoso.com"}, {"", "bob@contoso.com"}},
		Files:   []file{{"a.zip", 10, []string{"zip", "archive"}}, {"b.pdf", 0, nil}},
		First:   &file{Name: "first.txt"},
		Headers: map[string]string{"X-Spam": "yes", "A": "1"},
		Counts:  map[string]int{"b": 2, "a": 1},
		N:       5, F: 2.5, U: 7, OK: true,
		Any:     "dynamic",
		Anys:    []any{"x", 2, address{"", "c@d.example"}},
		private: "hidden",
	}
}

var dataType = reflect.TypeFor[data]()

func testFuncs() Funcs {
	return Funcs{
		"upper": strings.ToUpper,
		"list":  func(items ...any) []any { return items },
		"date": func(layout string, t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Format(layout)
		},
		"add":  func(a, b int) int { return a + b },
		"fail": func() (string, error) { return "", errors.New("it failed") },
		"boom": func() string { panic("kaboom") },
		"half": func(f float64) float64 { return f / 2 },
		"nums": func() []int { return []int{3, 1, 2} },
	}
}

func run(t *testing.T, text string, d any) (string, error) {
	t.Helper()
	tm, err := Compile("t", text, reflect.TypeOf(d), Options{Funcs: testFuncs()})
	if err != nil {
		return "", err
	}
	return tm.ExecuteString(d)
}

func TestSyntax(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, tmpl, want string }{
		{"text only", "hello", "hello"},
		{"field", "{{.Subject}}", "Action required"},
		{"nested field", "{{.From.Name}}", "IT Desk"},
		{"promoted field", "{{.Depth}}", "3"},
		{"nil embedded pointer field", "[{{.Label}}]", "[]"},
		{"stringer", "{{.From}}", "IT Desk <it@evil.example>"},
		{"slice of stringers", "{{.To}}", "Alice <alice@contoso.com>, bob@contoso.com"},
		{"slice of strings", "{{(index .Files 0).Tags}}", "zip, archive"},
		{"time RFC 3339", "{{.When}}", "2026-03-12T07:41:00Z"},
		{"zero time prints nothing", "[{{.Zero}}]", "[]"},
		{"numbers", "{{.N}} {{.F}} {{.U}} {{.OK}}", "5 2.5 7 true"},
		{"pointer field", "{{.First.Name}}", "first.txt"},
		{"nil pointer field is empty", "[{{.Missing.Name}}]", "[]"},
		{"map field", "{{.Headers.A}}", "1"},
		{"map index", `{{index .Headers "X-Spam"}}`, "yes"},
		{"missing map key", `[{{index .Headers "Nope"}}{{.Headers.Nope}}]`, "[]"},
		{"index past the end", `[{{(index .To 5).Address}}]`, "[]"},
		{"index", `{{(index .To 1).Address}}`, "bob@contoso.com"},
		{"len", "{{len .To}} {{len .Subject}} {{len .Headers}}", "2 15 2"},
		{"pipeline", "{{.Subject | upper}}", "ACTION REQUIRED"},
		{"pipeline into a function with arguments", `{{.When | date "2006-01-02"}}`, "2026-03-12"},
		{"function call", `{{date "15:04" .When}}`, "07:41"},
		{"number constant to int", "{{add 2 .N}}", "7"},
		{"number constant to float", "{{half 3}}", "1.5"},
		{"parenthesised", "{{upper (print .N)}}", "5"},
		{"chain", "{{(index .Files 0).Name}}", "a.zip"},
		{"if true", "{{if .OK}}yes{{end}}", "yes"},
		{"if else", "{{if .Empty}}a{{else}}b{{end}}", "b"},
		{"else if", `{{if eq .N 1}}one{{else if eq .N 5}}five{{else}}many{{end}}`, "five"},
		{"zero time is false", "{{if .Zero}}set{{else}}unset{{end}}", "unset"},
		{"non-zero struct is true", "{{if .From}}set{{end}}", "set"},
		{"nil pointer is false", "{{if .Missing}}a{{else}}b{{end}}", "b"},
		{"empty slice is false", "{{if .NoFiles}}a{{else}}b{{end}}", "b"},
		{"and or not", "{{and .OK .N}} {{or .Empty.Name 0 \"d\"}} {{not .OK}}", "5 d false"},
		{"and short-circuits", "{{and .Missing .Missing.Name}}", ""},
		{"eq several", `{{eq .Subject "x" "Action required"}}`, "true"},
		{"ne lt le gt ge", "{{ne .N 5}} {{lt .N 6}} {{le .N 5}} {{gt .F 2}} {{ge .U 8}}", "false true true true false"},
		{"compare structs", "{{eq .From .From}} {{eq .From .Empty}}", "true false"},
		{"range", "{{range .To}}[{{.Address}}]{{end}}", "[alice@contoso.com][bob@contoso.com]"},
		{"range index and element", "{{range $i, $a := .To}}{{$i}}={{$a.Address}};{{end}}", "0=alice@contoso.com;1=bob@contoso.com;"},
		{"range one variable", "{{range $f := .Files}}{{$f.Name}} {{end}}", "a.zip b.pdf "},
		{"range else", "{{range .NoFiles}}x{{else}}none{{end}}", "none"},
		{"range map sorted", "{{range $k, $v := .Counts}}{{$k}}{{$v}} {{end}}", "a1 b2 "},
		{"range int", "{{range 3}}{{.}}{{end}}", "012"},
		{"range break continue", "{{range .Files}}{{if eq .Name \"b.pdf\"}}{{break}}{{end}}{{if .Size}}{{continue}}{{end}}x{{end}}.", "."},
		{"range over a function result", "{{range nums}}{{.}}{{end}}", "312"},
		{"range dynamic", "{{range list 1 \"a\"}}<{{.}}>{{end}}", "<1><a>"},
		{"with", "{{with .First}}{{.Name}}{{end}}", "first.txt"},
		{"with else", "{{with .Missing}}{{.Name}}{{else}}no file{{end}}", "no file"},
		{"else with", "{{with .Missing}}a{{else with .First}}{{.Name}}{{end}}", "first.txt"},
		{"variables", "{{$s := .Subject}}{{$s}}", "Action required"},
		{"variable assignment", "{{$n := 1}}{{if .OK}}{{$n = 2}}{{end}}{{$n}}", "2"},
		{"root variable", "{{range .To}}{{$.Subject}};{{end}}", "Action required;Action required;"},
		{"print", `{{print 1 2 "a" 3}}`, "1 2a3"},
		{"print time", "{{print .When}}", "2026-03-12T07:41:00Z"},
		{"printf", `{{printf "%s has %d" .Subject .N}}`, "Action required has 5"},
		{"printf time", `{{printf "at %s" .When}}`, "at 2026-03-12T07:41:00Z"},
		{"dynamic field", "{{.Any}}", "dynamic"},
		{"list of dynamic values", "{{.Anys}}", "x, 2, c@d.example"},
		{"comment", "a{{/* a comment */}}b", "ab"},
		{"trim markers", "a  {{- .N -}}  b", "a5b"},
		{"nil argument", "{{eq .Any nil}}", "false"},
		{"dot", "{{with .N}}{{.}}{{end}}", "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := run(t, tt.tmpl, sample())
			if err != nil {
				t.Fatalf("%s: %v", tt.tmpl, err)
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.tmpl, got, tt.want)
			}
		})
	}
}

func TestCompileErrorsHavePositions(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, tmpl, want string }{
		{"method call on a time", `{{.When.Format "2006-01-02"}}`, `t:1:8: .When.Format: a time has no fields; templates call no methods: use {{date "2006-01-02" .When}}`},
		{"IsZero", "x\n  {{if not .Zero.IsZero}}y{{end}}", `t:2:17: .Zero.IsZero: a time has no fields; templates call no methods: use {{if .Zero}}`},
		{"unknown field", "{{.Subjet}}", "t:1:3: .Subjet: tmpl.data has no field Subjet"},
		{"unknown field lists the fields", "{{.From.Mail}}", "its fields are Name, Address"},
		{"method on a struct", "{{.From.String}}", "print the value itself: {{.From}}"},
		{"unexported field", "{{.private}}", "has no field private"},
		{"field of a range element", "{{range .Files}}{{.Nme}}{{end}}", "t:1:19: .Nme: tmpl.file has no field Nme"},
		{"field of a with value", "{{with .First}}{{.Size.X}}{{end}}", "int64 has no fields"},
		{"variable field", "{{range $f := .Files}}{{$f.Nam}}{{end}}", "t:1:27: $f.Nam: tmpl.file has no field Nam"},
		{"unknown function", "{{frobnicate .N}}", `t:1:3: function "frobnicate" is not defined; functions: add, and, `},
		{"too few arguments", `{{date "2006"}}`, "t:1:3: date: have 1 arguments, want 2"},
		{"too many arguments", `{{upper "a" "b"}}`, "upper: have 2 arguments, want 1"},
		{"wrong argument type", `{{date "x" .Subject}}`, "t:1:12: argument 2 of date: have string, want time.Time"},
		{"wrong piped type", `{{.N | upper}}`, "the value piped into upper: have int, want string"},
		{"field with arguments", `{{.Subject "x"}}`, "t:1:3: .Subject is a field and takes no arguments"},
		{"cannot print a struct", "{{.First}}", "cannot print *tmpl.file"},
		{"cannot print a list of structs", "{{.Files}}", "cannot print []tmpl.file"},
		{"cannot print bytes", "{{.Bytes}}", "cannot print []uint8"},
		{"cannot compare", `{{eq .N "five"}}`, "eq: cannot compare int with string"},
		{"cannot order bools", `{{lt .OK .OK}}`, "lt: cannot compare bool with bool"},
		{"len of a number", "{{len .N}}", "len of int"},
		{"cannot range", "{{range .Subject}}{{end}}", "cannot range over string"},
		{"index a struct", "{{index .From 1}}", "cannot index tmpl.address"},
		{"define", `{{define "x"}}a{{end}}`, "define, block and template are not supported"},
		{"template", `{{template "x"}}`, "template"},
		{"parse error", "{{.Subject", "t:1: unclosed action"},
		{"undefined variable", "{{$x}}", "undefined variable"},
		{"complex number", "{{print 1i}}", "complex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile("t", tt.tmpl, dataType, Options{Funcs: testFuncs()})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%s: error %v, want it to contain %q", tt.tmpl, err, tt.want)
			}
		})
	}
}

func TestBadFunctionsAreRefused(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]any{
		"and":      strings.ToUpper,
		"notfunc":  42,
		"noout":    func() {},
		"twoout":   func() (int, int) { return 1, 2 },
		"bad-name": strings.ToUpper,
	} {
		if _, err := Compile("t", "x", dataType, Options{Funcs: Funcs{name: f}}); err == nil {
			t.Errorf("function %s was accepted", name)
		}
	}
}

func TestRunTimeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, tmpl, want string }{
		{"function error", "a{{fail}}", "t:1:4: fail: it failed"},
		{"function panic", "{{boom}}", "execution failed: kaboom"},
		{"dynamic field", "{{.Any.Name}}", "t:1:7: .Any.Name: string has no fields"},
		{"dynamic argument", "{{date \"x\" .Any}}", "argument 2 of date: have string, want time.Time"},
		{"dynamic print", "{{list .First}}", "cannot print"},
		{"dynamic compare", `{{lt .Any 1}}`, "cannot compare string with int"},
		{"dynamic range", "{{range .Any}}{{end}}", "cannot range over string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := run(t, tt.tmpl, sample())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%s: error %v, want it to contain %q", tt.tmpl, err, tt.want)
			}
		})
	}
}

func TestExecuteChecksTheDataType(t *testing.T) {
	t.Parallel()
	tm, err := Compile("t", "{{.Subject}}", dataType, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.ExecuteString(&data{}); err == nil || !strings.Contains(err.Error(), "compiled for tmpl.data") {
		t.Errorf("error %v", err)
	}
	if _, err := tm.ExecuteString(nil); err == nil {
		t.Error("nil data executed")
	}
}

// recorder keeps the writer calls apart.
type recorder struct {
	parts []string
	fail  error
}

func (r *recorder) WriteText(s string) error {
	r.parts = append(r.parts, "T:"+s)
	return r.fail
}

func (r *recorder) WriteValue(s string) error {
	r.parts = append(r.parts, "V:"+s)
	return r.fail
}

func TestWriterTellsTextFromValues(t *testing.T) {
	t.Parallel()
	tm, err := Compile("t", `<b>{{.Subject}}</b>{{if .OK}} & {{.N}}{{end}}{{$x := 1}}`, dataType, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	if err := tm.Execute(&r, sample()); err != nil {
		t.Fatal(err)
	}
	want := []string{"T:<b>", "V:Action required", "T:</b>", "T: & ", "V:5"}
	if !reflect.DeepEqual(r.parts, want) {
		t.Errorf("parts %q, want %q", r.parts, want)
	}
	r = recorder{fail: errors.New("disk full")}
	if err := tm.Execute(&r, sample()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("writer error not returned: %v", err)
	}
}

// hostile is data as large as an attacker could make it.
type hostile struct {
	Items []string
	Big   string
}

func TestLimitsBoundHostileData(t *testing.T) {
	t.Parallel()
	h := hostile{Items: make([]string, 1000), Big: strings.Repeat("<", 1<<20)}
	for i := range h.Items {
		h.Items[i] = fmt.Sprint(i)
	}
	ht := reflect.TypeFor[hostile]()

	tm, err := Compile("t", "{{range .Items}}{{range $.Items}}.{{end}}{{end}}", ht, Options{MaxIterations: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.ExecuteString(h); !errors.Is(err, ErrIterationLimit) {
		t.Errorf("nested ranges: %v, want ErrIterationLimit", err)
	}

	tm, err = Compile("t", "{{.Big}}{{.Big}}", ht, Options{MaxOutput: 1<<20 + 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.ExecuteString(h); !errors.Is(err, ErrOutputLimit) || !strings.Contains(err.Error(), "t:1:11") {
		t.Errorf("output: %v, want ErrOutputLimit at t:1:9", err)
	}

	tm, err = Compile("t", "{{range .Items}}{{.}}{{end}}", ht, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tm.ExecuteString(h)
	if err != nil || !strings.HasSuffix(out, "998999") {
		t.Errorf("within the limits: %v", err)
	}
}

func TestPrint(t *testing.T) {
	t.Parallel()
	var nilFile *file
	tests := []struct {
		in   any
		want string
		err  bool
	}{
		{nil, "", false},
		{"s", "s", false},
		{3, "3", false},
		{1.25, "1.25", false},
		{time.Time{}, "", false},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), "2026-01-02T03:04:05+01:00", false},
		{address{"", "a@b.example"}, "a@b.example", false},
		{[]string{"a", "b"}, "a, b", false},
		{[]int{1, 2}, "1, 2", false},
		{nilFile, "", false},
		{file{}, "", true},
		{[]file{{}}, "", true},
		{map[string]int{}, "", true},
	}
	for _, tt := range tests {
		got, err := Print(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("Print(%#v) = %q, %v", tt.in, got, err)
		}
	}
}

func TestConcurrentExecutions(t *testing.T) {
	t.Parallel()
	tm, err := Compile("t", "{{range .To}}{{.Address}}{{end}}{{.Headers.A}}", dataType, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	for range 8 {
		go func() {
			s, err := tm.ExecuteString(sample())
			if err != nil {
				s = err.Error()
			}
			done <- s
		}()
	}
	for range 8 {
		if s := <-done; s != "alice@contoso.combob@contoso.com1" {
			t.Errorf("got %q", s)
		}
	}
}
