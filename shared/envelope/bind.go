package envelope

import (
	"encoding"
	stdjson "encoding/json"
	"io"
	"reflect"
	"strings"

	json "github.com/go-json-experiment/json"
)

// The warm path reads an input once: the rules are checked and the Go value
// filled in the same pass over the tokens (fill). It covers what the
// functions' inputs are made of (strings, booleans, int64, pointers,
// slices, structs, and types with an UnmarshalJSON method) and places each
// value exactly as json.Unmarshal with typedOptions would. Whatever it does
// not cover, or any refusal, makes it give up; DecodeInput then reads the
// body the long way (the rules, then json.Unmarshal), which also explains a
// refusal, so every message is the one it has always been. A test holds the
// two ways to the same value on every function's generated corpus and under
// fuzzing.

type bindKind uint8

const (
	bindString bindKind = iota + 1
	bindBool
	bindInt64
	bindUnmarshaler // an UnmarshalJSON method (json v1's interface)
	bindPointer
	bindSlice
	bindStruct
)

// binder says how to fill one Go type.
type binder struct {
	kind   bindKind
	typ    reflect.Type
	elem   *binder           // pointer, slice
	fields map[string]bfield // struct: member name (exact) → field
}

type bfield struct {
	index int
	b     *binder
}

var (
	typeInt64         = reflect.TypeFor[int64]()
	typeUnmarshaler   = reflect.TypeFor[stdjson.Unmarshaler]()
	typeUnmarshalerV2 = reflect.TypeFor[json.UnmarshalerFrom]()
	typeText          = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// newBinder builds t's binder, or nil when some part of t is filled in a way
// fill does not copy (a map, an interface, a float, a tag option that
// changes decoding, an embedded struct): the long way then reads it.
func newBinder(t reflect.Type) *binder {
	return buildBinder(t, map[reflect.Type]*binder{})
}

func buildBinder(t reflect.Type, seen map[reflect.Type]*binder) *binder {
	if b, ok := seen[t]; ok {
		return b // a recursive type: its binder is being built
	}
	pt := reflect.PointerTo(t)
	switch {
	case pt.Implements(typeUnmarshalerV2) || pt.Implements(typeText):
		return nil
	case pt.Implements(typeUnmarshaler):
		return &binder{kind: bindUnmarshaler, typ: t}
	}
	switch t.Kind() {
	case reflect.String:
		return &binder{kind: bindString, typ: t}
	case reflect.Bool:
		return &binder{kind: bindBool, typ: t}
	case reflect.Int64:
		if t != typeInt64 {
			return nil // unmarshalInt64 takes int64 itself, not a named type
		}
		return &binder{kind: bindInt64, typ: t}
	case reflect.Pointer, reflect.Slice:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return nil // []byte is base64 text
		}
		b := &binder{kind: bindPointer, typ: t}
		if t.Kind() == reflect.Slice {
			b.kind = bindSlice
		}
		seen[t] = b
		if b.elem = buildBinder(t.Elem(), seen); b.elem == nil {
			return nil
		}
		return b
	case reflect.Struct:
		b := &binder{kind: bindStruct, typ: t, fields: map[string]bfield{}}
		seen[t] = b
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				return nil
			}
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" && opts == "" {
				continue
			}
			for _, o := range strings.Split(opts, ",") {
				if o != "" && o != "omitempty" && o != "omitzero" {
					return nil // string, case:…, inline, unknown, format:…
				}
			}
			if strings.HasPrefix(name, "'") {
				return nil
			}
			if name == "" {
				name = f.Name
			}
			fb := buildBinder(f.Type, seen)
			if fb == nil {
				return nil
			}
			b.fields[name] = bfield{index: i, b: fb}
		}
		return b
	}
	return nil
}

// binderFor is the binder of v's type, built once per schema and type (nil
// when fill cannot fill it).
func (s *Schema) binderFor(t reflect.Type) *binder {
	if b, ok := s.base.binders.Load(t); ok {
		return b.(*binder)
	}
	b, _ := s.base.binders.LoadOrStore(t, newBinder(t))
	return b.(*binder)
}

// decode is the one pass: true when the rules accept trimmed (a body that
// starts with '{') and v (a pointer) holds its value. On false, the fields
// fill may have set are zeroed again, and the caller reads the body the
// long way.
func (s *Schema) decode(trimmed []byte, v any) bool {
	pv := reflect.ValueOf(v)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return false
	}
	b := s.binderFor(pv.Type().Elem())
	if b == nil || b.kind != bindStruct {
		return false
	}
	st := s.streamer(trimmed)
	defer s.pool.Put(st)
	dst := pv.Elem()
	st.ignore = s.ignoreUnknown
	if st.fill(s.rules, b, dst) {
		if _, err := st.dec.ReadToken(); err == io.EOF {
			return true
		}
	}
	for _, f := range b.fields {
		dst.Field(f.index).SetZero()
	}
	return false
}

// fill checks one value against r (nil: anything), as stream does, and
// stores it in v as json.Unmarshal would (ignore: with members the type does
// not name skipped, the UnknownIgnore policy). False: refused, malformed, too
// deep, or not a value fill places itself.
func (st *streamer) fill(r *rule, b *binder, v reflect.Value) bool {
	dec, scratch, ignore := st.dec, &st.scratch, st.ignore
	k := dec.PeekKind()
	if b.kind == bindPointer {
		if k == 'n' {
			_, err := dec.ReadToken()
			v.SetZero()
			return err == nil && r.allows(tNull)
		}
		if v.IsNil() {
			v.Set(reflect.New(b.typ.Elem()))
		}
		return st.fill(r, b.elem, v.Elem())
	}
	switch k {
	case '{':
		if b.kind != bindStruct || !r.allows(tObject) {
			return false
		}
		if _, err := dec.ReadToken(); err != nil || dec.StackDepth() > MaxDepth {
			return false
		}
		var seen uint64
		for dec.PeekKind() != '}' {
			raw, err := dec.ReadValue()
			if err != nil {
				return false
			}
			name := unquote(raw, scratch)
			var sub *rule
			known := false
			if r != nil {
				sub, known = r.props[string(name)]
				if known && r.nullAbsent && dec.PeekKind() == 'n' {
					if _, err := dec.ReadToken(); err != nil {
						return false
					}
					continue // as if not sent, as stream reads it
				}
				if bit, req := r.required[string(name)]; req {
					seen |= 1 << bit
				}
				if !known && (r.closed || r.foldsTo(string(name)) != "") {
					return false
				}
			}
			f, ok := b.fields[string(name)]
			switch {
			case ok:
				if !st.fill(sub, f.b, v.Field(f.index)) {
					return false
				}
			case known:
				return false // a member the schema names and the type does not: the long way says so
			case !ignore:
				return false // json.Unmarshal refuses a member the type does not name
			default:
				// A member neither names, under the ignore policy: skipped
				// by the rules and by json.Unmarshal alike, but still held
				// to MaxDepth, as precheck holds the whole body.
				raw, err := dec.ReadValue()
				if err != nil || dec.StackDepth()+depth(raw) > MaxDepth {
					return false
				}
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return false
		}
		return r == nil || r.nRequired == 0 || seen == 1<<r.nRequired-1
	case '[':
		if b.kind != bindSlice || !r.allows(tArray) || !v.IsNil() {
			return false
		}
		if _, err := dec.ReadToken(); err != nil || dec.StackDepth() > MaxDepth {
			return false
		}
		var item *rule
		if r != nil && r.itemsExist {
			item = r.items
		}
		v.Set(reflect.MakeSlice(b.typ, 0, 0)) // [] is an empty slice, not nil
		for n := 0; dec.PeekKind() != ']'; n++ {
			if n == v.Cap() {
				v.Grow(1)
			}
			v.SetLen(n + 1)
			if !st.fill(item, b.elem, v.Index(n)) {
				return false
			}
		}
		_, err := dec.ReadToken()
		return err == nil
	case '"':
		raw, err := dec.ReadValue()
		if err != nil || !r.allows(tString) {
			return false
		}
		s := unquote(raw, scratch)
		if r != nil && !r.text(s) {
			return false
		}
		switch b.kind {
		case bindString:
			v.SetString(st.strs.make(s))
			return true
		case bindUnmarshaler:
			return unmarshalRaw(v, raw)
		}
		return false
	case '0':
		raw, err := dec.ReadValue()
		if err != nil || (r != nil && !r.number(raw)) {
			return false
		}
		switch b.kind {
		case bindInt64:
			n, ok := plainInt(raw)
			if !ok {
				if n, ok = exactInt64(string(raw)); !ok {
					return false
				}
			}
			v.SetInt(n)
			return true
		case bindUnmarshaler:
			return unmarshalRaw(v, raw)
		}
		return false
	case 't', 'f':
		raw, err := dec.ReadValue()
		if err != nil || !r.allows(tBoolean) {
			return false
		}
		switch b.kind {
		case bindBool:
			v.SetBool(k == 't')
			return true
		case bindUnmarshaler:
			return unmarshalRaw(v, raw)
		}
		return false
	case 'n':
		_, err := dec.ReadToken()
		if err != nil || !r.allows(tNull) || b.kind == bindUnmarshaler {
			return false
		}
		v.SetZero() // null stores the zero value
		return true
	}
	return false
}

// allows reports whether r takes a value of kind t (a nil rule takes any).
func (r *rule) allows(t uint8) bool {
	return r == nil || r.types == 0 || r.types&t != 0
}

func unmarshalRaw(v reflect.Value, raw []byte) bool {
	u, ok := v.Addr().Interface().(stdjson.Unmarshaler)
	return ok && u.UnmarshalJSON(raw) == nil
}

// strCache keeps the short strings a pooled streamer made, so a value
// callers send again and again (a courier code, a warehouse) is not
// allocated on every call, as json v2's own decoder does for short strings.
// Strings are immutable, so one is safely shared by every value given it.
type strCache [64]string

func (c *strCache) make(b []byte) string {
	if len(b) == 0 || len(b) > 16 {
		return string(b)
	}
	h := uint(len(b))
	for _, x := range b {
		h = h*31 + uint(x)
	}
	e := &c[h%uint(len(c))]
	if *e != string(b) { // compared without allocating
		*e = string(b)
	}
	return *e
}
