package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cloudcall/cloudcall/shared/registry"
	"github.com/cloudcall/cloudcall/shared/suggest"
)

// eventKinds renders the sample events `cloudcall event` prints, like `sam
// local generate-event`: each is the shape the platform sends, carrying the
// function's example input where the shape has a body or payload.
var eventKinds = map[string]struct {
	summary string
	render  func(f registry.Function, now time.Time) any
	timer   bool // a schedule's event, not an HTTP request
}{
	"fc-http": {"Function Compute 3.0 HTTP trigger (version v1)", func(f registry.Function, now time.Time) any {
		return map[string]any{
			"version": "v1", "rawPath": "/" + f.Name, "body": f.Example, "isBase64Encoded": false,
			"headers":         map[string]string{"Content-Type": "application/json", "User-Agent": "curl/8.5.0"},
			"queryParameters": map[string]string{},
			"requestContext": map[string]any{"accountId": "123456789012", "domainName": "local.fcapp.run", "domainPrefix": "local",
				"requestId": "1-6765a2b7-0c4a2f1e6b2d9a0f3e5c7d21", "time": now.UTC().Format(time.RFC3339), "timeEpoch": fmt.Sprint(now.UnixMilli()),
				"http": map[string]string{"method": "POST", "path": "/" + f.Name, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "curl/8.5.0"}},
		}
	}, false},
	"apigw-v2": {"API Gateway HTTP API payload 2.0 / Lambda function URL", func(f registry.Function, now time.Time) any {
		return map[string]any{
			"version": "2.0", "routeKey": "POST /" + f.Name, "rawPath": "/" + f.Name, "rawQueryString": "",
			"headers": map[string]string{"content-type": "application/json", "user-agent": "curl/8.5.0"},
			"body":    f.Example, "isBase64Encoded": false,
			"requestContext": map[string]any{"accountId": "123456789012", "apiId": "local", "domainName": "local.execute-api.us-east-1.amazonaws.com",
				"requestId": "JKJaXmPLvHcESHA=", "routeKey": "POST /" + f.Name, "stage": "$default", "time": now.UTC().Format("02/Jan/2006:15:04:05 -0700"), "timeEpoch": now.UnixMilli(),
				"http": map[string]string{"method": "POST", "path": "/" + f.Name, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "curl/8.5.0"}},
		}
	}, false},
	"fc-timer": {"Function Compute timer trigger", func(f registry.Function, now time.Time) any {
		name, payload := f.Name+"-timer", "{}"
		if f.Schedule != nil {
			name, payload = f.Schedule.Name, f.Schedule.Payload
		}
		return map[string]any{"triggerTime": now.UTC().Format(time.RFC3339), "triggerName": name, "payload": payload}
	}, true},
	"eventbridge": {"EventBridge scheduled event (rule)", func(f registry.Function, now time.Time) any {
		return map[string]any{"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event", "source": "aws.events",
			"account": "123456789012", "time": now.UTC().Format(time.RFC3339), "region": "us-east-1",
			"resources": []string{"arn:aws:events:us-east-1:123456789012:rule/" + f.Name + "-schedule"}, "detail": map[string]any{}}
	}, true},
	"schedule-v2": {"EventBridge Scheduler (SAM ScheduleV2) input of this bundle", func(f registry.Function, now time.Time) any {
		name, payload := f.Name+"-schedule", json.RawMessage("{}")
		if f.Schedule != nil {
			name = f.Schedule.Name
			if json.Valid([]byte(f.Schedule.Payload)) {
				payload = json.RawMessage(f.Schedule.Payload)
			}
		}
		return map[string]any{"source": "cloudcall.schedule", "schedule": name, "payload": payload}
	}, true},
}

func eventKindNames() []string {
	out := make([]string, 0, len(eventKinds))
	for k := range eventKinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func runEvent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("event", args, stdout, stderr)
	fn := fs.String("function", "logistics-get-quota", "function whose example input the event carries (and whose path or schedule it names); a timer kind defaults to the function with a schedule")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cloudcall event <kind> [--function NAME]\n\nPrints a ready-to-send sample event, like `sam local generate-event`:\n  cloudcall event fc-http | cloudcall invoke logistics-get-quota --event -\n\nKinds:")
		for _, k := range eventKindNames() {
			fmt.Fprintf(fs.Output(), "  %-12s %s\n", k, eventKinds[k].summary)
		}
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	var kind string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		kind, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if kind == "" && len(rest) > 0 {
		kind, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q (one kind, then flags)", rest[0])
	}
	k, ok := eventKinds[kind]
	switch {
	case kind == "":
		return usagef("name a kind: %s", strings.Join(eventKindNames(), ", "))
	case !ok:
		return usagef("unknown kind %q%s; kinds: %s", kind, suggest.Hint(kind, eventKindNames()), strings.Join(eventKindNames(), ", "))
	}
	named := false
	fs.Visit(func(fl *flag.Flag) { named = named || fl.Name == "function" })
	if k.timer && !named {
		for _, name := range registry.Names() {
			if f, _ := registry.Lookup(name); f.Schedule != nil {
				*fn = name
				break
			}
		}
	}
	f, ok := registry.Lookup(*fn)
	if !ok {
		return usagef("--function %q: unknown function%s; known functions: %s", *fn, suggest.Hint(*fn, registry.Names()), strings.Join(registry.Names(), ", "))
	}
	// A sample of a trigger the function does not have would run it in a
	// way no deployment can (quota-alert over HTTP sent every alert).
	switch {
	case k.timer && f.Schedule == nil:
		return usagef("%s has no timer (it is called over HTTP): use fc-http or apigw-v2", f.Name)
	case !k.timer && len(f.HTTPMethods) == 0:
		return usagef("%s has no HTTP trigger (it runs on its schedule): use fc-timer, eventbridge or schedule-v2", f.Name)
	}
	b, err := json.MarshalIndent(k.render(f, time.Now()), "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(b))
	return err
}

// checkEvent refuses an event that is not one JSON value: an empty or broken
// file must not reach a function as null.
func checkEvent(b []byte, from string) error {
	if len(strings.TrimSpace(string(b))) == 0 {
		return usagef("the event from %s is empty; give a JSON event (cloudcall event --help prints samples)", from)
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return usagef("the event from %s is not valid JSON (%v); cloudcall event --help prints samples", from, err)
	}
	return nil
}
