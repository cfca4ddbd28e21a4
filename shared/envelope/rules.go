package envelope

import (
	"bytes"
	stdjson "encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// rule is one schema node compiled for the envelope. The warm path checks
// the rules while the body streams through the tokenizer, once, without
// building a document; only a refusal parses the body into a document and
// walks it (collect) to say which rule broke and where. A general JSON Schema
// library would cost every cold start its package init and every call its
// allocations, so the functions do not link one: the tests hold these rules
// to santhosh-tekuri/jsonschema's verdicts on every function's generated
// corpus and under fuzzing.
type rule struct {
	types      uint8    // bit set of kinds; 0: any
	typeNames  []string // as the schema writes them, for messages
	minLen     int      // -1: none
	maxLen     int      // -1: none
	pattern    *regexp.Regexp
	min, max   *bound
	multipleOf *big.Rat

	intFast bool // every integer can be checked against int64 bounds alone

	props      map[string]*rule
	required   map[string]uint // name → bit
	reqOrder   []string        // the schema's order, for messages
	nRequired  int
	closed     bool // additionalProperties: false
	nullAbsent bool // a null member it names is read as absent (NullAbsent)
	items      *rule
	itemsExist bool
}

const (
	tString uint8 = 1 << iota
	tInteger
	tNumber
	tBoolean
	tObject
	tArray
	tNull
)

// bound is a numeric limit with an int64 fast path: for an integer, x ≥ min
// is x ≥ ceil(min) and x ≤ max is x ≤ floor(max).
type bound struct {
	rat         *big.Rat
	ceil, floor int64
	fitsI       bool
}

// annotations carry no rule.
var annotations = map[string]bool{"$schema": true, "$id": true, "$comment": true, "title": true, "description": true,
	"examples": true, "default": true, "$defs": true, "deprecated": true, "readOnly": true, "writeOnly": true}

// compileRules builds the rule of a schema node. A keyword it does not know
// is an error: the schema then needs this compiler extended, not skipped.
func compileRules(root, node map[string]any) (*rule, error) {
	r := &rule{minLen: -1, maxLen: -1}
	if ref, ok := node["$ref"].(string); ok {
		target, err := lookupRef(root, ref)
		if err != nil {
			return nil, err
		}
		merged := map[string]any{}
		for k, v := range target {
			merged[k] = v
		}
		for k, v := range node {
			if k != "$ref" {
				merged[k] = v
			}
		}
		node = merged
	}
	keys := make([]string, 0, len(node))
	for k := range node {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := node[k]
		switch {
		case annotations[k] || strings.HasPrefix(k, "x-"):
		case k == "type":
			names, ok := v.([]any)
			if !ok {
				names = []any{v}
			}
			for _, n := range names {
				bit, ok := typeBits[fmt.Sprint(n)]
				if !ok {
					return nil, fmt.Errorf("rules: unknown type %v", n)
				}
				r.types |= bit
				r.typeNames = append(r.typeNames, fmt.Sprint(n))
			}
		case k == "minLength" || k == "maxLength":
			n, err := intKeyword(k, v)
			if err != nil {
				return nil, err
			}
			if k == "minLength" {
				r.minLen = n
			} else {
				r.maxLen = n
			}
		case k == "pattern":
			re, err := regexp.Compile(fmt.Sprint(v))
			if err != nil {
				return nil, fmt.Errorf("rules: pattern: %w", err)
			}
			r.pattern = re
		case k == "minimum" || k == "maximum" || k == "multipleOf":
			rat, ok := ratKeyword(v)
			if !ok {
				return nil, fmt.Errorf("rules: %s is not a number", k)
			}
			switch k {
			case "minimum":
				r.min = newBound(rat)
			case "maximum":
				r.max = newBound(rat)
			default:
				r.multipleOf = rat
			}
		case k == "required":
			list, _ := v.([]any)
			if len(list) > 64 {
				return nil, fmt.Errorf("rules: more than 64 required properties")
			}
			r.required = map[string]uint{}
			for i, n := range list {
				r.required[fmt.Sprint(n)] = uint(i)
				r.reqOrder = append(r.reqOrder, fmt.Sprint(n))
			}
			r.nRequired = len(list)
		case k == "properties":
			props, _ := v.(map[string]any)
			r.props = map[string]*rule{}
			for name, sub := range props {
				m, _ := sub.(map[string]any)
				pr, err := compileRules(root, m)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				r.props[name] = pr
			}
		case k == "additionalProperties":
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("rules: additionalProperties must be true or false")
			}
			r.closed = !b
		case k == "items":
			m, _ := v.(map[string]any)
			it, err := compileRules(root, m)
			if err != nil {
				return nil, fmt.Errorf("items: %w", err)
			}
			r.items, r.itemsExist = it, true
		default:
			return nil, fmt.Errorf("rules: keyword %q is not compiled for the warm path", k)
		}
	}
	r.intFast = (r.min == nil || r.min.fitsI) && (r.max == nil || r.max.fitsI) &&
		(r.multipleOf == nil || r.multipleOf.Num().IsInt64() && r.multipleOf.Num().Int64() == 1)
	return r, nil
}

var typeBits = map[string]uint8{"string": tString, "integer": tInteger, "number": tNumber | tInteger,
	"boolean": tBoolean, "object": tObject, "array": tArray, "null": tNull}

func lookupRef(root map[string]any, ref string) (map[string]any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("rules: only local $refs are compiled, got %q", ref)
	}
	var target any = root
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := target.(map[string]any)
		target = m[part]
	}
	m, ok := target.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("rules: $ref %q not found", ref)
	}
	return m, nil
}

func intKeyword(k string, v any) (int, error) {
	r, ok := ratKeyword(v)
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, fmt.Errorf("rules: %s is not an integer", k)
	}
	return int(r.Num().Int64()), nil
}

func ratKeyword(v any) (*big.Rat, bool) {
	n, ok := v.(stdjson.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(string(n))
}

func newBound(r *big.Rat) *bound {
	b := &bound{rat: r}
	floor, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int)) // Euclidean: floor for a positive divisor
	ceil := new(big.Int).Set(floor)
	if m.Sign() != 0 {
		ceil.Add(ceil, big.NewInt(1))
	}
	if floor.IsInt64() && ceil.IsInt64() {
		b.floor, b.ceil, b.fitsI = floor.Int64(), ceil.Int64(), true
	}
	return b
}

// stream checks one value read from dec against r (nil: anything). It
// returns false at the first value the rules refuse; a syntax error, a
// duplicate key or invalid UTF-8 comes back as the tokenizer's error.
func (r *rule) stream(dec *jsontext.Decoder, scratch *[]byte) (bool, error) {
	if r == nil {
		return true, dec.SkipValue()
	}
	switch dec.PeekKind() {
	case '{':
		if r.types != 0 && r.types&tObject == 0 {
			return false, nil
		}
		if _, err := dec.ReadToken(); err != nil {
			return false, err
		}
		var seen uint64
		for dec.PeekKind() != '}' {
			raw, err := dec.ReadValue()
			if err != nil {
				return false, err
			}
			name := unquote(raw, scratch)
			sub, known := r.props[string(name)]
			if known && r.nullAbsent && dec.PeekKind() == 'n' {
				if _, err := dec.ReadToken(); err != nil {
					return false, err
				}
				continue // as if not sent: no required bit
			}
			if bit, req := r.required[string(name)]; req {
				seen |= 1 << bit
			}
			if !known && (r.closed || r.foldsTo(string(name)) != "") {
				return false, nil
			}
			ok, err := sub.stream(dec, scratch)
			if !ok || err != nil {
				return ok, err
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return false, err
		}
		return r.nRequired == 0 || seen == 1<<r.nRequired-1, nil
	case '[':
		if r.types != 0 && r.types&tArray == 0 {
			return false, nil
		}
		if _, err := dec.ReadToken(); err != nil {
			return false, err
		}
		for dec.PeekKind() != ']' {
			var item *rule
			if r.itemsExist {
				item = r.items
			}
			ok, err := item.stream(dec, scratch)
			if !ok || err != nil {
				return ok, err
			}
		}
		_, err := dec.ReadToken()
		return true, err
	case '"':
		raw, err := dec.ReadValue()
		if err != nil {
			return false, err
		}
		if r.types != 0 && r.types&tString == 0 {
			return false, nil
		}
		return r.text(unquote(raw, scratch)), nil
	case '0':
		raw, err := dec.ReadValue()
		if err != nil {
			return false, err
		}
		return r.number(raw), nil
	case 't', 'f':
		_, err := dec.ReadToken()
		return r.types == 0 || r.types&tBoolean != 0, err
	case 'n':
		_, err := dec.ReadToken()
		return r.types == 0 || r.types&tNull != 0, err
	}
	_, err := dec.ReadToken() // the tokenizer's own error
	return false, err
}

// foldsTo is the member r names that name matches only without regard to
// case ("" for none). Names are exact, but the vendors' own binders (Go's
// encoding/json, .NET's) take "Price" for "price": under the ignore policy
// such a member would be skipped here and read as the field there, so it is
// refused rather than skipped (a re-tester's {"price":100,"Price":999999}
// charged 100).
func (r *rule) foldsTo(name string) string {
	for p := range r.props {
		if strings.EqualFold(p, name) {
			return p
		}
	}
	return ""
}

// text checks a string's text against its length and pattern.
func (r *rule) text(s []byte) bool {
	if r.minLen >= 0 || r.maxLen >= 0 {
		n := utf8.RuneCount(s)
		if (r.minLen >= 0 && n < r.minLen) || (r.maxLen >= 0 && n > r.maxLen) {
			return false
		}
	}
	return r.pattern == nil || r.pattern.Match(s)
}

// number checks a JSON number: plain integers without allocating, anything
// else (decimals, exponents, very long integers) exactly as a big.Rat.
func (r *rule) number(raw []byte) bool {
	if r.types != 0 && r.types&(tNumber|tInteger) == 0 {
		return false
	}
	if i, ok := plainInt(raw); ok && r.intFast {
		// An integer is a multiple of any 1/q, so only the bounds count.
		return (r.min == nil || i >= r.min.ceil) && (r.max == nil || i <= r.max.floor)
	}
	if hugeExponent(raw) {
		return false
	}
	v, ok := Rat(string(raw))
	if !ok {
		return false
	}
	switch {
	case r.types != 0 && r.types&tNumber == 0 && !v.IsInt():
		return false
	case r.min != nil && v.Cmp(r.min.rat) < 0, r.max != nil && v.Cmp(r.max.rat) > 0:
		return false
	case r.multipleOf != nil && !new(big.Rat).Quo(v, r.multipleOf).IsInt():
		return false
	}
	return true
}

// maxExponent bounds a number's magnitude, as the power of ten of its
// leading digit: no vendor type (Long, Int32, decimal(8,2), a double) holds
// 1e401 or 1e-401, and an exact 1e60000 costs real CPU. What counts is the
// value, not how it is written: 3000…0e-401 with 400 zeros is 0.3.
const maxExponent = 400

// hugeExponent reports a number whose leading digit's power of ten is beyond
// maxExponent either way (1e401, 1e-401, 0.001e-399, or 1 and 401 zeros).
// Zero is zero however it is written (0e500).
func hugeExponent(raw []byte) bool {
	i := bytes.IndexAny(raw, "eE")
	if i < 0 {
		i = len(raw) // plain digits: 1 and 450 zeros is as far past as 1e450
	}
	mant := bytes.TrimPrefix(raw[:i], []byte("-"))
	whole, frac, _ := bytes.Cut(mant, []byte("."))
	// lead: the power of ten of the mantissa's leading digit.
	var lead int
	if w := bytes.TrimLeft(whole, "0"); len(w) > 0 {
		lead = len(w) - 1
	} else {
		f := bytes.TrimLeft(frac, "0")
		if len(f) == 0 {
			return false // zero
		}
		lead = -(len(frac) - len(f)) - 1
	}
	if i == len(raw) {
		return lead > maxExponent || lead < -maxExponent
	}
	exp := raw[i+1:]
	neg := len(exp) > 0 && exp[0] == '-'
	if len(exp) > 0 && (exp[0] == '+' || exp[0] == '-') {
		exp = exp[1:]
	}
	exp = bytes.TrimLeft(exp, "0")
	if len(exp) > 9 {
		return true // past any body's digits: the mantissa cannot bring it back
	}
	n := 0
	for _, c := range exp {
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return lead+n > maxExponent || lead+n < -maxExponent
}

// Rat reads a JSON number exactly. big.Rat refuses an exponent past int64
// (0e-99999999999999999999), and the magnitude bound lets every zero through:
// a zero is zero however far its exponent goes, so it reads as 0.
func Rat(s string) (*big.Rat, bool) {
	if r, ok := new(big.Rat).SetString(s); ok {
		return r, true
	}
	i := strings.IndexAny(s, "eE")
	if i < 0 || !zeroDigits(strings.TrimPrefix(s[:i], "-")) {
		return nil, false
	}
	exp := s[i+1:]
	if exp != "" && (exp[0] == '+' || exp[0] == '-') {
		exp = exp[1:]
	}
	if exp == "" || strings.Trim(exp, "0123456789") != "" {
		return nil, false
	}
	return new(big.Rat), true
}

// zeroDigits reports a mantissa of zeros with at most one point and a digit
// on each side of it, as JSON writes one (0, 0.00).
func zeroDigits(m string) bool {
	w, f, dot := strings.Cut(m, ".")
	return w != "" && strings.Trim(w, "0") == "" && (!dot || f != "" && strings.Trim(f, "0") == "")
}

// plainInt parses an integer of at most 18 digits (no fraction, no
// exponent), which always fits an int64.
func plainInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// unquote returns a JSON string's text: the raw bytes inside the quotes when
// there is no escape (no copy), else unescaped into scratch.
func unquote(raw []byte, scratch *[]byte) []byte {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	out, err := jsontext.AppendUnquote((*scratch)[:0], raw)
	if err != nil {
		return inner
	}
	*scratch = out
	return out
}

// failKind orders what a refusal reports first: an unknown field (likely a
// misspelling, and the fix for the others), then a missing one, then a wrong
// type, then any other rule.
type failKind int

const (
	failUnknown failKind = iota
	failCase             // a member that differs from a named one only in case
	failRequired
	failType
	failMinLength
	failMaxLength
	failRule
)

// failure is one rule a value breaks.
type failure struct {
	kind       failKind
	loc        []string // instance location
	name       string   // the unknown or missing member
	order      int      // a missing member's place in the schema's required list
	want       []string // the types, for failType
	limit, got int      // lengths
	value      string   // what came, for the message (gotValue)
}

// walk reads one value from dec against r (only to explain a refusal) and
// keeps the failure the message names (keep), as the streamed check would
// find the rules broken. It reads every value through, so the tokenizer's
// errors (syntax, duplicate keys, UTF-8) surface wherever they are; a member
// the schema does not name is skipped unjudged, and a number past
// maxExponent that a rule governs ends the walk (*hugeNumber). at is the
// path so far, a stack; a failure keeps a copy.
func (r *rule) walk(dec *jsontext.Decoder, at *[]string, out *[]failure, scratch *[]byte) error {
	if r == nil {
		return scanValue(dec)
	}
	kind := dec.PeekKind()
	var raw []byte // a scalar's bytes, read before its type is judged
	if kind != '{' && kind != '[' {
		var err error
		if raw, err = dec.ReadValue(); err != nil {
			return err
		}
		if kind == '0' && hugeExponent(raw) {
			return &hugeNumber{path: pointerPath(dec.StackPointer()), raw: string(raw)}
		}
	}
	if !r.typeOK(kind, raw) {
		keep(out, failure{kind: failType, loc: *at, want: r.typeNames, value: gotRaw(kind, raw, false, scratch)})
		if raw == nil {
			// Unjudged, but well-formed: the wrong type is the answer, not
			// a huge number inside it ("serviceCode[0]: expected a number").
			return dec.SkipValue()
		}
		return nil
	}
	switch kind {
	case '{':
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		var seen uint64
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return err
			}
			name := tok.String()
			sub, known := r.props[name]
			if !known {
				if r.closed {
					keep(out, failure{kind: failUnknown, loc: *at, name: name})
				} else if exact := r.foldsTo(name); exact != "" {
					keep(out, failure{kind: failCase, loc: *at, name: name, value: exact})
				}
				if err := dec.SkipValue(); err != nil { // unjudged, but well-formed
					return err
				}
				continue
			}
			if r.nullAbsent && dec.PeekKind() == 'n' {
				if _, err := dec.ReadToken(); err != nil {
					return err
				}
				continue // as if not sent
			}
			if bit, req := r.required[name]; req {
				seen |= 1 << bit
			}
			*at = append(*at, name)
			err = sub.walk(dec, at, out, scratch)
			*at = (*at)[:len(*at)-1]
			if err != nil {
				return err
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for i, name := range r.reqOrder {
			if seen&(1<<r.required[name]) == 0 {
				keep(out, failure{kind: failRequired, loc: *at, name: name, order: i})
			}
		}
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for i := 0; dec.PeekKind() != ']'; i++ {
			var item *rule
			if r.itemsExist {
				item = r.items
			}
			*at = append(*at, strconv.Itoa(i))
			err := item.walk(dec, at, out, scratch)
			*at = (*at)[:len(*at)-1]
			if err != nil {
				return err
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
	case '"':
		str := unquote(raw, scratch)
		n := utf8.RuneCount(str)
		switch {
		case r.minLen >= 0 && n < r.minLen:
			keep(out, failure{kind: failMinLength, loc: *at, limit: r.minLen, got: n})
		case r.maxLen >= 0 && n > r.maxLen:
			keep(out, failure{kind: failMaxLength, loc: *at, limit: r.maxLen, got: n})
		case r.pattern != nil && !r.pattern.Match(str):
			keep(out, failure{kind: failRule, loc: *at, value: gotRaw(kind, raw, true, scratch)})
		}
	case '0':
		if !r.number(raw) {
			keep(out, failure{kind: failRule, loc: *at, value: gotRaw(kind, raw, true, scratch)})
		}
	}
	return nil
}

// typeOK is the type keyword alone: an integer is any number whose value is
// whole (1.0 and 1e2 are integers).
func (r *rule) typeOK(kind jsontext.Kind, raw []byte) bool {
	if r.types == 0 {
		return true
	}
	switch kind {
	case '{':
		return r.types&tObject != 0
	case '[':
		return r.types&tArray != 0
	case '"':
		return r.types&tString != 0
	case 't', 'f':
		return r.types&tBoolean != 0
	case 'n':
		return r.types&tNull != 0
	case '0':
		if r.types&tNumber != 0 {
			return true
		}
		if r.types&tInteger == 0 {
			return false
		}
		if _, ok := plainInt(raw); ok {
			return true
		}
		q, ok := Rat(string(raw))
		return ok && q.IsInt()
	}
	return false
}

// gotRaw is gotValue for a value as read: a container by its kind, a
// scalar by its value.
func gotRaw(kind jsontext.Kind, raw []byte, withValue bool, scratch *[]byte) string {
	switch kind {
	case '{':
		return gotValue(map[string]any(nil), withValue)
	case '[':
		return gotValue([]any(nil), withValue)
	case '"':
		return gotValue(string(unquote(raw, scratch)), withValue)
	case '0':
		return gotValue(stdjson.Number(raw), withValue)
	case 't', 'f':
		return gotValue(true, withValue)
	}
	return gotValue(nil, withValue)
}
