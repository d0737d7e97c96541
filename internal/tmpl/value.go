package tmpl

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	timeType     = reflect.TypeFor[time.Time]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
	intType      = reflect.TypeFor[int]()
	stringType   = reflect.TypeFor[string]()
	boolType     = reflect.TypeFor[bool]()
)

// fieldKey identifies a field lookup in a type.
type fieldKey struct {
	t    reflect.Type
	name string
}

// fieldInfo is a resolved field: a struct field's index path, or a map
// lookup, and the type of the result.
type fieldInfo struct {
	index []int // struct field; nil for a map
	isMap bool
	typ   reflect.Type
}

// derefType removes pointer levels from a type.
func derefType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// lookupField resolves name in a non-pointer, non-interface type. The
// error says why the field does not exist, with a hint for the usual
// method calls.
func (t *Template) lookupField(typ reflect.Type, name, recv string) (fieldInfo, error) {
	key := fieldKey{typ, name}
	if fi, ok := t.fields.Load(key); ok {
		return fi.(fieldInfo), nil
	}
	var fi fieldInfo
	path := recv + "." + name
	if recv == "." {
		path = "." + name
	}
	switch {
	case typ == timeType:
		return fi, fmt.Errorf("%s: a time has no fields%s", path, methodHint(name, recv))
	case typ.Kind() == reflect.Struct:
		sf, ok := typ.FieldByName(name)
		if !ok || !sf.IsExported() {
			hint := methodHint(name, recv)
			if hint == "" {
				hint = fieldList(typ)
			}
			return fi, fmt.Errorf("%s: %s has no field %s%s", path, typ, name, hint)
		}
		fi = fieldInfo{index: sf.Index, typ: sf.Type}
	case typ.Kind() == reflect.Map && typ.Key().Kind() == reflect.String:
		fi = fieldInfo{isMap: true, typ: typ.Elem()}
	default:
		return fi, fmt.Errorf("%s: %s has no fields%s", path, typ, methodHint(name, recv))
	}
	t.fields.Store(key, fi)
	return fi, nil
}

// methodHint suggests what replaces a method call, for the names of the
// methods templates used to call; other names get no hint.
func methodHint(name, recv string) string {
	const noMethods = "; templates call no methods: "
	switch name {
	case "Format":
		return fmt.Sprintf(noMethods+"use {{date \"2006-01-02\" %s}}", recv)
	case "IsZero":
		return fmt.Sprintf(noMethods+"use {{if %s}} (a zero time or an empty value is false)", recv)
	case "String":
		return fmt.Sprintf(noMethods+"print the value itself: {{%s}}", recv)
	case "UTC", "Local", "In", "Unix", "Year", "Month", "Day", "Hour", "Minute", "Weekday":
		return fmt.Sprintf(noMethods+"format the time with {{date \"2006-01-02 15:04 MST\" %s}}", recv)
	}
	return ""
}

// fieldList names the exported fields of a struct, for an error message.
func fieldList(t reflect.Type) string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() {
			names = append(names, f.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return "; its fields are " + strings.Join(names, ", ") + " (templates read fields and call no methods)"
}

// indirect removes pointer and interface levels. It returns an invalid
// value for a nil interface and the nil pointer itself (isNil true) for a
// nil pointer.
func indirect(v reflect.Value) (reflect.Value, bool) {
	for v.IsValid() {
		switch v.Kind() {
		case reflect.Interface:
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
			continue
		case reflect.Pointer:
			if v.IsNil() {
				return v, true
			}
			v = v.Elem()
			continue
		}
		return v, false
	}
	return v, false
}

// truth reports whether a value is true in if, with, and, or and not.
func truth(v reflect.Value) bool {
	if !v.IsValid() {
		return false
	}
	switch v.Kind() {
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() != 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() != 0
	case reflect.Float32, reflect.Float64:
		return v.Float() != 0
	case reflect.Complex64, reflect.Complex128:
		return v.Complex() != 0
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array, reflect.Chan:
		return v.Len() > 0
	case reflect.Interface:
		return !v.IsNil() && truth(v.Elem())
	case reflect.Pointer, reflect.Func, reflect.UnsafePointer:
		return !v.IsNil()
	case reflect.Struct:
		return !v.IsZero()
	}
	return true
}

// Print formats a value by the printing rules of the package doc: it is
// what an action such as {{.Subject}} writes. Registered functions may use
// it to format their arguments the same way.
func Print(v any) (string, error) {
	return printValue(reflect.ValueOf(v))
}

func printValue(v reflect.Value) (string, error) {
	if s, ok, err := printScalar(v); ok || err != nil {
		return s, err
	}
	v, _ = indirect(v)
	if v.Kind() == reflect.Slice || v.Kind() == reflect.Array {
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return "", fmt.Errorf("cannot print %s (bytes)", v.Type())
		}
		parts := make([]string, 0, v.Len())
		for i := range v.Len() {
			s, ok, err := printScalar(v.Index(i))
			if err != nil {
				return "", err
			}
			if !ok {
				return "", fmt.Errorf("cannot print %s: print a field of its elements inside range, or use join", v.Type())
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ", "), nil
	}
	return "", fmt.Errorf("cannot print %s: print one of its fields", v.Type())
}

// printScalar prints a value that is not a list; ok is false for lists and
// other values it does not print.
func printScalar(v reflect.Value) (string, bool, error) {
	if !v.IsValid() {
		return "", true, nil
	}
	if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return "", true, nil
	}
	if v.Kind() == reflect.Interface {
		return printScalar(v.Elem())
	}
	if v.Type() == timeType {
		tm := v.Interface().(time.Time)
		if tm.IsZero() {
			return "", true, nil
		}
		return tm.Format(time.RFC3339), true, nil
	}
	if v.CanInterface() {
		if s, ok := v.Interface().(fmt.Stringer); ok {
			return s.String(), true, nil
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		return printScalar(v.Elem())
	case reflect.String:
		return v.String(), true, nil
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(v.Uint(), 10), true, nil
	case reflect.Float32:
		return strconv.FormatFloat(v.Float(), 'g', -1, 32), true, nil
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), true, nil
	}
	return "", false, nil
}

// printableType reports whether values of a static type can be printed;
// nil (a type known only at run time) is checked at run time.
func printableType(t reflect.Type) bool {
	if t == nil || scalarType(t) {
		return true
	}
	d := derefType(t)
	if d.Kind() == reflect.Slice || d.Kind() == reflect.Array {
		if d.Kind() == reflect.Slice && d.Elem().Kind() == reflect.Uint8 {
			return false
		}
		return scalarType(d.Elem())
	}
	return false
}

// scalarType reports whether printScalar prints values of a type.
func scalarType(t reflect.Type) bool {
	if t.Kind() == reflect.Interface {
		return true
	}
	if t == timeType || t.Implements(stringerType) {
		return true
	}
	if t.Kind() == reflect.Pointer {
		return scalarType(t.Elem())
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// nilable reports whether a type has a nil value.
func nilable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map, reflect.Func, reflect.Chan:
		return true
	}
	return false
}

func isNumberKind(k reflect.Kind) bool {
	return isIntKind(k) || isUintKind(k) || k == reflect.Float32 || k == reflect.Float64
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}

func isUintKind(k reflect.Kind) bool {
	switch k {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// assign converts v for a parameter of type pt: as it is when assignable,
// through pointers and interfaces otherwise. A missing value (nil) becomes
// the parameter type's zero value.
func assign(v reflect.Value, pt reflect.Type) (reflect.Value, error) {
	for {
		if !v.IsValid() {
			return reflect.Zero(pt), nil
		}
		if v.Type().AssignableTo(pt) {
			return v, nil
		}
		switch v.Kind() {
		case reflect.Interface, reflect.Pointer:
			if v.IsNil() {
				return reflect.Zero(pt), nil
			}
			v = v.Elem()
			continue
		}
		return reflect.Value{}, fmt.Errorf("have %s, want %s", v.Type(), pt)
	}
}

// staticAssignable reports whether a value of static type at can be
// passed for a parameter of type pt (nil at: checked at run time).
func staticAssignable(at static, pt reflect.Type) bool {
	switch {
	case at.isNil:
		return nilable(pt)
	case at.konst:
		return pt.Kind() == reflect.Interface || isNumberKind(pt.Kind())
	case at.t == nil:
		return true
	}
	for t := at.t; ; t = t.Elem() {
		if t.AssignableTo(pt) || t.Kind() == reflect.Interface {
			return true
		}
		if t.Kind() != reflect.Pointer {
			return false
		}
	}
}

// numberConst converts a number constant of the template for a parameter
// of type pt.
func numberConst(n numberValue, pt reflect.Type) (reflect.Value, error) {
	k := pt.Kind()
	switch {
	case k == reflect.Interface:
		return n.value(), nil
	case isIntKind(k):
		if !n.isInt {
			return reflect.Value{}, fmt.Errorf("%s is not an integer", n.text)
		}
		v := reflect.New(pt).Elem()
		if v.OverflowInt(n.i) {
			return reflect.Value{}, fmt.Errorf("%s overflows %s", n.text, pt)
		}
		v.SetInt(n.i)
		return v, nil
	case isUintKind(k):
		if !n.isInt || n.i < 0 {
			return reflect.Value{}, fmt.Errorf("%s is not a non-negative integer", n.text)
		}
		v := reflect.New(pt).Elem()
		if v.OverflowUint(uint64(n.i)) {
			return reflect.Value{}, fmt.Errorf("%s overflows %s", n.text, pt)
		}
		v.SetUint(uint64(n.i))
		return v, nil
	case k == reflect.Float32 || k == reflect.Float64:
		v := reflect.New(pt).Elem()
		v.SetFloat(n.f)
		return v, nil
	}
	return reflect.Value{}, fmt.Errorf("have a number, want %s", pt)
}

// numberValue is a number constant written in a template.
type numberValue struct {
	text  string
	isInt bool
	i     int64
	f     float64
}

func (n numberValue) value() reflect.Value {
	if n.isInt {
		return reflect.ValueOf(int(n.i))
	}
	return reflect.ValueOf(n.f)
}

// compareKind classifies values for eq, ne, lt, le, gt and ge.
type compareKind int

const (
	cmpOther compareKind = iota
	cmpBool
	cmpInt
	cmpUint
	cmpFloat
	cmpString
)

func kindOf(t reflect.Type) compareKind {
	switch k := t.Kind(); {
	case k == reflect.Bool:
		return cmpBool
	case isIntKind(k):
		return cmpInt
	case isUintKind(k):
		return cmpUint
	case k == reflect.Float32 || k == reflect.Float64:
		return cmpFloat
	case k == reflect.String:
		return cmpString
	}
	return cmpOther
}

// compare orders a and b: -1, 0 or 1. ordered is false when the values
// can only be tested for equality.
func compare(a, b reflect.Value) (c int, ordered bool, err error) {
	a, _ = indirectValue(a)
	b, _ = indirectValue(b)
	if !a.IsValid() || !b.IsValid() {
		if !a.IsValid() && !b.IsValid() {
			return 0, false, nil
		}
		return 1, false, nil
	}
	ka, kb := kindOf(a.Type()), kindOf(b.Type())
	numeric := func(k compareKind) bool { return k == cmpInt || k == cmpUint || k == cmpFloat }
	switch {
	case numeric(ka) && numeric(kb):
		return compareNumbers(a, ka, b, kb), true, nil
	case ka == cmpString && kb == cmpString:
		return strings.Compare(a.String(), b.String()), true, nil
	case ka == cmpBool && kb == cmpBool:
		if a.Bool() == b.Bool() {
			return 0, false, nil
		}
		return 1, false, nil
	case ka == cmpOther && a.Type() == b.Type() && a.Type().Comparable():
		if a.Interface() == b.Interface() {
			return 0, false, nil
		}
		return 1, false, nil
	}
	return 0, false, fmt.Errorf("cannot compare %s with %s", a.Type(), b.Type())
}

// indirectValue removes interface levels only: pointers compare as
// pointers except nil, which is missing.
func indirectValue(v reflect.Value) (reflect.Value, bool) {
	for v.IsValid() && v.Kind() == reflect.Interface {
		if v.IsNil() {
			return reflect.Value{}, false
		}
		v = v.Elem()
	}
	if v.IsValid() && v.Kind() == reflect.Pointer && v.IsNil() {
		return reflect.Value{}, false
	}
	return v, true
}

func compareNumbers(a reflect.Value, ka compareKind, b reflect.Value, kb compareKind) int {
	switch {
	case ka == cmpInt && kb == cmpInt:
		return cmp3(a.Int(), b.Int())
	case ka == cmpUint && kb == cmpUint:
		return cmp3(a.Uint(), b.Uint())
	case ka == cmpInt && kb == cmpUint:
		if a.Int() < 0 {
			return -1
		}
		return cmp3(uint64(a.Int()), b.Uint())
	case ka == cmpUint && kb == cmpInt:
		if b.Int() < 0 {
			return 1
		}
		return cmp3(a.Uint(), uint64(b.Int()))
	}
	return cmp3(asFloat(a, ka), asFloat(b, kb))
}

func asFloat(v reflect.Value, k compareKind) float64 {
	switch k {
	case cmpInt:
		return float64(v.Int())
	case cmpUint:
		return float64(v.Uint())
	}
	return v.Float()
}

func cmp3[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// staticComparable reports whether eq and the ordering functions accept
// two static types; ordered asks for lt, le, gt, ge.
func staticComparable(a, b static, ordered bool) bool {
	if a.t == nil && !a.konst || b.t == nil && !b.konst || a.isNil || b.isNil {
		return true
	}
	ka, kb := cmpFloat, cmpFloat
	if !a.konst {
		ka = kindOf(derefType(a.t))
	}
	if !b.konst {
		kb = kindOf(derefType(b.t))
	}
	numeric := func(k compareKind) bool { return k == cmpInt || k == cmpUint || k == cmpFloat }
	switch {
	case numeric(ka) && numeric(kb), ka == cmpString && kb == cmpString:
		return true
	case ordered:
		return false
	case ka == cmpBool && kb == cmpBool:
		return true
	case ka == cmpOther && kb == cmpOther:
		return derefType(a.t) == derefType(b.t) && derefType(a.t).Comparable()
	}
	return false
}

// sortedKeys returns a map's keys in order (strings, or numbers).
func sortedKeys(m reflect.Value) []reflect.Value {
	keys := m.MapKeys()
	sort.Slice(keys, func(i, j int) bool {
		c, _, err := compare(keys[i], keys[j])
		if err != nil {
			return false
		}
		return c < 0
	})
	return keys
}

func sortStrings(s []string) { sort.Strings(s) }
