package tmpl

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"text/template/parse"
)

// builtin is a function every template may call. check runs at compile
// time on the arguments' static types; run gets the number of arguments
// and evaluates them on demand, so and/or can stop early.
type builtin struct {
	check func(in []static) (static, error)
	run   func(n int, arg func(i int) (reflect.Value, error)) (reflect.Value, error)
}

// builtins are the functions every template may call.
var builtins = map[string]builtin{
	"and":    {checkAndOr, runAnd},
	"or":     {checkAndOr, runOr},
	"not":    {checkNot, runNot},
	"eq":     {checkCompare("eq"), runEq},
	"ne":     {checkCompare("ne"), runCompare(func(c int) bool { return c != 0 }, false)},
	"lt":     {checkCompare("lt"), runCompare(func(c int) bool { return c < 0 }, true)},
	"le":     {checkCompare("le"), runCompare(func(c int) bool { return c <= 0 }, true)},
	"gt":     {checkCompare("gt"), runCompare(func(c int) bool { return c > 0 }, true)},
	"ge":     {checkCompare("ge"), runCompare(func(c int) bool { return c >= 0 }, true)},
	"len":    {checkLen, runLen},
	"index":  {checkIndex, runIndex},
	"print":  {checkPrint, runPrint},
	"printf": {checkPrintf, runPrintf},
}

func errArgs(have int, qualifier string, want int) error {
	if qualifier != "" {
		qualifier += " "
	}
	return fmt.Errorf("have %d arguments, want %s%d", have, qualifier, want)
}

func errNotRangeable(t reflect.Type) error {
	return fmt.Errorf("cannot range over %s", t)
}

func checkAndOr(in []static) (static, error) {
	if len(in) == 0 {
		return static{}, errArgs(0, "at least", 1)
	}
	out := in[0]
	for _, v := range in[1:] {
		if v != out {
			return static{}, nil
		}
	}
	if out.konst || out.isNil {
		return static{}, nil
	}
	return out, nil
}

func runAnd(n int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
	var v reflect.Value
	for i := range n {
		var err error
		if v, err = arg(i); err != nil || !truth(v) {
			return v, err
		}
	}
	return v, nil
}

func runOr(n int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
	var v reflect.Value
	for i := range n {
		var err error
		if v, err = arg(i); err != nil || truth(v) {
			return v, err
		}
	}
	return v, nil
}

func checkNot(in []static) (static, error) {
	if len(in) != 1 {
		return static{}, errArgs(len(in), "", 1)
	}
	return staticOf(boolType), nil
}

func runNot(_ int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
	v, err := arg(0)
	if err != nil {
		return reflect.Value{}, err
	}
	return reflect.ValueOf(!truth(v)), nil
}

func checkCompare(name string) func([]static) (static, error) {
	return func(in []static) (static, error) {
		switch {
		case name == "eq" && len(in) < 2:
			return static{}, errArgs(len(in), "at least", 2)
		case name != "eq" && len(in) != 2:
			return static{}, errArgs(len(in), "", 2)
		}
		ordered := name != "eq" && name != "ne"
		for _, v := range in[1:] {
			if !staticComparable(in[0], v, ordered) {
				return static{}, fmt.Errorf("cannot compare %s with %s", in[0], v)
			}
		}
		return staticOf(boolType), nil
	}
}

// runEq is true when the first argument equals any of the others.
func runEq(n int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
	a, err := arg(0)
	if err != nil {
		return reflect.Value{}, err
	}
	for i := 1; i < n; i++ {
		b, err := arg(i)
		if err != nil {
			return reflect.Value{}, err
		}
		c, _, err := compare(a, b)
		if err != nil {
			return reflect.Value{}, err
		}
		if c == 0 {
			return reflect.ValueOf(true), nil
		}
	}
	return reflect.ValueOf(false), nil
}

func runCompare(test func(int) bool, ordered bool) func(int, func(int) (reflect.Value, error)) (reflect.Value, error) {
	return func(_ int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
		a, err := arg(0)
		if err != nil {
			return reflect.Value{}, err
		}
		b, err := arg(1)
		if err != nil {
			return reflect.Value{}, err
		}
		c, isOrdered, err := compare(a, b)
		if err != nil {
			return reflect.Value{}, err
		}
		if ordered && !isOrdered {
			return reflect.Value{}, fmt.Errorf("cannot order %s and %s", typeName(a), typeName(b))
		}
		return reflect.ValueOf(test(c)), nil
	}
}

func typeName(v reflect.Value) string {
	if !v.IsValid() {
		return "nil"
	}
	return v.Type().String()
}

func checkLen(in []static) (static, error) {
	if len(in) != 1 {
		return static{}, errArgs(len(in), "", 1)
	}
	if in[0].konst || in[0].isNil {
		return static{}, fmt.Errorf("len of %s", in[0])
	}
	if t := in[0].t; t != nil {
		switch derefType(t).Kind() {
		case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
		default:
			return static{}, fmt.Errorf("len of %s", t)
		}
	}
	return staticOf(intType), nil
}

func runLen(_ int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
	v, err := arg(0)
	if err != nil {
		return reflect.Value{}, err
	}
	v, isNil := indirect(v)
	if !v.IsValid() || isNil {
		return reflect.ValueOf(0), nil
	}
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
		return reflect.ValueOf(v.Len()), nil
	}
	return reflect.Value{}, fmt.Errorf("len of %s", v.Type())
}

func checkIndex(in []static) (static, error) {
	if len(in) == 0 {
		return static{}, errArgs(0, "at least", 1)
	}
	v := in[0]
	for _, k := range in[1:] {
		if v.konst || v.isNil {
			return static{}, fmt.Errorf("cannot index %s", v)
		}
		if v.t == nil {
			return static{}, nil
		}
		t := derefType(v.t)
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.String:
			if !k.konst && k.t != nil && !isIntKind(k.t.Kind()) && !isUintKind(k.t.Kind()) {
				return static{}, fmt.Errorf("cannot index %s with %s", t, k)
			}
			if t.Kind() == reflect.String {
				v = staticOf(reflect.TypeFor[byte]())
			} else {
				v = staticOf(t.Elem())
			}
		case reflect.Map:
			if !staticAssignable(k, t.Key()) {
				return static{}, fmt.Errorf("cannot index %s with %s", t, k)
			}
			v = staticOf(t.Elem())
		default:
			return static{}, fmt.Errorf("cannot index %s", t)
		}
	}
	return v, nil
}

// runIndex reads x[i][j]…; an index past the end or a missing map key
// gives the element type's zero value, so a short list in an email prints
// nothing instead of failing the whole template.
func runIndex(n int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
	v, err := arg(0)
	if err != nil {
		return reflect.Value{}, err
	}
	for i := 1; i < n; i++ {
		k, err := arg(i)
		if err != nil {
			return reflect.Value{}, err
		}
		x, isNil := indirect(v)
		if !x.IsValid() {
			return reflect.Value{}, nil
		}
		if isNil {
			x = reflect.Zero(x.Type().Elem())
		}
		switch x.Kind() {
		case reflect.Slice, reflect.Array, reflect.String:
			idx, err := intIndex(k)
			if err != nil {
				return reflect.Value{}, err
			}
			switch {
			case idx >= 0 && idx < x.Len():
				v = x.Index(idx)
			case x.Kind() == reflect.String:
				v = reflect.Zero(reflect.TypeFor[byte]())
			default:
				v = reflect.Zero(x.Type().Elem())
			}
		case reflect.Map:
			key, err := assign(k, x.Type().Key())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("map key: %w", err)
			}
			if v = x.MapIndex(key); !v.IsValid() {
				v = reflect.Zero(x.Type().Elem())
			}
		default:
			return reflect.Value{}, fmt.Errorf("cannot index %s", x.Type())
		}
	}
	return v, nil
}

func intIndex(k reflect.Value) (int, error) {
	k, _ = indirectValue(k)
	if !k.IsValid() {
		return 0, errors.New("index is nil")
	}
	switch {
	case isIntKind(k.Kind()):
		return int(k.Int()), nil
	case isUintKind(k.Kind()):
		u := k.Uint()
		if u > 1<<31 {
			return 1 << 31, nil
		}
		return int(u), nil
	}
	return 0, fmt.Errorf("index of type %s", k.Type())
}

func checkPrint(in []static) (static, error) {
	for _, v := range in {
		if !v.konst && !v.isNil && !printableType(v.t) {
			return static{}, fmt.Errorf("cannot print %s", v.t)
		}
	}
	return staticOf(stringType), nil
}

// runPrint prints its arguments by the package's printing rules, with a
// space between two operands when neither is a string, as fmt.Sprint does.
func runPrint(n int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
	var b strings.Builder
	prevString := true
	for i := range n {
		v, err := arg(i)
		if err != nil {
			return reflect.Value{}, err
		}
		s, err := printValue(v)
		if err != nil {
			return reflect.Value{}, err
		}
		x, _ := indirectValue(v)
		isString := x.IsValid() && x.Kind() == reflect.String
		if i > 0 && !isString && !prevString {
			b.WriteByte(' ')
		}
		b.WriteString(s)
		prevString = isString
	}
	return reflect.ValueOf(b.String()), nil
}

func checkPrintf(in []static) (static, error) {
	if len(in) == 0 {
		return static{}, errArgs(0, "at least", 1)
	}
	if f := in[0]; f.konst || f.isNil || (f.t != nil && f.t.Kind() != reflect.String) {
		return static{}, fmt.Errorf("the format is %s, want a string", f)
	}
	return staticOf(stringType), nil
}

// runPrintf formats with fmt.Sprintf; times are passed as their RFC 3339
// text (empty when zero), like every printed time.
func runPrintf(n int, arg func(int) (reflect.Value, error)) (reflect.Value, error) {
	f, err := arg(0)
	if err != nil {
		return reflect.Value{}, err
	}
	f, _ = indirectValue(f)
	if !f.IsValid() || f.Kind() != reflect.String {
		return reflect.Value{}, errors.New("the format is not a string")
	}
	args := make([]any, 0, n-1)
	for i := 1; i < n; i++ {
		v, err := arg(i)
		if err != nil {
			return reflect.Value{}, err
		}
		v, _ = indirectValue(v)
		switch {
		case !v.IsValid():
			args = append(args, nil)
		case v.Type() == timeType:
			s, _ := printValue(v)
			args = append(args, s)
		case v.CanInterface():
			args = append(args, v.Interface())
		default:
			return reflect.Value{}, fmt.Errorf("argument %d cannot be formatted", i+1)
		}
	}
	return reflect.ValueOf(fmt.Sprintf(f.String(), args...)), nil
}

// number reads a number constant of the template.
func number(n *parse.NumberNode) (numberValue, error) {
	switch {
	case n.IsInt:
		return numberValue{text: n.Text, isInt: true, i: n.Int64, f: float64(n.Int64)}, nil
	case n.IsFloat:
		return numberValue{text: n.Text, f: n.Float64}, nil
	}
	return numberValue{}, fmt.Errorf("number %s is out of range or complex", n.Text)
}
