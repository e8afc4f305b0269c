// Package finitejson encodes values as JSON with every non-finite float (NaN, ±Inf, which
// encoding/json refuses) written as null, and reports where those were, so that one bad figure
// neither loses a whole report nor passes unnoticed.
package finitejson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
)

// Sanitize returns a copy of v, as a tree of values encoding/json encodes exactly as it would
// encode v (struct field names, omitempty and "-" tags, embedded structs, Marshalers), except that
// every NaN or infinite float is nil; nulls lists the JSON paths of those (e.g.
// "methods[2].reward"), in encoding order.
func Sanitize(v any) (tree any, nulls []string, err error) {
	w := &walker{}
	tree, err = w.walk(reflect.ValueOf(v), "")
	return tree, w.nulls, err
}

// MarshalIndent is json.MarshalIndent of Sanitize(v).
func MarshalIndent(v any, prefix, indent string) ([]byte, []string, error) {
	tree, nulls, err := Sanitize(v)
	if err != nil {
		return nil, nil, err
	}
	data, err := json.MarshalIndent(tree, prefix, indent)
	return data, nulls, err
}

// Note is the one line saying which figures were written as null ("" when none): the first few
// paths and how many more.
func Note(nulls []string) string {
	if len(nulls) == 0 {
		return ""
	}
	shown := nulls
	if len(shown) > 5 {
		shown = shown[:5]
	}
	more := ""
	if len(nulls) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(nulls)-len(shown))
	}
	return fmt.Sprintf("%d figure(s) were not finite (NaN or Inf) and are written as null: %s%s",
		len(nulls), strings.Join(shown, ", "), more)
}

type walker struct{ nulls []string }

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func (w *walker) walk(v reflect.Value, path string) (any, error) {
	if !v.IsValid() {
		return nil, nil
	}
	if v.Type().Implements(marshalerType) || v.Type().Implements(textMarshalerType) {
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return nil, nil
		}
		b, err := json.Marshal(v.Interface())
		return json.RawMessage(b), err
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, nil
		}
		return w.walk(v.Elem(), path)
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			w.nulls = append(w.nulls, strings.TrimPrefix(path, "."))
			return nil, nil
		}
		if v.Kind() == reflect.Float32 {
			return float32(f), nil
		}
		return f, nil
	case reflect.Struct:
		return w.object(v, path)
	case reflect.Map:
		return w.mapping(v, path)
	case reflect.Slice:
		if v.IsNil() {
			return nil, nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Interface(), nil
		}
		fallthrough
	case reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			x, err := w.walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
	return v.Interface(), nil
}

func (w *walker) mapping(v reflect.Value, path string) (any, error) {
	if v.IsNil() {
		return nil, nil
	}
	out := map[string]any{}
	keys := v.MapKeys()
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = keyString(k)
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return names[order[a]] < names[order[b]] })
	for _, i := range order {
		x, err := w.walk(v.MapIndex(keys[i]), path+"."+names[i])
		if err != nil {
			return nil, err
		}
		out[names[i]] = x
	}
	return out, nil
}

func keyString(k reflect.Value) string {
	if k.Kind() == reflect.String {
		return k.String()
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		if b, err := tm.MarshalText(); err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(k.Interface())
}

// object is a JSON object with its keys in struct order.
type object []member

type member struct {
	key string
	val any
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		val, err := json.Marshal(m.val)
		if err != nil {
			return nil, err
		}
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (w *walker) object(v reflect.Value, path string) (any, error) {
	var out object
	if err := w.fields(v, path, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = object{}
	}
	return out, nil
}

// fields appends v's JSON members to out, following encoding/json's tag rules (embedded untagged
// structs are inlined; conflicts between them are not resolved, as the toolkit's types have none).
func (w *walker) fields(v reflect.Value, path string, out *object) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv, ft = fv.Elem(), ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if err := w.fields(fv, path, out); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.Contains(","+opts+",", ",omitempty,") && isEmpty(fv) {
			continue
		}
		x, err := w.walk(fv, path+"."+name)
		if err != nil {
			return err
		}
		*out = append(*out, member{name, x})
	}
	return nil
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}
