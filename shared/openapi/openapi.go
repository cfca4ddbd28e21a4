// Package openapi renders the bundle's OpenAPI 3.1 document from the
// registry: one path per HTTP trigger with the function's input and success
// schemas, the shared error envelope per status, the error-code table, the
// caller-auth scheme and the Idempotency-Key header. `cloudcall openapi`
// prints it, the emulator serves it at GET /openapi.json, and openapi.json in
// the repository is it, checked for drift by a test.
package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// Document returns the OpenAPI 3.1 document, indented, ending in a newline.
func Document() ([]byte, error) {
	doc, err := build(registry.All())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Handler serves the document (GET /openapi.json).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := Document()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// Served by a running emulator, the server is the one that answered,
		// whatever its --addr.
		if r.Host != "" {
			if here, err := json.Marshal("http://" + r.Host); err == nil {
				b = bytes.Replace(b, []byte(`"`+localServer+`"`), here, 1)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

// localServer is the document's server: make run's default front door.
const localServer = "http://127.0.0.1:9000"

type obj = map[string]any

// errorCode is one row of the error-code table (error.json x-error-codes).
type errorCode struct {
	ErrCode int    `json:"errCode"`
	HTTP    int    `json:"http"`
	Meaning string `json:"meaning"`
	Action  string `json:"action"`
	// Reserved: no function answers it today; it stays in the table and
	// on no path, so no operation documents an answer it never gives.
	Reserved bool `json:"reserved"`
}

func build(fns []registry.Function) (obj, error) {
	var errSchema obj
	if err := decode(registry.ErrorSchema(), &errSchema); err != nil {
		return nil, fmt.Errorf("error schema: %w", err)
	}
	var codes []errorCode
	raw, _ := json.Marshal(errSchema["x-error-codes"])
	if err := json.Unmarshal(raw, &codes); err != nil {
		return nil, fmt.Errorf("error schema: x-error-codes: %w", err)
	}
	// The error schema's -1305 examples by API: a path that shows a refusal
	// shows one its function gives, upstream included (its errMsg says
	// "upstream.code says why").
	refusals := map[string]obj{}
	exs, _ := errSchema["examples"].([]any)
	for _, e := range exs {
		if ex, ok := e.(obj); ok && fmt.Sprint(ex["errCode"]) == "-1305" {
			api, _, _ := strings.Cut(fmt.Sprint(ex["errMsg"]), ":fail ")
			refusals[api] = ex
		}
	}
	schemas := obj{"ErrorEnvelope": clean(errSchema, errSchema)}
	paths := obj{}
	for _, f := range fns {
		in, out, err := schemasOf(f.Name)
		if err != nil {
			return nil, err
		}
		id := pascal(f.Name)
		schemas[id+"Input"] = clean(in, in)
		schemas[id+"Output"] = clean(out, out)
		if len(f.HTTPMethods) == 0 {
			continue // a timer: its schemas are listed, it has no path
		}
		item := obj{}
		for _, m := range f.HTTPMethods {
			op, err := operation(f, id, in, out, codes, refusals)
			if err != nil {
				return nil, err
			}
			item[strings.ToLower(m)] = op
		}
		paths["/"+f.Name] = item
	}
	return obj{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
		"info": obj{
			"title":   "cloudcall",
			"version": "1",
			"license": obj{"name": "MIT", "identifier": "MIT"}, // LICENSE
			"summary": "WeChat-style cloud calls for every vendor: one function per vendor operation, one envelope.",
			"description": "Every function answers one envelope: on success the vendor's fields in lowerCamelCase plus `errCode: 0` and " +
				"`errMsg: \"<api>:ok\"`; on failure `errCode` non-zero, `errMsg: \"<api>:fail <reason>\"` and, when they apply, `field`, " +
				"`retryAfter`, `upstream` and, for the charge, `idempotencyKey` (the key in force). A success is only a 2xx whose `errMsg` is the function's own `<api>:ok`. " +
				"Input rules are exactly the vendors' (each schema rule names its source in `x-source`). Vendor decimals are `format: decimal` " +
				"(exact digits: `x-go-type` makes them json.Number for oapi-codegen). Answers from the platform itself (an unknown path, a method " +
				"the trigger does not take) are not envelopes.\n\n" +
				codeTable(codes),
		},
		"servers":  []any{obj{"url": localServer, "description": "cloudcall local (make run); on FC or Lambda, the HTTP trigger's URL"}},
		"security": []any{obj{"cloudcallHmac": []any{}}},
		"paths":    paths,
		"components": obj{
			"schemas": schemas,
			"securitySchemes": obj{"cloudcallHmac": obj{
				"type": "apiKey", "in": "header", "name": "Authorization",
				"description": "CLOUDCALL-HMAC-SHA256 caller signature: `Authorization: CLOUDCALL-HMAC-SHA256 KeyId=<key id>,Timestamp=<unix seconds>," +
					"Nonce=<16-64 of A-Z a-z 0-9 _ ->,Signature=<64 lower-case hex>`, where Signature = hex HMAC-SHA256(secret, " +
					"\"CLOUDCALL-HMAC-SHA256\\n\" + METHOD + \"\\n\" + path + \"\\n\" + canonical query + \"\\n\" + timestamp + \"\\n\" + nonce + " +
					"\"\\n\" + hex SHA-256(body)). Keys come from CLOUDCALL_CALLER_KEYS; a timestamp more than 5 minutes off, a reused nonce " +
					"or a wrong signature is 401 / -1101. See the README, Caller authentication.",
			}},
			"parameters": obj{"IdempotencyKey": obj{
				"name": "Idempotency-Key", "in": "header", "required": false,
				"description": "At most one charge per key within 24 h. It follows idempotencyKey's rule (up to 128 printable ASCII characters without spaces), is sent once (so it holds no comma), and, sent with idempotencyKey, must carry the same key (400 -1001 otherwise). Absent: the request's fingerprint is the key.",
				"schema":      obj{"type": "string", "maxLength": 128, "pattern": "^[!-+\\--~]*$"},
			}},
		},
		"x-error-codes": codes,
	}, nil
}

func schemasOf(name string) (in, out obj, err error) {
	ib, err := registry.InputSchema(name)
	if err != nil {
		return nil, nil, err
	}
	ob, err := registry.OutputSchema(name)
	if err != nil {
		return nil, nil, err
	}
	if err := decode(ib, &in); err != nil {
		return nil, nil, fmt.Errorf("%s input: %w", name, err)
	}
	if err := decode(ob, &out); err != nil {
		return nil, nil, fmt.Errorf("%s output: %w", name, err)
	}
	return in, out, nil
}

func operation(f registry.Function, id string, in, out obj, codes []errorCode, refusals map[string]obj) (obj, error) {
	reqExamples := obj{}
	for i, ex := range examples(in) {
		reqExamples["example"+strconv.Itoa(i+1)] = obj{"value": ex}
	}
	okExamples := obj{}
	for i, ex := range examples(out) {
		okExamples["example"+strconv.Itoa(i+1)] = obj{"value": ex}
	}
	responses := obj{"200": obj{
		"description": "Success: errCode 0.",
		"content":     obj{"application/json": obj{"schema": ref(id + "Output"), "examples": okExamples}},
	}}
	byStatus := map[int][]errorCode{}
	for _, c := range codes {
		if !c.Reserved {
			byStatus[c.HTTP] = append(byStatus[c.HTTP], c)
		}
	}
	statuses := make([]int, 0, len(byStatus))
	for s := range byStatus {
		statuses = append(statuses, s)
	}
	slices.Sort(statuses)
	for _, st := range statuses {
		if st == http.StatusConflict && !isWrite(f) {
			continue
		}
		var lines []string
		for _, c := range byStatus[st] {
			lines = append(lines, fmt.Sprintf("`%d`: %s", c.ErrCode, c.Meaning))
		}
		if st == http.StatusBadGateway && f.Vendor == "wechat" {
			lines = append(lines, "a WeChat errcode (e.g. `9300531`): WeChat refused; errMsg carries its rid")
		}
		shown := byStatus[st][0]
		if isWrite(f) {
			// What the charge answers with that status: its 504 is an
			// unknown outcome and its 502 a refusal, not a read's.
			for _, c := range byStatus[st] {
				if c.ErrCode == -1304 || c.ErrCode == -1305 {
					shown = c
				}
			}
		}
		example := obj{"errCode": shown.ErrCode, "errMsg": f.API + ":fail " + shown.Meaning}
		if isWrite(f) && st >= http.StatusConflict && st != http.StatusRequestEntityTooLarge && st != http.StatusInternalServerError {
			example["idempotencyKey"] = "demo-1" // echoed on every failure once the key is known
		}
		if shown.ErrCode == -1001 {
			// What the function answers, word for word, to {} (the first
			// required field is missing) or, when {} is valid, to an empty
			// body: the function's own decoder writes it.
			ex, err := invalidExample(f)
			if err != nil {
				return nil, err
			}
			example = ex
		}
		if shown.ErrCode == -1305 {
			ex, ok := refusals[f.API]
			if !ok {
				return nil, fmt.Errorf("%s: error.json has no -1305 example for its 502 (a refusal with its upstream)", f.API)
			}
			example = ex
		}
		if shown.ErrCode == -1201 {
			example["retryAfter"] = 2 // with the Retry-After header below
		}
		if shown.ErrCode == envelope.CodeStoreUnavailable {
			example["retryAfter"] = envelope.StoreRetryAfter // every -1501 carries one
		}
		resp := obj{
			"description": strings.Join(lines, "; "),
			"content":     obj{"application/json": obj{"schema": ref("ErrorEnvelope"), "example": example}},
		}
		switch st {
		case http.StatusTooManyRequests:
			resp["headers"] = obj{"Retry-After": obj{"description": "Seconds to wait (also retryAfter in the body).", "schema": obj{"type": "integer"}}}
		case http.StatusBadGateway, http.StatusServiceUnavailable:
			resp["headers"] = obj{"Retry-After": obj{"description": "Seconds to wait, when the body has retryAfter (a vendor's 5xx that said how long; a store that is down).", "schema": obj{"type": "integer"}}}
		}
		responses[strconv.Itoa(st)] = resp
	}
	op := obj{
		"operationId": lowerFirst(id),
		"summary":     f.API,
		"description": f.Description + ".\n\n" + str(in["description"]),
		"tags":        []any{f.Vendor},
		"requestBody": obj{
			"required": true,
			"content":  obj{"application/json": obj{"schema": ref(id + "Input"), "examples": reqExamples}},
		},
		"responses": responses,
	}
	if isWrite(f) {
		op["parameters"] = []any{ref("IdempotencyKey", "parameters")}
	}
	return op, nil
}

// isWrite is a function with an idempotency key (the money-moving charge).
func isWrite(f registry.Function) bool {
	b, err := registry.InputSchema(f.Name)
	return err == nil && bytes.Contains(b, []byte(`"idempotencyKey"`))
}

// invalidExample is the failure body the function answers to {} or, when
// its schema takes {}, to an empty body.
func invalidExample(f registry.Function) (obj, error) {
	b, err := registry.InputSchema(f.Name)
	if err != nil {
		return nil, err
	}
	s, err := envelope.CompileSchema(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	var v map[string]any
	err = envelope.DecodeInput([]byte(`{}`), s, &v)
	if err == nil {
		err = envelope.DecodeInput(nil, s, &v)
	}
	var e *envelope.Error
	if !errors.As(err, &e) {
		return nil, fmt.Errorf("%s: an empty body was not refused as invalid input: %v", f.Name, err)
	}
	var out obj
	if err := json.Unmarshal(envelope.Failure(f.API, e).Body, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func examples(s obj) []any {
	exs, _ := s["examples"].([]any)
	return exs
}

func codeTable(codes []errorCode) string {
	var b strings.Builder
	b.WriteString("| errCode | HTTP | meaning | what to do |\n| --- | --- | --- | --- |\n")
	b.WriteString("| `0` | 200 | ok | |\n")
	b.WriteString("| WeChat errcode | 502 | WeChat refused (`40125` bad secret, `9300531` bad biz id or password, ...) | see WeChat's code; errMsg carries its rid |\n")
	for _, c := range codes {
		fmt.Fprintf(&b, "| `%d` | %d | %s | %s |\n", c.ErrCode, c.HTTP, c.Meaning, c.Action)
	}
	return b.String()
}

func ref(name string, section ...string) obj {
	sec := "schemas"
	if len(section) > 0 {
		sec = section[0]
	}
	return obj{"$ref": "#/components/" + sec + "/" + name}
}

// clean makes a registry schema a component: local $refs are inlined (a
// component's "#/..." would point at the OpenAPI document's root), and
// $schema and $defs go (the dialect is the document's).
func clean(node any, root obj) any {
	switch x := node.(type) {
	case map[string]any:
		out := obj{}
		if r, ok := x["$ref"].(string); ok && strings.HasPrefix(r, "#/") {
			var target any = root
			for _, p := range strings.Split(strings.TrimPrefix(r, "#/"), "/") {
				m, _ := target.(map[string]any)
				target = m[p]
			}
			if m, ok := clean(target, root).(obj); ok {
				for k, v := range m {
					out[k] = v
				}
			}
		}
		for k, v := range x {
			if k == "$ref" || k == "$schema" || k == "$defs" {
				continue
			}
			out[k] = clean(v, root)
		}
		if x["type"] == "number" {
			// Vendor decimals are exact digits (the Go client's
			// json.Number): say so to generators, which otherwise make a
			// float32 (oapi-codegen), and 999999.99 went out as 1000000.
			out["format"] = "decimal"
			// (Aliased: oapi-codegen imports encoding/json itself, and a
			// second plain import of it does not compile.)
			out["x-go-type"] = "decjson.Number"
			out["x-go-type-import"] = obj{"path": "encoding/json", "name": "decjson"}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = clean(v, root)
		}
		return out
	}
	return node
}

func decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // keep 9223372036854775807 and 999999.99 exact
	return dec.Decode(v)
}

func pascal(name string) string {
	var b strings.Builder
	for _, part := range strings.Split(name, "-") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
