package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// MaxDepth bounds JSON nesting in any input: no documented input nests deeper
// than a handful of levels, and a deep document is only a way to burn CPU.
const MaxDepth = 32

// Validator is implemented by inputs that check rules after decoding: the
// named policies stricter than the vendor (TOP_MAX_PRICE_FEN). It returns an
// *Error built with Invalid.
type Validator interface {
	Validate() error
}

// Decode parses body strictly into v (a pointer to a struct) without a
// schema: one JSON object, every key a field of v (an unknown key is named,
// with the right spelling suggested), no key twice, text in UTF-8, every
// value of the field's type and range, then v.Validate when v is a Validator.
// It is one pass over the bytes; keys are walked again only to explain an
// error. Every failure is an *Error with CodeInvalidInput. Functions decode
// with DecodeInput, which adds their schema.
func Decode(body []byte, v any) error {
	trimmed, err := precheck(body)
	if err != nil {
		return err
	}
	if err := unmarshalTyped(trimmed, v, false); err != nil {
		return err
	}
	if val, ok := v.(Validator); ok {
		return val.Validate()
	}
	return nil
}

// TrimSpace trims JSON's whitespace (space, tab, LF, CR: RFC 8259 §2) and
// nothing else. bytes.TrimSpace also trims \v, \f, U+0085, NBSP and
// U+3000, so a body wrapped in them was read as valid JSON and reached the
// vendor, while the same byte between members was refused.
func TrimSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

// wideText names a body in UTF-16 or UTF-32, with or without a byte-order
// mark, from the raw bytes (trimming first would drop the space of " \x00{"
// and misread little-endian as big-endian). UTF-8 JSON holds no NUL byte.
func wideText(b []byte) string {
	at := func(i int) int {
		if i < len(b) {
			return int(b[i])
		}
		return -1
	}
	switch {
	case bytes.HasPrefix(b, []byte("\xff\xfe\x00\x00")), at(0) != 0 && at(1) == 0 && at(2) == 0 && at(3) == 0:
		return "UTF-32 text (little-endian)"
	case bytes.HasPrefix(b, []byte("\x00\x00\xfe\xff")), at(0) == 0 && at(1) == 0 && at(2) == 0 && at(3) > 0:
		return "UTF-32 text (big-endian)"
	case bytes.HasPrefix(b, []byte("\xff\xfe")), at(0) > 0 && at(1) == 0:
		return "UTF-16 text (little-endian)"
	case bytes.HasPrefix(b, []byte("\xfe\xff")), at(0) == 0 && at(1) > 0:
		return "UTF-16 text (big-endian)"
	}
	return ""
}

// precheck refuses what no input can be: empty, not an object, too deep.
func precheck(body []byte) ([]byte, error) {
	if w := wideText(body); w != "" {
		return nil, Invalid("", "the request body is %s; send the JSON as UTF-8", w)
	}
	trimmed := TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, Invalid("", "the request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return nil, Invalid("", "the request body must be a JSON object, got %s", jsonKind(trimmed))
	}
	if d := depth(trimmed); d > MaxDepth {
		// JSON that breaks before its level 33 is refused for where it
		// breaks, by the decode (an outside re-tester: a missing comma was
		// reported as depth, naming nothing).
		if path, reached := tooDeepAt(trimmed); reached {
			return nil, Invalid(path, "the request body nests %d levels deep; at most %d are allowed", d, MaxDepth)
		}
	}
	return trimmed, nil
}

// typedOptions: strict names, no duplicates, valid UTF-8 (both defaults of
// the decoder), and integers written as 1e3 or 100.0 accepted when exact, as
// JSON Schema counts them as integers. Built on first use, not at package
// init: every cold start would otherwise pay for it before its first poll.
var typedOptions = sync.OnceValue(func() json.Options {
	return json.JoinOptions(
		json.RejectUnknownMembers(true),
		json.WithUnmarshalers(json.JoinUnmarshalers(
			json.UnmarshalFromFunc(unmarshalInt64),
		)),
	)
})

// openOptions are typedOptions with members the type does not name skipped
// (the UnknownIgnore policy).
var openOptions = sync.OnceValue(func() json.Options {
	return json.JoinOptions(typedOptions(), json.RejectUnknownMembers(false))
})

func unmarshalTyped(body []byte, v any, ignoreUnknown bool) error {
	opts := typedOptions()
	if ignoreUnknown {
		opts = openOptions()
	}
	err := json.Unmarshal(body, v, opts)
	if err == nil {
		return nil
	}
	return explain(body, reflect.TypeOf(v), err)
}

// unmarshalInt64 takes any JSON number whose value is an integer that fits.
// ExactIntegers reads an int64 as the functions' inputs do: 1e2 and 100.0
// are 100, 1.5 is refused. For settings that hold JSON (a watch list), so
// they take what an input takes.
func ExactIntegers() json.Options {
	return json.WithUnmarshalers(json.UnmarshalFromFunc(unmarshalInt64))
}

func unmarshalInt64(dec *jsontext.Decoder, v *int64) error {
	if dec.PeekKind() != '0' {
		return errors.ErrUnsupported // not a number: the default decoder reports the type
	}
	val, err := dec.ReadValue()
	if err != nil {
		return err
	}
	n, ok := exactInt64(string(val))
	if !ok {
		return &json.SemanticError{JSONKind: '0', JSONValue: val.Clone(), GoType: reflect.TypeFor[int64](), Err: errNotInt64}
	}
	*v = n
	return nil
}

var errNotInt64 = errors.New("not an integer that fits in 64 bits")

func exactInt64(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	if hugeExponent([]byte(s)) {
		return 0, false
	}
	r, ok := Rat(s)
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}

// explain turns a decoder error into the caller's terms: the path with
// indices, what was expected and what came.
func explain(body []byte, t reflect.Type, err error) error {
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		path := pointerPath(syn.JSONPointer)
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return Invalid(path, "duplicate key %q; send each field once", syn.JSONPointer.LastToken())
		case isInvalidUTF8(syn.Err) && utf8.Valid(body):
			// The bytes are UTF-8: the decoder met a \uD800–\uDFFF escape
			// that is not half of a pair, which names no character.
			what := "contains a lone surrogate escape (\\uD800 to \\uDFFF without its pair), which is no character; send text as UTF-8, or a character past U+FFFF as a pair of escapes"
			if path == "" {
				return Invalid("", "the request body %s", what)
			}
			return Invalid(path, "%s", what)
		case isInvalidUTF8(syn.Err):
			if path == "" {
				return Invalid("", "the request body is not valid UTF-8; send text as UTF-8")
			}
			return Invalid(path, "not valid UTF-8; send text as UTF-8")
		}
		if n, ok := malformedNumber(body, syn.ByteOffset); ok {
			if n.fixed != "" {
				return Invalid(fieldOrBody(n.path), "not valid JSON: %s is a number with a leading zero, which JSON does not allow (write %s)", clip(n.raw, 40), clip(n.fixed, 40))
			}
			return Invalid(fieldOrBody(n.path), "not valid JSON: %s is not a JSON number (JSON writes numbers in decimal digits, as 16 or 1.5e3)", clip(n.raw, 40))
		}
		if path != "" && !errors.Is(syn.Err, io.ErrUnexpectedEOF) {
			// Inside a value (NaN, +1, .5, a raw tab in a string): the
			// field is known, so it is named.
			return Invalid(path, "not valid JSON (%s at byte %d)", syntaxReason(syn.Err), syn.ByteOffset)
		}
		return Invalid("", "the request body is not valid JSON (%s at byte %d)", syntaxReason(syn.Err), syn.ByteOffset)
	}
	var sem *json.SemanticError
	if errors.As(err, &sem) {
		path := pointerPath(sem.JSONPointer)
		if errors.Is(sem.Err, json.ErrUnknownName) {
			return unknownField(path, fieldNames(typeAt(t, sem.JSONPointer.Parent())))
		}
		if path == "" {
			path = "(body)"
		}
		want := "a value of another type"
		if sem.GoType != nil {
			want = DescribeType(sem.GoType)
		}
		if h := hintAt(t, sem.JSONPointer); h != "" {
			want = h
		}
		return Invalid(path, "expected %s, got %s", want, gotKind(sem.JSONKind, sem.JSONValue))
	}
	return Invalid("", "the request body is not valid JSON")
}

type badNumber struct{ path, raw, fixed string }

// malformedNumber recognises a number written as JSON does not write one:
// a leading zero (01, -007.5) or something glued to it (0x10, 1_000). The
// tokenizer reads the leading part as a whole number and trips on what
// follows, "after object value", naming the object rather than the field;
// the field is the last value read before it. fixed is the number as JSON
// writes it, when there is one.
func malformedNumber(body []byte, off int64) (badNumber, bool) {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	glued := func(c byte) bool {
		return isDigit(c) || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if off < 1 || off >= int64(len(body)) || !isDigit(body[off-1]) || !glued(body[off]) {
		return badNumber{}, false
	}
	start := off - 1
	for start > 0 && strings.IndexByte("0123456789.eE+-", body[start-1]) >= 0 {
		start--
	}
	if start < off-1 && body[start] != '-' && !isDigit(body[start]) {
		return badNumber{}, false // not a number's start (a string's tail)
	}
	end := off
	for end < int64(len(body)) && (glued(body[end]) || body[end] == '+' || body[end] == '-') {
		end++
	}
	raw := string(body[start:end])
	var fixed string
	if digits := strings.TrimPrefix(raw, "-"); len(digits) > 1 && digits[0] == '0' && isDigit(digits[1]) &&
		strings.Trim(digits, "0123456789.eE+-") == "" {
		fixed = strings.TrimLeft(digits, "0")
		if fixed == "" || fixed[0] == '.' || fixed[0] == 'e' || fixed[0] == 'E' {
			fixed = "0" + fixed
		}
		if raw[0] == '-' {
			fixed = "-" + fixed
		}
	}
	// Read up to the offending byte: the decoder's pointer names the field.
	dec := jsontext.NewDecoder(bytes.NewReader(body[:off]))
	for {
		if _, err := dec.ReadToken(); err != nil {
			break
		}
	}
	return badNumber{path: pointerPath(dec.StackPointer()), raw: raw, fixed: fixed}, true
}

// isInvalidUTF8: raw bytes that are not UTF-8, or a \u escape of half a
// surrogate pair (which would become U+FFFD, changing the text).
func isInvalidUTF8(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "invalid UTF-8") || strings.Contains(err.Error(), "surrogate"))
}

func syntaxReason(err error) string {
	if err == nil {
		return "syntax error"
	}
	return strings.TrimPrefix(err.Error(), "jsontext: ")
}

// unknownField names the key and suggests the field it was meant to be.
func unknownField(path string, fields []string) *Error {
	parent, key := splitPath(path)
	s := suggest(key, fields)
	if s == "" {
		// "deliveryId\u200b", "deliveryId ", "bizI" + "d\u0301": a
		// name that is a field once what cannot be seen is taken out.
		s = suggest(visible(key), fields)
	}
	for _, f := range fields {
		if strings.EqualFold(f, key) { // with Unicode's folding: "ſession" is "session"
			s = f
		}
	}
	if s != "" {
		return Invalid(path, "unknown field%s; did you mean %q?", written(key), join(parent, s))
	}
	if len(fields) == 0 {
		if parent == "" {
			return Invalid(path, "unknown field; this function takes no input fields: send {}")
		}
		return Invalid(path, "unknown field; %s takes no fields", parent)
	}
	quoted := make([]string, len(fields))
	for i, f := range fields {
		quoted[i] = strconv.Quote(f)
	}
	return Invalid(path, "unknown field%s; expected one of %s", written(key), strings.Join(quoted, ", "))
}

// visible is name without the runes that do not show: spaces, format
// characters (zero-width, BOM) and combining marks.
func visible(name string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me) {
			return -1
		}
		return r
	}, name)
}

// written spells a name that is not plain printable ASCII with escapes,
// so one that only looks like a field ("idempotency\u212aey", a Kelvin
// sign; "deliveryId " with a space) says why it is not that field (a
// re-tester read "did you mean" its twin).
func written(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x7f || name[i] <= ' ' {
			return " (written " + strconv.QuoteToASCII(name) + ")"
		}
	}
	return ""
}

func splitPath(path string) (parent, key string) {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i], path[i+1:]
	}
	return "", path
}

// pointerPath renders a JSON Pointer as the envelope's field path:
// /boxes/1/weight → boxes[1].weight.
func pointerPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// typeAt follows a JSON Pointer through Go types (only to explain an error).
func typeAt(t reflect.Type, p jsontext.Pointer) reflect.Type {
	for tok := range p.Tokens() {
		t = deref(t)
		switch t.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			f, ok := fieldByJSONName(t, tok)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	return t
}

func hintAt(t reflect.Type, p jsontext.Pointer) string {
	parent := typeAt(t, p.Parent())
	if parent = deref(parent); parent == nil || parent.Kind() != reflect.Struct {
		return ""
	}
	f, ok := fieldByJSONName(parent, p.LastToken())
	if !ok {
		return ""
	}
	return f.Tag.Get("hint")
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldNames(t reflect.Type) []string {
	t = deref(t)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for name := range jsonFields(t) {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if n == "" {
			n = f.Name
		}
		if n == name {
			return f, true
		}
		if f.Anonymous && n == f.Name && deref(f.Type).Kind() == reflect.Struct {
			if g, ok := fieldByJSONName(deref(f.Type), name); ok {
				return g, true
			}
		}
	}
	return reflect.StructField{}, false
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		if f.Anonymous && name == f.Name && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		out[name] = f.Type
	}
	return out
}

// suggest finds the field a vendor-spelled or mis-cased key was meant to be:
// delivery_id → deliveryId, WarehouseId → warehouseId, DELIVERYID → deliveryId.
func suggest(key string, fields []string) string {
	camel := LowerCamel(key)
	for _, f := range fields {
		if f == camel {
			return f
		}
	}
	fold := strings.ReplaceAll(strings.ToLower(key), "_", "")
	for _, f := range fields {
		if strings.ToLower(f) == fold {
			return f
		}
	}
	return ""
}

// LowerCamel converts a vendor field name to the envelope's spelling with the
// mechanical rule of WeChat cloud calls: each "_x" becomes "X", and a leading
// capital is lowered (delivery_id → deliveryId, WarehouseId → warehouseId,
// delivery_resultcode → deliveryResultcode).
func LowerCamel(s string) string {
	var b strings.Builder
	upper := false
	for i, r := range s {
		switch {
		case r == '_' || r == '-':
			upper = b.Len() > 0
		case upper:
			b.WriteRune(unicode.ToUpper(r))
			upper = false
		case i == 0:
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	// An all-caps acronym at the start (ID, URL) lowers as a whole: "ID" → "id".
	if len(out) > 1 && strings.ToUpper(s) == s && !strings.ContainsAny(s, "_-") {
		return strings.ToLower(s)
	}
	return out
}

func depth(b []byte) int {
	max, cur := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			cur++
			if cur > max {
				max = cur
			}
		case c == '}' || c == ']':
			cur--
		}
	}
	return max
}

// tooDeepAt is the path of the first value that opens a level past
// MaxDepth, so the refusal names a field like every other (an outside
// tester: "extra" sent 33 arrays deep was refused naming nothing). reached
// is false when the JSON breaks before that point. Names given twice and
// invalid UTF-8 are let through here: the decode refuses them.
func tooDeepAt(b []byte) (path string, reached bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for dec.StackDepth() <= MaxDepth {
		if _, err := dec.ReadToken(); err != nil {
			return "", false
		}
	}
	return pointerPath(dec.StackPointer()), true
}

func jsonKind(b []byte) string {
	switch c := b[0]; {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case bytes.HasPrefix(b, []byte("true")) || bytes.HasPrefix(b, []byte("false")):
		return "a boolean"
	case bytes.HasPrefix(b, []byte("null")):
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case bytes.HasPrefix(b, []byte("\xef\xbb\xbf")):
		return "a byte-order mark (U+FEFF) before the JSON; send UTF-8 without a BOM"
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		// A body sent with Content-Encoding: gzip: the functions take JSON
		// as it is, and the platforms pass the bytes through.
		return "gzip-compressed bytes (compressed bodies are not accepted: send the JSON uncompressed, without Content-Encoding)"
	default:
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			n := min(len(b), 3)
			return fmt.Sprintf("bytes that are not UTF-8 text (% X); send the JSON as UTF-8", b[:n])
		}
		if unicode.IsSpace(r) {
			return fmt.Sprintf("text starting with %q, which is not JSON whitespace (only space, tab, LF and CR are)", r)
		}
		return fmt.Sprintf("text starting with %q", r)
	}
}

// gotKind says what came, in the words the messages have always used:
// "string", "number 12.5", "bool", "object", "array", "null".
func gotKind(k jsontext.Kind, v jsontext.Value) string {
	switch k {
	case '"':
		return "string"
	case '0':
		if len(v) > 0 {
			return "number " + clip(string(v), 40)
		}
		return "number"
	case 't', 'f':
		return "bool"
	case '{':
		return "object"
	case '[':
		return "array"
	case 'n':
		return "null"
	}
	return "a value of another type"
}

// DescribeType says which JSON value a Go type takes ("a string", "an
// object"), for messages that name what a member should hold.
func DescribeType(t reflect.Type) string {
	t = deref(t)
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	default:
		return t.String()
	}
}

func join(path, k string) string {
	if k == "" {
		k = `""` // an empty key is named, not left as a trailing dot
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// MemberString returns the string value of body's top-level member named
// exactly name: "" when it is absent, not a string, named twice, or the body
// is not a JSON object. It reads what a refused input still says (the
// charge echoes the idempotency key of a request it refused).
func MemberString(body []byte, name string) string {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return ""
	}
	found, val := 0, ""
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return ""
		}
		if tok.String() != name {
			if dec.SkipValue() != nil {
				return ""
			}
			continue
		}
		found++
		v, err := dec.ReadToken()
		if err != nil {
			return ""
		}
		if v.Kind() == '"' {
			val = v.String()
		}
	}
	if found != 1 {
		return ""
	}
	return val
}
