package clientgen

import "github.com/cloudcall/cloudcall/shared/registry"

// FromRegistry renders the clients of every registry function that has an
// HTTP trigger (a timer-only function is nothing a client can call).
func FromRegistry() (map[string][]byte, error) {
	var fns []Function
	for _, f := range registry.All() {
		if len(f.HTTPMethods) == 0 {
			continue
		}
		in, err := registry.InputSchema(f.Name)
		if err != nil {
			return nil, err
		}
		out, err := registry.OutputSchema(f.Name)
		if err != nil {
			return nil, err
		}
		fns = append(fns, Function{Name: f.Name, API: f.API, Input: in, Output: out})
	}
	return Generate(fns)
}
