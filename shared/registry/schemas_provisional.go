package registry

// PROVISIONAL (issue 18): the schema accessors of the contract issue 17
// owns, so the client generator builds before that lands. Delete this file
// when issue 17's accessors arrive.

import (
	"embed"
	"fmt"
)

//go:embed schemas/*.json
var schemaFS embed.FS

// InputSchema is the JSON Schema (2020-12) of a function's input.
func InputSchema(name string) ([]byte, error) { return schemaFile(name, "input") }

// OutputSchema is the JSON Schema (2020-12) of a function's success envelope.
func OutputSchema(name string) ([]byte, error) { return schemaFile(name, "output") }

func schemaFile(name, kind string) ([]byte, error) {
	b, err := schemaFS.ReadFile("schemas/" + name + "." + kind + ".json")
	if err != nil {
		return nil, fmt.Errorf("registry: no %s schema for %q: %w", kind, name, err)
	}
	return b, nil
}
