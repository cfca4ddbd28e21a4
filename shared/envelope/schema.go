package envelope

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Schema is a function's input contract (a JSON Schema 2020-12 from the
// registry) compiled once. It is the only source of the input's rules:
// DecodeInput runs it on every call, and its messages come from the schema's
// own words (x-expect: what the field takes, in the caller's terms).
type Schema struct {
	doc   map[string]any // the raw schema, read only to explain an error
	rules *rule          // its rules, checked while the body streams
	pool  sync.Pool      // *streamer: the warm path reuses its tokenizer
	// ignoreUnknown: members the schema does not name are skipped, not
	// refused (the UnknownFields policy).
	ignoreUnknown bool
	// variants holds the document's schemas under other policies, built
	// once each and shared by every variant (With).
	variants *sync.Map
	base     *Schema // the schema under the default policies
	// binders holds, on base, the binder of each Go type decoded under
	// the schema (reflect.Type → *binder, nil when fill cannot fill it).
	binders sync.Map
}

// Unknown-field policies (CLOUDCALL_UNKNOWN_FIELDS): the vendors' own JSON
// binders ignore members they do not know; the bundle refuses them by
// default, so that a misspelled optional field (bizID) is said rather than
// silently not sent.
const (
	UnknownRefuse = "refuse"
	UnknownIgnore = "ignore"
)

// Null policies (CLOUDCALL_NULL_FIELDS): no vendor document says null for
// a field, and the published schemas do not take it, so the bundle refuses
// it by default ("expected a string, got null"); the vendors' binders read
// null as "not sent", and a backend that writes absent fields as null (many
// ORMs and serializers do) may set absent, which reads a null member the
// schema names as that member left out: an optional one is not sent, a
// required one is "required".
const (
	NullRefuse = "refuse"
	NullAbsent = "absent"
)

// Policies are the input policies a schema is applied under.
type Policies struct {
	UnknownFields string // UnknownRefuse (default) or UnknownIgnore
	NullFields    string // NullRefuse (default) or NullAbsent
}

// With is s under p: the schema itself under the defaults, else a variant
// built once (every rule on the members the schema names still holds).
func (s *Schema) With(p Policies) *Schema {
	ignore, absent := p.UnknownFields == UnknownIgnore, p.NullFields == NullAbsent
	if !ignore && !absent {
		return s.base
	}
	key := [2]bool{ignore, absent}
	if v, ok := s.variants.Load(key); ok {
		return v.(*Schema)
	}
	r, _ := compileRules(s.doc, s.doc) // the base compiled: it compiles
	eachRule(r, func(r *rule) {
		r.closed = r.closed && !ignore // every object holds members it does not name
		r.nullAbsent = absent          // a null member it names is absent
	})
	v, _ := s.variants.LoadOrStore(key, &Schema{doc: s.doc, rules: r, ignoreUnknown: ignore, variants: s.variants, base: s.base})
	return v.(*Schema)
}

// For is s under the policies an input is read under.
func (s *Schema) For(in *Input) *Schema {
	return s.With(Policies{UnknownFields: in.UnknownFields, NullFields: in.NullFields})
}

// streamer is a tokenizer and its scratch space, reused across calls.
type streamer struct {
	dec     *jsontext.Decoder
	rd      bytes.Reader
	scratch []byte
	// For fill (bind.go): the unknown-field policy, and short strings
	// made on earlier calls.
	ignore bool
	strs   strCache
}

// CompileSchema compiles a JSON Schema 2020-12 document into the rules the
// envelope checks. Only the keywords the contracts use are compiled (type,
// properties, required, additionalProperties: false, items, minLength,
// maxLength, pattern, minimum, maximum, multipleOf, local $ref and the
// annotations); any other keyword is an error, never ignored. The functions
// do not link a general JSON Schema library (santhosh-tekuri/jsonschema
// compiles its metaschemas at package init: 4.5 ms of every cold start);
// the tests hold these rules to that library's verdicts on every function's
// generated corpus and under fuzzing.
func CompileSchema(b []byte) (*Schema, error) {
	var raw map[string]any
	dec := stdjson.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if raw == nil {
		return nil, errors.New("schema: not a JSON object")
	}
	rules, err := compileRules(raw, raw)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s := &Schema{doc: raw, rules: rules, variants: &sync.Map{}}
	s.base = s
	return s, nil
}

// eachRule calls f on r and every rule under it.
func eachRule(r *rule, f func(*rule)) {
	if r == nil {
		return
	}
	f(r)
	for _, p := range r.props {
		eachRule(p, f)
	}
	eachRule(r.items, f)
}

// streamer is a pooled tokenizer reading trimmed; put it back when done.
func (s *Schema) streamer(trimmed []byte) *streamer {
	st, _ := s.pool.Get().(*streamer)
	if st == nil {
		st = &streamer{}
		st.rd.Reset(trimmed)
		st.dec = jsontext.NewDecoder(&st.rd)
		return st
	}
	st.rd.Reset(trimmed)
	st.dec.Reset(&st.rd)
	return st
}

// accepts streams the body through the compiled rules: true when every rule
// holds and the body is one well-formed JSON object (no duplicate key, valid
// UTF-8, nothing after it). Anything else is explained by check.
func (s *Schema) accepts(trimmed []byte) bool {
	st := s.streamer(trimmed)
	defer s.pool.Put(st)
	ok, err := s.rules.stream(st.dec, &st.scratch)
	if !ok || err != nil {
		return false
	}
	_, err = st.dec.ReadToken()
	return err == io.EOF
}

// MustCompileSchema is CompileSchema for the registry's embedded schemas,
// which a test compiles: a failure is a build mistake.
func MustCompileSchema(b []byte, err error) *Schema {
	if err != nil {
		panic(err)
	}
	s, err := CompileSchema(b)
	if err != nil {
		panic(err)
	}
	return s
}

// check explains a body the streamed rules refused: it walks the body once
// more against the rules (walk), keeping only the failure the message names,
// so what it holds is a path, never the document: a 6 MiB body of three
// million one-byte elements, read into a tree, took 25 bytes per byte and
// the function was killed at its 128 MB. The tokenizer refuses duplicate
// keys, invalid UTF-8 and bad syntax anywhere in the body, as before. A nil
// error means the rules accept it after all.
func (s *Schema) check(trimmed []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(trimmed))
	var fails []failure
	var scratch []byte
	var at []string
	err := s.rules.walk(dec, &at, &fails, &scratch)
	if err == nil {
		end := dec.InputOffset()
		if _, err = dec.ReadToken(); err != io.EOF {
			// Whatever follows, a token or not ("{...} trailing" would read
			// as a broken literal true), it is data after the object.
			rest := trimmed[end:]
			off := end + int64(len(rest)-len(bytes.TrimLeft(rest, " \t\r\n")))
			err = &jsontext.SyntacticError{ByteOffset: off, Err: errors.New("data after the JSON object")}
		} else {
			err = nil
		}
	}
	var huge *hugeNumber
	if errors.As(err, &huge) {
		// Cut as every "got …" is, marked with the number's own length:
		// 10,000 nines came back as 364 of them, cut with the message and
		// marked with its length (an outside re-tester).
		got := Clip(huge.raw)
		node := s.nodeAt(splitLoc(huge.path))
		if t, _ := node["type"].(string); t != "integer" && t != "number" && node != nil {
			// A string or object field: the size is beside the point.
			want := expect(node)
			if want == "" {
				want = typeWant(node, []string{t})
			}
			return Invalid(fieldOrBody(huge.path), "expected %s, got number %s", want, got)
		}
		return Invalid(fieldOrBody(huge.path), "expected %s, got number %s, which no vendor type holds", orType(expect(node)), got)
	}
	if err != nil {
		return explain(trimmed, nil, err)
	}
	if len(fails) > 0 {
		return s.explainSchema(fails)
	}
	return nil
}

// DecodeInput is how a function reads its input: the envelope's hygiene,
// then the function's schema (the one source of its rules), then the Go
// value, then v.Validate (named policies stricter than the vendor) when v is
// a Validator. Every failure is an *Error with CodeInvalidInput naming the
// field with its indices, what it takes and what came.
func DecodeInput(body []byte, s *Schema, v any) error {
	if !s.decodeFast(body, v) {
		if err := s.decodeLong(body, v); err != nil {
			return err
		}
	}
	if val, ok := v.(Validator); ok {
		return val.Validate()
	}
	return nil
}

// decodeFast is the warm path: one pass checks the rules and fills v
// (bind.go). False: v is as it was, and the long way must read the body.
func (s *Schema) decodeFast(body []byte, v any) bool {
	trimmed := TrimSpace(body)
	return len(trimmed) > 0 && trimmed[0] == '{' && s.decode(trimmed, v)
}

// decodeLong is the long way, which also explains a refusal: the hygiene,
// the rules in a streaming pass, then (only when they refuse) a walk of the
// body to say which rule broke and where, then the typed value.
func (s *Schema) decodeLong(body []byte, v any) error {
	trimmed, err := precheck(body)
	if err != nil {
		return err
	}
	if !s.accepts(trimmed) {
		if err := s.check(trimmed); err != nil {
			return err
		}
	}
	return unmarshalTyped(trimmed, v, s.ignoreUnknown)
}

// scanValue reads one value through, checking what the rules would (the
// tokenizer's syntax, duplicate keys and UTF-8; huge numbers) without
// judging it: a value no rule governs.
func scanValue(dec *jsontext.Decoder) error {
	for depth := 0; ; {
		if dec.PeekKind() == '0' {
			raw, err := dec.ReadValue()
			if err != nil {
				return err
			}
			if hugeExponent(raw) {
				return &hugeNumber{path: pointerPath(dec.StackPointer()), raw: string(raw)}
			}
		} else {
			tok, err := dec.ReadToken()
			if err != nil {
				return err
			}
			switch tok.Kind() {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// hugeNumber is a number whose exponent is past maxExponent.
type hugeNumber struct{ path, raw string }

func (h *hugeNumber) Error() string { return "number " + Clip(h.raw) + " out of range" }

func orType(exp string) string {
	if exp == "" {
		return "a number of a vendor's type"
	}
	return exp
}

// splitLoc turns a field path back into an instance location:
// boxes[1].weight → [boxes 1 weight].
func splitLoc(path string) []string {
	var loc []string
	for _, part := range strings.Split(strings.ReplaceAll(path, "[", ".["), ".") {
		if part == "" {
			continue
		}
		loc = append(loc, strings.Trim(part, "[]"))
	}
	return loc
}

// explainSchema turns the validator's verdict into one message: the failure
// collect kept (compareFailures).
func (s *Schema) explainSchema(fails []failure) *Error {
	f := fails[0]
	loc := f.loc
	path := locPath(loc)
	node := s.nodeAt(loc)
	switch f.kind {
	case failUnknown:
		return unknownField(join(path, f.name), propertyNames(node))
	case failCase:
		return Invalid(join(path, f.name), "names are exact%s: the field is %q; a member that differs from it only in case is refused even under CLOUDCALL_UNKNOWN_FIELDS=ignore, since the vendors' own JSON binders would read it as that field", written(f.name), f.value)
	case failRequired:
		field := join(path, f.name)
		if exp := expect(s.nodeAt(append(slices.Clone(loc), f.name))); exp != "" {
			return Invalid(field, "required: %s", exp)
		}
		return Invalid(field, "required")
	case failType:
		return Invalid(fieldOrBody(path), "expected %s, got %s", typeWant(node, f.want), f.value)
	case failMinLength:
		if f.limit == 1 {
			return Invalid(path, "must not be empty: %s", expect(node))
		}
		return Invalid(path, "at least %d characters, got %d", f.limit, f.got)
	case failMaxLength:
		return Invalid(path, "at most %d characters, got %d", f.limit, f.got)
	}
	return Invalid(path, "expected %s, got %s", orType(expect(node)), f.value)
}

// compareFailures orders failures by use to the caller: unknown fields
// first, then missing ones, then types, then the rest, each at the first
// path in document order.
func compareFailures(a, b failure) int {
	if d := int(a.kind) - int(b.kind); d != 0 {
		return d
	}
	if d := comparePaths(a.loc, b.loc); d != 0 {
		return d
	}
	if d := a.order - b.order; d != 0 {
		return d
	}
	return strings.Compare(a.name, b.name)
}

// keep holds the one failure the explanation names, the first by
// compareFailures: a body of 98,000 bad boxes listed every one.
func keep(out *[]failure, f failure) {
	if len(*out) == 0 || compareFailures(f, (*out)[0]) < 0 {
		f.loc = slices.Clone(f.loc) // the walk's path is a stack it reuses
		*out = append((*out)[:0], f)
	}
}

func comparePaths(a, b []string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			ai, aerr := strconv.Atoi(a[i])
			bi, berr := strconv.Atoi(b[i])
			if aerr == nil && berr == nil {
				return ai - bi
			}
			return strings.Compare(a[i], b[i])
		}
	}
	return len(a) - len(b)
}

func fieldOrBody(path string) string {
	if path == "" {
		return "(body)"
	}
	return path
}

// locPath renders an instance location as the envelope's field path,
// indices included: [boxes 1 weight] → boxes[1].weight.
func locPath(loc []string) string {
	var b strings.Builder
	for _, tok := range loc {
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

// nodeAt finds the raw schema node that governs an instance location,
// following properties, items and local $refs.
func (s *Schema) nodeAt(loc []string) map[string]any {
	node := s.resolve(s.doc)
	for _, tok := range loc {
		if node == nil {
			return nil
		}
		if items, ok := node["items"].(map[string]any); ok {
			if _, err := strconv.Atoi(tok); err == nil {
				node = s.resolve(items)
				continue
			}
		}
		props, _ := node["properties"].(map[string]any)
		next, _ := props[tok].(map[string]any)
		node = s.resolve(next)
	}
	return node
}

// resolve merges a local $ref ("#/$defs/x") under the node's own keywords.
func (s *Schema) resolve(node map[string]any) map[string]any {
	ref, ok := node["$ref"].(string)
	if !ok || !strings.HasPrefix(ref, "#/") {
		return node
	}
	var target any = s.doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := target.(map[string]any)
		target = m[part]
	}
	out := map[string]any{}
	if m, ok := target.(map[string]any); ok {
		for k, v := range s.resolve(m) {
			out[k] = v
		}
	}
	for k, v := range node {
		if k != "$ref" {
			out[k] = v
		}
	}
	return out
}

func propertyNames(node map[string]any) []string {
	props, _ := node["properties"].(map[string]any)
	out := make([]string, 0, len(props))
	for k := range props {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func expect(node map[string]any) string {
	s, _ := node["x-expect"].(string)
	return s
}

// typeWant says what a field takes when the type is wrong: numbers say their
// unit and range (x-expect), other types their JSON type.
func typeWant(node map[string]any, want []string) string {
	if len(want) == 1 && (want[0] == "integer" || want[0] == "number") {
		if exp := expect(node); exp != "" {
			return exp
		}
	}
	words := make([]string, len(want))
	for i, w := range want {
		switch w {
		case "string":
			words[i] = "a string"
		case "integer":
			words[i] = "an integer"
		case "number":
			words[i] = "a number"
		case "boolean":
			words[i] = "a boolean (true or false)"
		case "array":
			words[i] = "an array"
		case "object":
			if exp := expect(node); exp != "" && len(want) == 1 {
				words[i] = exp
			} else {
				words[i] = "an object"
			}
		default:
			words[i] = w
		}
	}
	return strings.Join(words, " or ")
}

// gotValue says what came: the JSON kind, and the value itself when it is
// the point (a number out of range, a string that does not match), cut
// short when long.
func gotValue(v any, withValue bool) string {
	switch x := v.(type) {
	case stdjson.Number:
		return "number " + clip(string(x), 40)
	case string:
		if !withValue {
			return "string"
		}
		if utf8.RuneCountInString(x) > 40 {
			r := []rune(x)
			return strconv.Quote(string(r[:40])+"…") + fmt.Sprintf(" (%d characters)", len(r))
		}
		return strconv.Quote(x)
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", v)
}
