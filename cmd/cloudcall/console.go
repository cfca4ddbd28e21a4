package main

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/cloudcall/cloudcall/shared/console"
	"github.com/cloudcall/cloudcall/shared/emulator"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// debugTimeout stands for "no deadline" under --debug: a day.
const debugTimeout = 24 * time.Hour

// newConsole describes the running functions and sandboxes to the console.
func newConsole(emu *emulator.Emulator, platform string, bins map[string]string, sbs []*servedSandbox, w *watcher, debugFn string, callerKeys map[string]string) (*console.Console, error) {
	var fns []console.Function
	for _, f := range registry.All() {
		if bins[f.Name] == "" {
			continue
		}
		cf := console.Function{Name: f.Name, API: f.API, Description: f.Description, Vendor: f.Vendor, HTTP: len(f.HTTPMethods) > 0}
		if json.Valid([]byte(f.Example)) {
			cf.Example = json.RawMessage(f.Example)
		}
		if s, err := inputSchema(f.Name); err == nil && json.Valid(s) {
			cf.Schema = s
		}
		fns = append(fns, cf)
	}
	var cs []console.Sandbox
	for _, s := range sbs {
		cs = append(cs, console.Sandbox{Vendor: s.vendor, URL: s.url})
	}
	opts := console.Options{Emulator: emu, Functions: fns, Sandboxes: cs, Platform: platform, Debug: debugFn, CallerKeys: callerKeys}
	if w != nil {
		opts.Builds = w.Builds
	}
	return console.New(opts)
}

// frontDoors puts the console at / and /__console/ in front of the
// emulator's doors.
func frontDoors(c *console.Console, emu *emulator.Emulator) http.Handler {
	mux := http.NewServeMux()
	ch := c.Handler()
	mux.Handle("GET /{$}", ch)
	mux.Handle("/__console/", ch)
	mux.Handle("/", emu.Handler())
	return mux
}
