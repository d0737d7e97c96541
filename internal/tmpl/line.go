package tmpl

import (
	"fmt"
	"reflect"
	"strings"
)

// maxLine bounds the output of a Line.
const maxLine = 4096

// Line is a one-line template over values of type T, printed as plain text
// with nothing escaped: for example the category written back to a
// processed message, "Archer {{.RecordID}}". It is safe for concurrent
// use.
type Line[T any] struct{ t *Template }

// CompileLine compiles a one-line template over T with the built-in
// functions only. Errors name the template and the position, like Compile.
func CompileLine[T any](name, text string) (*Line[T], error) {
	if strings.ContainsAny(text, "\r\n") {
		return nil, fmt.Errorf("%s: the template must be one line", name)
	}
	t, err := Compile(name, text, reflect.TypeFor[T](), Options{MaxOutput: maxLine})
	if err != nil {
		return nil, err
	}
	return &Line[T]{t: t}, nil
}

// Execute renders the template on v and returns the output without the
// spaces around it; an output holding a line break is an error.
func (l *Line[T]) Execute(v T) (string, error) {
	s, err := l.t.ExecuteString(v)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s: the output holds a line break", l.t.name)
	}
	return s, nil
}
