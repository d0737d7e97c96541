// Package tmpl runs templates written in Go template syntax ({{.A.B}},
// pipelines, if/else, range, with, variables and the usual built-in
// functions) without text/template's executor.
//
// Templates are parsed by the standard parser, text/template/parse, and
// evaluated here by reading struct fields, map entries with string keys and
// slice elements through reflect, and by calling the functions the caller
// registers. Templates never call methods: a method call such as
// {{.ReceivedAt.Format "2006-01-02"}} is refused when the template is
// compiled, with its position and the function to use instead. Because no
// method is looked up by name at run time, the linker can still drop the
// methods a program does not use.
//
// Compile checks a template against the static type of the data it will
// see: unknown fields, unknown functions, wrong argument counts and types,
// and values that cannot be printed are errors at compile time, reported as
// name:line:column. Where a type is known only at run time (an interface
// such as any), the check happens at run time.
//
// Printing rules: strings as they are; numbers and booleans as Go prints
// them; a time.Time in RFC 3339, and the zero time as ""; a value that
// implements fmt.Stringer through its String method; a slice of such values
// with the elements joined by ", "; nil as "". Truth: false, 0, "", an
// empty slice or map, a nil pointer and a struct whose fields are all zero
// (the zero time, an empty address) are false.
//
// A template writes through a Writer that tells the template's own text
// apart from the values its actions print, so a caller can escape values
// and decide whether to trust the template's text. Execution bounds the
// output size and the number of range iterations.
package tmpl

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"text/template/parse"
)

// Default limits of one execution.
const (
	// DefaultMaxOutput is the default bound on the bytes one execution
	// writes, text and values together.
	DefaultMaxOutput = 1 << 20
	// DefaultMaxIterations is the default bound on the range iterations of
	// one execution, all range actions together.
	DefaultMaxIterations = 100_000
)

// Errors an execution returns, wrapped with the template's name and the
// position of the action, when a limit is reached.
var (
	// ErrOutputLimit means the output would exceed Options.MaxOutput.
	ErrOutputLimit = errors.New("output limit reached")
	// ErrIterationLimit means the range actions would iterate more than
	// Options.MaxIterations times.
	ErrIterationLimit = errors.New("range iteration limit reached")
)

// Funcs maps function names to Go functions. A function returns one
// value, or a value and an error; a non-nil error stops the execution.
type Funcs map[string]any

// Options configures Compile. The zero value is valid: no functions
// besides the built-in ones, and the default limits.
type Options struct {
	// Funcs are the functions templates may call besides the built-in
	// ones (and, or, not, eq, ne, lt, le, gt, ge, len, index, print,
	// printf). They must not reuse a built-in name.
	Funcs Funcs
	// MaxOutput bounds the bytes one execution writes; 0 means
	// DefaultMaxOutput.
	MaxOutput int
	// MaxIterations bounds the range iterations of one execution; 0 means
	// DefaultMaxIterations.
	MaxIterations int
}

// Writer receives a template's output in order. WriteText gets the
// template's own text (what the template's author wrote between actions);
// WriteValue gets what an action prints. An error stops the execution and
// is returned by Execute.
type Writer interface {
	WriteText(s string) error
	WriteValue(s string) error
}

// Template is a compiled template. It is safe for concurrent use.
type Template struct {
	name    string
	text    string
	root    *parse.ListNode
	data    reflect.Type
	funcs   map[string]*function
	maxOut  int
	maxIter int
	fields  sync.Map // fieldKey → fieldInfo
	// texts holds the template's text nodes as strings, filled at
	// compile time so executions do not convert them again.
	texts map[*parse.TextNode]string
}

// function is a registered Go function.
type function struct {
	name string
	fn   reflect.Value
	typ  reflect.Type
}

// Compile parses text as a template called name (the name errors start
// with) and checks it against data, the static type of the value Execute
// will receive. A nil data type defers every check to run time. The error
// lists the first problem found, as name:line:column: message.
func Compile(name, text string, data reflect.Type, opts Options) (*Template, error) {
	t := &Template{name: name, text: text, data: data, maxOut: opts.MaxOutput, maxIter: opts.MaxIterations,
		texts: map[*parse.TextNode]string{}}
	if t.maxOut <= 0 {
		t.maxOut = DefaultMaxOutput
	}
	if t.maxIter <= 0 {
		t.maxIter = DefaultMaxIterations
	}
	funcs, err := registerFuncs(opts.Funcs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t.funcs = funcs
	tree := parse.New(name)
	tree.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := tree.Parse(text, "", "", trees); err != nil {
		return nil, cleanParseError(err)
	}
	if len(trees) > 1 || (len(trees) == 1 && trees[name] != tree) {
		return nil, fmt.Errorf("%s: define, block and template are not supported: write one template per field", name)
	}
	t.root = tree.Root
	root := staticOf(data)
	c := &checker{t: t, vars: []staticVar{{name: "$", typ: root}}}
	if err := c.list(t.root, root); err != nil {
		return nil, err
	}
	return t, nil
}

// Name returns the name the template was compiled with.
func (t *Template) Name() string { return t.name }

// Execute runs the template on data, which must have the type the template
// was compiled for, and writes the output to w. Errors name the template
// and the position of the action that failed.
func (t *Template) Execute(w Writer, data any) (err error) {
	dot := reflect.ValueOf(data)
	if t.data != nil && (!dot.IsValid() || dot.Type() != t.data) {
		return fmt.Errorf("%s: the data is %T; the template was compiled for %s", t.name, data, t.data)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: execution failed: %v", t.name, r)
		}
	}()
	s := &state{t: t, w: w, vars: []runtimeVar{{name: "$", value: dot}}}
	if err := s.list(t.root, dot); err != nil {
		if errors.Is(err, errBreak) || errors.Is(err, errContinue) {
			return fmt.Errorf("%s: break or continue outside range", t.name)
		}
		return err
	}
	return nil
}

// ExecuteString runs the template on data and returns its output as plain
// text: the template's text and the printed values as they are, with no
// escaping.
func (t *Template) ExecuteString(data any) (string, error) {
	var w plainWriter
	if err := t.Execute(&w, data); err != nil {
		return "", err
	}
	return w.b.String(), nil
}

type plainWriter struct{ b strings.Builder }

func (w *plainWriter) WriteText(s string) error  { w.b.WriteString(s); return nil }
func (w *plainWriter) WriteValue(s string) error { w.b.WriteString(s); return nil }

// cleanParseError drops the "template: " prefix of the parser's errors, so
// every error of this package starts with the template's name.
func cleanParseError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	return errors.New(msg)
}

// where formats a node's position as name:line:column, both 1-based.
func (t *Template) where(n parse.Node) string { return t.whereAt(n.Position()) }

// whereAt formats an offset in the text as name:line:column.
func (t *Template) whereAt(p parse.Pos) string {
	pos := int(p)
	if pos < 0 {
		pos = 0
	}
	if pos > len(t.text) {
		pos = len(t.text)
	}
	before := t.text[:pos]
	line := 1 + strings.Count(before, "\n")
	col := pos - strings.LastIndexByte(before, '\n')
	return fmt.Sprintf("%s:%d:%d", t.name, line, col)
}

// errorf builds an error at a node's position.
func (t *Template) errorf(n parse.Node, format string, args ...any) error {
	return fmt.Errorf("%s: %s", t.where(n), fmt.Sprintf(format, args...))
}

// errorAt builds an error at an offset in the text.
func (t *Template) errorAt(pos parse.Pos, format string, args ...any) error {
	return fmt.Errorf("%s: %s", t.whereAt(pos), fmt.Sprintf(format, args...))
}

// fieldPos is the offset of the i-th field name of a field chain: the
// parser gives a chain the position of its second element, so the start is
// found from the names' lengths.
func fieldPos(n parse.Node, i int) parse.Pos {
	var start parse.Pos
	var names []string
	switch n := n.(type) {
	case *parse.FieldNode:
		start, names = n.Pos, n.Ident
		if len(names) > 1 {
			start -= parse.Pos(1 + len(names[0]))
		}
	case *parse.VariableNode:
		start, names = n.Pos, n.Ident[1:]
		if len(names) > 0 {
			start -= parse.Pos(len(n.Ident[0]))
		}
		start += parse.Pos(len(n.Ident[0]))
	case *parse.ChainNode:
		start, names = n.Pos, n.Field
	default:
		return n.Position()
	}
	for j := 0; j < i && j < len(names); j++ {
		start += parse.Pos(1 + len(names[j]))
	}
	return start
}

// wrapf wraps err with a node's position and a message.
func (t *Template) wrapf(n parse.Node, err error, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", t.where(n), fmt.Sprintf(format, args...), err)
}

var errorType = reflect.TypeFor[error]()

func registerFuncs(funcs Funcs) (map[string]*function, error) {
	out := make(map[string]*function, len(funcs))
	for name, f := range funcs {
		if _, ok := builtins[name]; ok {
			return nil, fmt.Errorf("function %q is built in and cannot be replaced", name)
		}
		if !validIdent(name) {
			return nil, fmt.Errorf("function name %q is not an identifier", name)
		}
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Func || v.IsNil() {
			return nil, fmt.Errorf("function %q is a %T, not a func", name, f)
		}
		ft := v.Type()
		switch {
		case ft.NumOut() == 1 && ft.Out(0) != errorType:
		case ft.NumOut() == 2 && ft.Out(1) == errorType:
		default:
			return nil, fmt.Errorf("function %q must return one value, or a value and an error", name)
		}
		out[name] = &function{name: name, fn: v, typ: ft}
	}
	return out, nil
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		digit := r >= '0' && r <= '9'
		if !letter && (i == 0 || !digit) {
			return false
		}
	}
	return true
}

// funcNames lists the functions a template may call, for error messages.
func (t *Template) funcNames() string {
	names := make([]string, 0, len(builtins)+len(t.funcs))
	for n := range builtins {
		names = append(names, n)
	}
	for n := range t.funcs {
		names = append(names, n)
	}
	sortStrings(names)
	return strings.Join(names, ", ")
}
