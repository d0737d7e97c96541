package tmpl

import (
	"errors"
	"fmt"
	"reflect"
	"text/template/parse"
)

// errBreak and errContinue carry {{break}} and {{continue}} up to the
// enclosing range.
var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

// state is one execution.
type state struct {
	t    *Template
	w    Writer
	out  int
	iter int
	vars []runtimeVar
}

type runtimeVar struct {
	name  string
	value reflect.Value
}

func (s *state) list(l *parse.ListNode, dot reflect.Value) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := s.node(n, dot); err != nil {
			return err
		}
	}
	return nil
}

func (s *state) node(n parse.Node, dot reflect.Value) error {
	switch n := n.(type) {
	case *parse.TextNode:
		return s.write(n, s.t.texts[n], false)
	case *parse.CommentNode:
		return nil
	case *parse.BreakNode:
		return errBreak
	case *parse.ContinueNode:
		return errContinue
	case *parse.ListNode:
		return s.list(n, dot)
	case *parse.ActionNode:
		v, err := s.pipe(n.Pipe, dot, true)
		if err != nil || len(n.Pipe.Decl) > 0 {
			return err
		}
		text, err := printValue(v)
		if err != nil {
			return s.t.errorf(n, "%s: %v", n.Pipe, err)
		}
		return s.write(n, text, true)
	case *parse.IfNode:
		mark := len(s.vars)
		defer func() { s.vars = s.vars[:mark] }()
		v, err := s.pipe(n.Pipe, dot, true)
		if err != nil {
			return err
		}
		if truth(v) {
			return s.list(n.List, dot)
		}
		return s.list(n.ElseList, dot)
	case *parse.WithNode:
		mark := len(s.vars)
		defer func() { s.vars = s.vars[:mark] }()
		v, err := s.pipe(n.Pipe, dot, true)
		if err != nil {
			return err
		}
		if truth(v) {
			return s.list(n.List, v)
		}
		return s.list(n.ElseList, dot)
	case *parse.RangeNode:
		return s.rangeNode(n, dot)
	}
	return s.t.errorf(n, "unsupported %s", n)
}

func (s *state) write(n parse.Node, text string, value bool) error {
	if len(text) > s.t.maxOut-s.out {
		return s.t.wrapf(n, ErrOutputLimit, "more than %d bytes", s.t.maxOut)
	}
	s.out += len(text)
	var err error
	if value {
		err = s.w.WriteValue(text)
	} else {
		err = s.w.WriteText(text)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.t.where(n), err)
	}
	return nil
}

func (s *state) rangeNode(n *parse.RangeNode, dot reflect.Value) error {
	mark := len(s.vars)
	defer func() { s.vars = s.vars[:mark] }()
	v, err := s.pipe(n.Pipe, dot, false)
	if err != nil {
		return err
	}
	ran := false
	each := func(key, elem reflect.Value) (stop bool, err error) {
		ran = true
		s.iter++
		if s.iter > s.t.maxIter {
			return true, s.t.wrapf(n, ErrIterationLimit, "more than %d iterations", s.t.maxIter)
		}
		inner := len(s.vars)
		switch len(n.Pipe.Decl) {
		case 1:
			s.vars = append(s.vars, runtimeVar{n.Pipe.Decl[0].Ident[0], elem})
		case 2:
			s.vars = append(s.vars, runtimeVar{n.Pipe.Decl[0].Ident[0], key}, runtimeVar{n.Pipe.Decl[1].Ident[0], elem})
		}
		err = s.list(n.List, elem)
		s.vars = s.vars[:inner]
		switch {
		case errors.Is(err, errBreak):
			return true, nil
		case errors.Is(err, errContinue):
			return false, nil
		}
		return err != nil, err
	}
	x, isNil := indirect(v)
	if x.IsValid() && !isNil {
		switch x.Kind() {
		case reflect.Slice, reflect.Array:
			for i := range x.Len() {
				if stop, err := each(reflect.ValueOf(i), x.Index(i)); stop || err != nil {
					return err
				}
			}
		case reflect.Map:
			for _, k := range sortedKeys(x) {
				if stop, err := each(k, x.MapIndex(k)); stop || err != nil {
					return err
				}
			}
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			for i := int64(0); i < x.Int(); i++ {
				iv := reflect.New(x.Type()).Elem()
				iv.SetInt(i)
				if stop, err := each(iv, iv); stop || err != nil {
					return err
				}
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			for i := uint64(0); i < x.Uint(); i++ {
				iv := reflect.New(x.Type()).Elem()
				iv.SetUint(i)
				if stop, err := each(iv, iv); stop || err != nil {
					return err
				}
			}
		default:
			return s.t.errorf(n, "range over %s: %v", n.Pipe, errNotRangeable(x.Type()))
		}
	}
	if !ran {
		return s.list(n.ElseList, dot)
	}
	return nil
}

func (s *state) pipe(p *parse.PipeNode, dot reflect.Value, declare bool) (reflect.Value, error) {
	var final reflect.Value
	has := false
	for _, cmd := range p.Cmds {
		v, err := s.command(cmd, dot, final, has)
		if err != nil {
			return reflect.Value{}, err
		}
		final, has = v, true
	}
	if declare {
		for _, d := range p.Decl {
			name := d.Ident[0]
			if p.IsAssign {
				s.setVar(name, final)
				continue
			}
			s.vars = append(s.vars, runtimeVar{name, final})
		}
	}
	return final, nil
}

func (s *state) setVar(name string, v reflect.Value) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			s.vars[i].value = v
			return
		}
	}
}

func (s *state) lookupVar(n parse.Node, name string) (reflect.Value, error) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return s.vars[i].value, nil
		}
	}
	return reflect.Value{}, s.t.errorf(n, "undefined variable %s", name)
}

func (s *state) command(cmd *parse.CommandNode, dot, final reflect.Value, hasFinal bool) (reflect.Value, error) {
	first := cmd.Args[0]
	if id, ok := first.(*parse.IdentifierNode); ok {
		return s.call(id, id.Ident, cmd.Args[1:], dot, final, hasFinal)
	}
	if len(cmd.Args) > 1 || hasFinal {
		return reflect.Value{}, s.t.errorf(first, "%s is not a function and takes no arguments", first)
	}
	return s.arg(first, dot)
}

func (s *state) arg(n parse.Node, dot reflect.Value) (reflect.Value, error) {
	switch n := n.(type) {
	case *parse.DotNode:
		return dot, nil
	case *parse.NilNode:
		return reflect.Value{}, nil
	case *parse.BoolNode:
		return reflect.ValueOf(n.True), nil
	case *parse.StringNode:
		return reflect.ValueOf(n.Text), nil
	case *parse.NumberNode:
		num, err := number(n)
		if err != nil {
			return reflect.Value{}, s.t.errorf(n, "%v", err)
		}
		return num.value(), nil
	case *parse.FieldNode:
		return s.fields(n, dot, n.Ident, "")
	case *parse.VariableNode:
		v, err := s.lookupVar(n, n.Ident[0])
		if err != nil {
			return reflect.Value{}, err
		}
		return s.fields(n, v, n.Ident[1:], n.Ident[0])
	case *parse.ChainNode:
		v, err := s.arg(n.Node, dot)
		if err != nil {
			return reflect.Value{}, err
		}
		return s.fields(n, v, n.Field, "("+n.Node.String()+")")
	case *parse.PipeNode:
		return s.pipe(n, dot, true)
	case *parse.IdentifierNode:
		return s.call(n, n.Ident, nil, dot, reflect.Value{}, false)
	}
	return reflect.Value{}, s.t.errorf(n, "unexpected %s", n)
}

// fields reads a chain of fields. A missing value stays missing, and a
// field of a nil pointer or a missing map entry is the field's zero value,
// so absent parts of the data print as "".
func (s *state) fields(n parse.Node, recv reflect.Value, names []string, base string) (reflect.Value, error) {
	v := recv
	for i, name := range names {
		x, isNil := indirect(v)
		if !x.IsValid() {
			return reflect.Value{}, nil
		}
		fi, err := s.t.lookupField(derefType(x.Type()), name, receiverText(base, names[:i]))
		if err != nil {
			return reflect.Value{}, s.t.errorAt(fieldPos(n, i), "%v", err)
		}
		switch {
		case isNil:
			v = reflect.Zero(fi.typ)
		case fi.isMap:
			v = x.MapIndex(reflect.ValueOf(name).Convert(x.Type().Key()))
			if !v.IsValid() {
				v = reflect.Zero(fi.typ)
			}
		default:
			if v, err = x.FieldByIndexErr(fi.index); err != nil {
				v = reflect.Zero(fi.typ)
			}
		}
	}
	return v, nil
}

func (s *state) call(n parse.Node, name string, args []parse.Node, dot, final reflect.Value, hasFinal bool) (reflect.Value, error) {
	count := len(args)
	if hasFinal {
		count++
	}
	if b, ok := builtins[name]; ok {
		v, err := b.run(count, func(i int) (reflect.Value, error) {
			if i < len(args) {
				return s.arg(args[i], dot)
			}
			return final, nil
		})
		if err != nil {
			return reflect.Value{}, s.t.wrapf(n, err, "%s", name)
		}
		return v, nil
	}
	f, ok := s.t.funcs[name]
	if !ok {
		return reflect.Value{}, s.t.errorf(n, "function %q is not defined", name)
	}
	if err := checkCount(f.typ, count); err != nil {
		return reflect.Value{}, s.t.wrapf(n, err, "%s", name)
	}
	in := make([]reflect.Value, 0, count)
	for i, a := range args {
		pt := paramType(f.typ, i)
		var v reflect.Value
		var err error
		if num, ok := a.(*parse.NumberNode); ok {
			var nv numberValue
			if nv, err = number(num); err == nil {
				v, err = numberConst(nv, pt)
			}
		} else if v, err = s.arg(a, dot); err == nil {
			v, err = assign(v, pt)
		}
		if err != nil {
			return reflect.Value{}, s.t.wrapf(a, err, "argument %d of %s", i+1, name)
		}
		in = append(in, v)
	}
	if hasFinal {
		v, err := assign(final, paramType(f.typ, count-1))
		if err != nil {
			return reflect.Value{}, s.t.wrapf(n, err, "the value piped into %s", name)
		}
		in = append(in, v)
	}
	out := f.fn.Call(in)
	if len(out) == 2 && !out[1].IsNil() {
		return reflect.Value{}, s.t.wrapf(n, out[1].Interface().(error), "%s", name)
	}
	return out[0], nil
}
