package registry

import (
	"embed"
	"errors"
	"fmt"
	"strings"
)

// The functions' contracts: one JSON Schema (2020-12) per function for its
// input and one for its success envelope, plus the error envelope every
// function shares. They are the single source for input validation, the README
// input tables, openapi.json, the generated clients and the console's forms.
//
//go:embed schemas/*.json
var schemaFS embed.FS

// ErrNoSchema is returned for a name the registry does not know.
var ErrNoSchema = errors.New("no schema")

// InputSchema returns the JSON Schema of a function's input (a copy).
func InputSchema(name string) ([]byte, error) { return schemaFile(name, "input") }

// OutputSchema returns the JSON Schema of a function's success envelope (a copy).
func OutputSchema(name string) ([]byte, error) { return schemaFile(name, "output") }

// ErrorSchema returns the JSON Schema of the error envelope every function
// answers failures with; its x-error-codes keyword is the error-code table.
func ErrorSchema() []byte {
	b, err := schemaFS.ReadFile("schemas/error.json")
	if err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	return b
}

// schemaFile reads the embedded file first and consults the registry only to
// explain a miss: a function compiles its schema at cold start, and building
// the whole registry there would cost every cold start for nothing.
func schemaFile(name, kind string) ([]byte, error) {
	b, err := schemaFS.ReadFile("schemas/" + name + "." + kind + ".json")
	if err == nil && !strings.ContainsAny(name, "/.") {
		return b, nil
	}
	if _, ok := Lookup(name); !ok {
		return nil, fmt.Errorf("%w: %q is not a function of the registry", ErrNoSchema, name)
	}
	return nil, fmt.Errorf("%w: %s has no %s schema: %v", ErrNoSchema, name, kind, err)
}
