package main

import "github.com/cloudcall/cloudcall/shared/registry"

// inputSchema is the function's input JSON Schema (2020-12) from the
// registry: the console builds its invoke form from it.
func inputSchema(name string) ([]byte, error) { return registry.InputSchema(name) }
