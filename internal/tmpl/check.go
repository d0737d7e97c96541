package tmpl

import (
	"reflect"
	"strings"
	"text/template/parse"
)

// static is what the checker knows about a value before run time.
type static struct {
	// t is the value's type; nil when it is known only at run time.
	t reflect.Type
	// konst marks a number constant written in the template, which adapts
	// to the numeric parameter it is passed to.
	konst bool
	// isNil marks the nil constant.
	isNil bool
}

// staticOf describes a value of type t; interface types are known only at
// run time.
func staticOf(t reflect.Type) static {
	if t == nil || t.Kind() == reflect.Interface {
		return static{}
	}
	return static{t: t}
}

func (s static) String() string {
	switch {
	case s.isNil:
		return "nil"
	case s.konst:
		return "a number"
	case s.t == nil:
		return "a value known at run time"
	}
	return s.t.String()
}

// checker walks a parsed template once at compile time, tracking dot's
// and the variables' static types.
type checker struct {
	t    *Template
	vars []staticVar
}

type staticVar struct {
	name string
	typ  static
}

func (c *checker) list(l *parse.ListNode, dot static) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := c.node(n, dot); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) node(n parse.Node, dot static) error {
	switch n := n.(type) {
	case *parse.TextNode:
		c.t.texts[n] = string(n.Text)
		return nil
	case *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode:
		return nil
	case *parse.ListNode:
		return c.list(n, dot)
	case *parse.ActionNode:
		v, err := c.pipe(n.Pipe, dot, true)
		if err != nil {
			return err
		}
		if len(n.Pipe.Decl) == 0 && !v.konst && !v.isNil && !printableType(v.t) {
			return c.t.errorf(n, "%s: cannot print %s; print one of its fields", n.Pipe, v.t)
		}
		return nil
	case *parse.IfNode:
		mark := len(c.vars)
		defer func() { c.vars = c.vars[:mark] }()
		if _, err := c.pipe(n.Pipe, dot, true); err != nil {
			return err
		}
		if err := c.list(n.List, dot); err != nil {
			return err
		}
		return c.list(n.ElseList, dot)
	case *parse.WithNode:
		mark := len(c.vars)
		defer func() { c.vars = c.vars[:mark] }()
		v, err := c.pipe(n.Pipe, dot, true)
		if err != nil {
			return err
		}
		if v.isNil {
			v = static{}
		}
		if err := c.list(n.List, v); err != nil {
			return err
		}
		return c.list(n.ElseList, dot)
	case *parse.RangeNode:
		mark := len(c.vars)
		defer func() { c.vars = c.vars[:mark] }()
		v, err := c.pipe(n.Pipe, dot, false)
		if err != nil {
			return err
		}
		key, elem, err := rangeTypes(v)
		if err != nil {
			return c.t.errorf(n, "range over %s: %v", n.Pipe, err)
		}
		switch len(n.Pipe.Decl) {
		case 1:
			c.vars = append(c.vars, staticVar{n.Pipe.Decl[0].Ident[0], elem})
		case 2:
			c.vars = append(c.vars, staticVar{n.Pipe.Decl[0].Ident[0], key}, staticVar{n.Pipe.Decl[1].Ident[0], elem})
		}
		if err := c.list(n.List, elem); err != nil {
			return err
		}
		return c.list(n.ElseList, dot)
	case *parse.TemplateNode:
		return c.t.errorf(n, "{{template}} is not supported: write one template per field")
	}
	return c.t.errorf(n, "unsupported %s", n)
}

// rangeTypes gives the key and element types of a range.
func rangeTypes(v static) (key, elem static, err error) {
	if v.konst {
		return staticOf(intType), staticOf(intType), nil
	}
	if v.t == nil {
		return static{}, static{}, nil
	}
	t := derefType(v.t)
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return staticOf(intType), staticOf(t.Elem()), nil
	case reflect.Map:
		return staticOf(t.Key()), staticOf(t.Elem()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return staticOf(t), staticOf(t), nil
	case reflect.Interface:
		return static{}, static{}, nil
	}
	return static{}, static{}, errNotRangeable(v.t)
}

func (c *checker) pipe(p *parse.PipeNode, dot static, declare bool) (static, error) {
	var final static
	has := false
	for _, cmd := range p.Cmds {
		v, err := c.command(cmd, dot, final, has)
		if err != nil {
			return static{}, err
		}
		final, has = v, true
	}
	if declare {
		for _, d := range p.Decl {
			name := d.Ident[0]
			if p.IsAssign {
				c.assignVar(name, final)
				continue
			}
			c.vars = append(c.vars, staticVar{name, final})
		}
	}
	return final, nil
}

// assignVar records an assignment; a variable whose type changes is known
// only at run time from then on.
func (c *checker) assignVar(name string, v static) {
	for i := len(c.vars) - 1; i >= 0; i-- {
		if c.vars[i].name == name {
			if c.vars[i].typ != v {
				c.vars[i].typ = static{}
			}
			return
		}
	}
}

func (c *checker) lookupVar(n parse.Node, name string) (static, error) {
	for i := len(c.vars) - 1; i >= 0; i-- {
		if c.vars[i].name == name {
			return c.vars[i].typ, nil
		}
	}
	return static{}, c.t.errorf(n, "undefined variable %s", name)
}

func (c *checker) command(cmd *parse.CommandNode, dot, final static, hasFinal bool) (static, error) {
	first := cmd.Args[0]
	if id, ok := first.(*parse.IdentifierNode); ok {
		return c.call(id, id.Ident, cmd.Args[1:], dot, final, hasFinal)
	}
	v, err := c.arg(first, dot)
	if err != nil {
		return static{}, err
	}
	if len(cmd.Args) > 1 || hasFinal {
		switch first.(type) {
		case *parse.FieldNode, *parse.ChainNode, *parse.VariableNode:
			return static{}, c.t.errorf(first, "%s is a field and takes no arguments; templates call no methods", first)
		}
		return static{}, c.t.errorf(first, "%s is not a function and takes no arguments", first)
	}
	return v, nil
}

func (c *checker) arg(n parse.Node, dot static) (static, error) {
	switch n := n.(type) {
	case *parse.DotNode:
		return dot, nil
	case *parse.NilNode:
		return static{isNil: true}, nil
	case *parse.BoolNode:
		return staticOf(boolType), nil
	case *parse.StringNode:
		return staticOf(stringType), nil
	case *parse.NumberNode:
		num, err := number(n)
		if err != nil {
			return static{}, c.t.errorf(n, "%v", err)
		}
		return static{t: num.value().Type(), konst: true}, nil
	case *parse.FieldNode:
		return c.fields(n, dot, n.Ident, "")
	case *parse.VariableNode:
		v, err := c.lookupVar(n, n.Ident[0])
		if err != nil {
			return static{}, err
		}
		return c.fields(n, v, n.Ident[1:], n.Ident[0])
	case *parse.ChainNode:
		v, err := c.arg(n.Node, dot)
		if err != nil {
			return static{}, err
		}
		return c.fields(n, v, n.Field, "("+n.Node.String()+")")
	case *parse.PipeNode:
		return c.pipe(n, dot, true)
	case *parse.IdentifierNode:
		return c.call(n, n.Ident, nil, dot, static{}, false)
	}
	return static{}, c.t.errorf(n, "unexpected %s", n)
}

// fields checks a chain of field names on a receiver; base is how the
// receiver is written ("" for dot, "$x", "(pipeline)").
func (c *checker) fields(n parse.Node, recv static, names []string, base string) (static, error) {
	v := recv
	for i, name := range names {
		if v.konst || v.isNil {
			return static{}, c.t.errorAt(fieldPos(n, i), "%s has no field %s", v, name)
		}
		if v.t == nil {
			return static{}, nil
		}
		fi, err := c.t.lookupField(derefType(v.t), name, receiverText(base, names[:i]))
		if err != nil {
			return static{}, c.t.errorAt(fieldPos(n, i), "%v", err)
		}
		v = staticOf(fi.typ)
	}
	return v, nil
}

// receiverText writes the receiver of field names[len(names)] as the
// template would: ".A.B", "$x.A", "." for dot.
func receiverText(base string, names []string) string {
	if base == "" {
		return "." + strings.Join(names, ".")
	}
	if len(names) == 0 {
		return base
	}
	return base + "." + strings.Join(names, ".")
}

func (c *checker) call(n parse.Node, name string, args []parse.Node, dot, final static, hasFinal bool) (static, error) {
	if b, ok := builtins[name]; ok {
		in := make([]static, 0, len(args)+1)
		for _, a := range args {
			v, err := c.arg(a, dot)
			if err != nil {
				return static{}, err
			}
			in = append(in, v)
		}
		if hasFinal {
			in = append(in, final)
		}
		out, err := b.check(in)
		if err != nil {
			return static{}, c.t.errorf(n, "%s: %v", name, err)
		}
		return out, nil
	}
	f, ok := c.t.funcs[name]
	if !ok {
		return static{}, c.t.errorf(n, "function %q is not defined; functions: %s", name, c.t.funcNames())
	}
	count := len(args)
	if hasFinal {
		count++
	}
	if err := checkCount(f.typ, count); err != nil {
		return static{}, c.t.errorf(n, "%s: %v", name, err)
	}
	for i, a := range args {
		v, err := c.arg(a, dot)
		if err != nil {
			return static{}, err
		}
		if pt := paramType(f.typ, i); !staticAssignable(v, pt) {
			return static{}, c.t.errorf(a, "argument %d of %s: have %s, want %s", i+1, name, v, pt)
		}
	}
	if hasFinal {
		if pt := paramType(f.typ, count-1); !staticAssignable(final, pt) {
			return static{}, c.t.errorf(n, "the value piped into %s: have %s, want %s", name, final, pt)
		}
	}
	return staticOf(f.typ.Out(0)), nil
}

// checkCount checks the number of arguments of a call.
func checkCount(ft reflect.Type, n int) error {
	in := ft.NumIn()
	if ft.IsVariadic() {
		if n < in-1 {
			return errArgs(n, "at least", in-1)
		}
		return nil
	}
	if n != in {
		return errArgs(n, "", in)
	}
	return nil
}

// paramType is the type of a function's i-th argument.
func paramType(ft reflect.Type, i int) reflect.Type {
	if ft.IsVariadic() && i >= ft.NumIn()-1 {
		return ft.In(ft.NumIn() - 1).Elem()
	}
	return ft.In(i)
}
