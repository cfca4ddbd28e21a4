package cloudcall

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sort"
	"strings"
)

// decodeNumbers is json.Unmarshal keeping numbers in any-typed members as
// json.Number (the vendor's digits, as the typed amounts keep them).
func decodeNumbers(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("cloudcall: data after the JSON value")
	}
	return nil
}

// unnamed puts the members of the JSON object b that are not named into
// *into (nil when there are none), numbers as json.Number: the fields a
// vendor adds later reach Go callers as they reach Node's.
func unnamed(b []byte, into *map[string]any, named ...string) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	*into = nil
	for k, raw := range all {
		// encoding/json fills a named field from a name in any case
		// ("ID" for "id"): such a member is the field's, not Extra's.
		if isNamed(named, k) {
			continue
		}
		var v any
		if err := decodeNumbers(raw, &v); err != nil {
			return err
		}
		if *into == nil {
			*into = map[string]any{}
		}
		(*into)[k] = v
	}
	return nil
}

// withExtra encodes v, a struct, with extra's members after its own (in key
// order; a name v already has, in any case, is left out).
func withExtra(v any, extra map[string]any, named ...string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !isNamed(named, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := bytes.TrimSuffix(b, []byte("}"))
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(extra[k])
		if err != nil {
			return nil, err
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, kb...), ':'), vb...)
	}
	return append(out, '}'), nil
}

// isNamed says k is one of the named fields' names, in any case: encoding/json
// fills a named field from any case of its name, both ways round.
func isNamed(named []string, k string) bool {
	return slices.ContainsFunc(named, func(n string) bool { return strings.EqualFold(n, k) })
}
