package runtime

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/cloudcall/cloudcall/shared/envelope"
	"github.com/cloudcall/cloudcall/shared/registry"
)

// Shape is the kind of payload a platform delivered.
type Shape string

const (
	ShapeDirect       Shape = "direct"      // the envelope input itself
	ShapeFCHTTP       Shape = "fc-http"     // FC 3.0 HTTP trigger event (version "v1")
	ShapeAPIGatewayV2 Shape = "apigw-v2"    // API Gateway HTTP API v2 / Lambda function URL (version "2.0")
	ShapeFCTimer      Shape = "fc-timer"    // FC timer trigger {triggerTime, triggerName, payload}
	ShapeEventBridge  Shape = "eventbridge" // EventBridge "Scheduled Event"
	ShapeSchedule     Shape = "schedule"    // the bundle's own ScheduleV2 input {"source":"cloudcall.schedule",...}
	// ShapeHTTPOther is an HTTP event of a shape the bundle does not deploy
	// (API Gateway REST payload 1.0, an ALB target): still an HTTP call, so
	// guarded, never taken for a direct invocation.
	ShapeHTTPOther Shape = "http-other"
)

// HTTPV1Event is what API Gateway REST (payload 1.0) and ALB targets send.
type HTTPV1Event struct {
	HTTPMethod                      string              `json:"httpMethod"`
	Path                            string              `json:"path"`
	Headers                         map[string]string   `json:"headers"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`
	Body                            string              `json:"body"`
	IsBase64Encoded                 bool                `json:"isBase64Encoded"`
	RequestContext                  struct {
		RequestID string `json:"requestId"`
		// HTTPMethod is REST's copy of the method (the event's own
		// httpMethod is the one read; the two must agree).
		HTTPMethod string `json:"httpMethod"`
		// Path is the path the caller called, stage included
		// ("/prod/fn"), where the event's own path has no stage (REST).
		Path     string `json:"path"`
		Identity struct {
			SourceIP string `json:"sourceIp"`
		} `json:"identity"`
		// ELB marks an Application Load Balancer, which passes query
		// values as sent, without decoding them.
		ELB *struct{} `json:"elb"`
	} `json:"requestContext"`
}

// ScheduleSource marks the Input the descriptors give EventBridge Scheduler
// (SAM ScheduleV2), which delivers it verbatim: {"source":"cloudcall.schedule",
// "schedule":"<name>","payload":{...}}.
const ScheduleSource = "cloudcall.schedule"

// FCHTTPEvent is the FC 3.0 HTTP trigger event for built-in runtimes.
type FCHTTPEvent struct {
	Version         string            `json:"version"`
	RawPath         string            `json:"rawPath"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
	Headers         map[string]string `json:"headers"`
	QueryParameters map[string]string `json:"queryParameters"`
	RequestContext  struct {
		AccountID  string `json:"accountId"`
		DomainName string `json:"domainName"`
		RequestID  string `json:"requestId"`
		HTTP       struct {
			Method    string `json:"method"`
			Path      string `json:"path"`
			Protocol  string `json:"protocol"`
			SourceIP  string `json:"sourceIp"`
			UserAgent string `json:"userAgent"`
		} `json:"http"`
		Time      string `json:"time"`
		TimeEpoch string `json:"timeEpoch"`
	} `json:"requestContext"`
}

// APIGatewayV2Event is the HTTP API payload 2.0 (also Lambda function URLs).
type APIGatewayV2Event struct {
	Version         string            `json:"version"`
	RouteKey        string            `json:"routeKey"`
	RawPath         string            `json:"rawPath"`
	RawQueryString  string            `json:"rawQueryString"`
	Cookies         []string          `json:"cookies,omitempty"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
	RequestContext  struct {
		AccountID string `json:"accountId"`
		APIID     string `json:"apiId"`
		RequestID string `json:"requestId"`
		HTTP      struct {
			Method    string `json:"method"`
			Path      string `json:"path"`
			Protocol  string `json:"protocol"`
			SourceIP  string `json:"sourceIp"`
			UserAgent string `json:"userAgent"`
		} `json:"http"`
		TimeEpoch int64 `json:"timeEpoch"`
		// Authorizer.IAM is there only when API Gateway or the function
		// URL verified the caller's SigV4 signature (AWS_IAM), and then
		// with the signer's accessKey and userArn always filled.
		Authorizer *struct {
			IAM *struct {
				AccessKey string `json:"accessKey"`
				UserARN   string `json:"userArn"`
			} `json:"iam"`
		} `json:"authorizer,omitempty"`
	} `json:"requestContext"`
}

// HTTPResponse is what both FC HTTP triggers and API Gateway v2 take back.
type HTTPResponse struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
	Body            string            `json:"body"`
}

// FCTimerEvent is the FC timer trigger event.
type FCTimerEvent struct {
	TriggerTime string `json:"triggerTime"`
	TriggerName string `json:"triggerName"`
	Payload     string `json:"payload"`
}

// EventBridgeEvent is the scheduled event of an EventBridge rule (SAM Schedule).
type EventBridgeEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// probe holds the keys that tell the shapes apart.
type probe struct {
	Version        *string         `json:"version"`
	RawPath        *string         `json:"rawPath"`
	HTTPMethod     json.RawMessage `json:"httpMethod"` // present, even null, marks an HTTP event
	RequestContext json.RawMessage `json:"requestContext"`
	RouteKey       json.RawMessage `json:"routeKey"` // v2's "GET /x": a copy of the method
	TriggerTime    *string         `json:"triggerTime"`
	TriggerName    *string         `json:"triggerName"`
	DetailType     *string         `json:"detail-type"`
	Source         *string         `json:"source"`
	Payload        json.RawMessage `json:"payload"`
}

// eventMarkers are the probe's names that make a payload an event: every
// shape below needs one of them as a key.
var eventMarkers = [...]string{"rawpath", "requestcontext", "httpmethod", "triggertime", "source"}

// mayBeEvent reports whether payload could be an event, without decoding
// it: a direct invocation (the common warm call) names none of the markers.
// encoding/json matches names without case, with Unicode folding and
// escapes, so an escape or any non-ASCII byte sends the payload to the
// probe as before; otherwise an ASCII case-insensitive search is exact.
func mayBeEvent(payload []byte) bool {
	for _, c := range payload {
		if c == '\\' || c >= 0x80 {
			return true
		}
	}
	for _, m := range eventMarkers {
		if containsFold(payload, m) {
			return true
		}
	}
	return false
}

// containsFold reports whether b contains the lower-case ASCII word w in
// any case.
func containsFold(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		j := 0
		for ; j < len(w); j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// Detect reads a platform payload into the envelope input. A payload that is
// none of the known event shapes is a direct invocation whose body is the
// payload itself (the envelope decoder then judges it). An event that is
// recognised but broken is an *envelope.Error (400).
func Detect(payload []byte) (*envelope.Input, Shape, error) { return detect(payload, 0) }

// detect is Detect refusing, before decoding it, an event larger than any
// input of at most maxBody bytes arrives in (0: no bound). The probe skips
// the body without copying it; decoding a 30 MB HTTP event (its body, a
// copy, the base64 decode) got a 128 MB instance killed before any limit
// was looked at.
func detect(payload []byte, maxBody int) (*envelope.Input, Shape, error) {
	trimmed := envelope.TrimSpace(payload)
	direct := &envelope.Input{Body: trimmed, Trigger: envelope.TriggerDirect}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return direct, ShapeDirect, nil
	}
	if !mayBeEvent(trimmed) {
		return direct, ShapeDirect, nil
	}
	var p probe
	if err := json.Unmarshal(trimmed, &p); err != nil {
		if !json.Valid(trimmed) {
			return direct, ShapeDirect, nil // the input's own decoder says where the syntax breaks
		}
		// An event's member of another type ("version":1, "source":5):
		// read as a direct input, the ignore policy skipped its
		// httpMethod and requestContext and a GET charged (a re-tester).
		return nil, ShapeDirect, badEvent("platform", err)
	}
	shape := p.shape()
	if maxBody > 0 && len(trimmed) > eventBound(maxBody) && shape != ShapeDirect {
		return nil, shape, &envelope.Error{Code: envelope.CodePayloadTooLarge,
			Reason: fmt.Sprintf("the %s event is %d bytes, more than an input within the limit arrives in; at most %d bytes of input are accepted (CLOUDCALL_MAX_BODY_BYTES)", shape, len(trimmed), maxBody)}
	}
	if shape == ShapeDirect {
		return direct, ShapeDirect, nil
	}
	if name, ok := eventDuplicate(trimmed); ok {
		// encoding/json takes the last of "httpMethod" twice, or of
		// "HttpMethod" beside "httpMethod": {"httpMethod":"GET",
		// "httpMethod":"POST"} charged as a POST (a re-tester).
		return nil, shape, &envelope.Error{Code: envelope.CodeInvalidInput,
			Reason: fmt.Sprintf("invalid input: malformed platform event: %s is given twice (names compared without regard to case, as the event is read)", name)}
	}
	if shape == ShapeHTTPOther && p.RawPath != nil && len(p.RequestContext) > 0 {
		// rawPath and requestContext are FC 3.0's and API Gateway v2's,
		// told apart by version alone: another (a v2 event with "1.0",
		// "v2" or "") was read as a broken FC event (an outside tester).
		got := "none"
		if p.Version != nil {
			got = envelope.Quote(*p.Version)
		}
		return nil, shape, &envelope.Error{Code: envelope.CodeInvalidInput,
			Reason: "invalid input: malformed platform event: version: expected \"v1\" (an FC 3.0 HTTP trigger event) or \"2.0\" (an API Gateway HTTP API v2 or function URL event) beside rawPath and requestContext, got " + got + "; no platform sends another (to invoke directly, send the input JSON without rawPath and requestContext)"}
	}
	switch shape {
	case ShapeAPIGatewayV2:
		var ev APIGatewayV2Event
		if err := json.Unmarshal(trimmed, &ev); err != nil {
			return nil, ShapeAPIGatewayV2, badEvent("API Gateway v2", err)
		}
		in, err := httpInput(ev.Body, ev.IsBase64Encoded, ev.Headers, p.agree(ev.RequestContext.HTTP.Method), ev.RawPath, ev.RawQueryString, ev.RequestContext.HTTP.SourceIP)
		if err != nil {
			return nil, ShapeAPIGatewayV2, err
		}
		in.RequestID = ev.RequestContext.RequestID
		if a := ev.RequestContext.Authorizer; a != nil && a.IAM != nil {
			// The event is believed only as API Gateway writes it: an
			// "iam":{} counted as a verified caller and ran the charge
			// unsigned (an outside tester).
			if missing := iamMissing(a.IAM.AccessKey, a.IAM.UserARN); missing != "" {
				return nil, ShapeAPIGatewayV2, &envelope.Error{Code: envelope.CodeUnauthenticated,
					Reason: "unauthenticated: requestContext.authorizer.iam has no " + missing + "; API Gateway fills accessKey and userArn for every call it verified with AWS_IAM, so this is no call it verified, and nothing ran"}
			}
			in.PlatformCaller = "aws-iam:" + a.IAM.UserARN
		}
		in.Event, in.EventPayload = `an API Gateway v2 event (it has version "2.0", rawPath and requestContext), whose input is its body`, trimmed
		return in, ShapeAPIGatewayV2, nil
	case ShapeFCHTTP:
		var ev FCHTTPEvent
		if err := json.Unmarshal(trimmed, &ev); err != nil {
			return nil, ShapeFCHTTP, badEvent("FC HTTP trigger", err)
		}
		q := url.Values{}
		for k, v := range ev.QueryParameters {
			q.Set(k, v)
		}
		method := p.agree(ev.RequestContext.HTTP.Method)
		in, err := httpInput(ev.Body, ev.IsBase64Encoded, ev.Headers, method, ev.RawPath, q.Encode(), ev.RequestContext.HTTP.SourceIP)
		if err != nil {
			return nil, ShapeFCHTTP, err
		}
		in.RequestID = ev.RequestContext.RequestID
		in.QueryJoined = true
		in.Event, in.EventPayload = "an FC HTTP trigger event (it has rawPath and requestContext), whose input is its body", trimmed
		return in, ShapeFCHTTP, nil
	case ShapeHTTPOther:
		var ev HTTPV1Event
		if err := json.Unmarshal(trimmed, &ev); err != nil {
			return nil, ShapeHTTPOther, badEvent("HTTP", err)
		}
		q := url.Values{}
		for k, v := range ev.QueryStringParameters {
			q.Set(k, v)
		}
		for k, vs := range ev.MultiValueQueryStringParameters {
			q[k] = vs
		}
		rawQuery := q.Encode()
		if ev.RequestContext.ELB != nil {
			rawQuery = albQuery(q)
		}
		// The caller signed the path it called: REST API events carry it,
		// stage included, in requestContext.path.
		path := cmp.Or(ev.RequestContext.Path, ev.Path)
		// REST carries the method twice: the event's own when it has one
		// (even null or empty), else requestContext's; two that differ
		// are no platform's event. "" is refused (405).
		method := ev.HTTPMethod
		if len(p.HTTPMethod) == 0 {
			method = ev.RequestContext.HTTPMethod
		} else if rc := ev.RequestContext.HTTPMethod; rc != "" && rc != method {
			method = ""
		}
		in, err := httpInput(ev.Body, ev.IsBase64Encoded, ev.Headers, p.agree(method), path, rawQuery, ev.RequestContext.Identity.SourceIP)
		if err != nil {
			return nil, ShapeHTTPOther, err
		}
		for k, vs := range ev.MultiValueHeaders {
			if _, single := ev.Headers[k]; single {
				in.Header.Del(k) // the same values again, as a list
			}
			for _, v := range vs {
				in.Header.Add(k, v)
			}
		}
		in.RequestID = ev.RequestContext.RequestID
		in.Event, in.EventPayload = "an HTTP event (it has httpMethod), whose input is its body", trimmed
		if len(p.RequestContext) > 0 {
			in.Event = "an HTTP event (it has requestContext), whose input is its body"
		}
		return in, ShapeHTTPOther, nil
	case ShapeFCTimer:
		var ev FCTimerEvent
		if err := json.Unmarshal(trimmed, &ev); err != nil {
			return nil, ShapeFCTimer, badEvent("FC timer", err)
		}
		return &envelope.Input{Body: objectOrEmpty([]byte(ev.Payload)), Trigger: envelope.TriggerTimer,
			Event: eventFCTimer, EventPayload: trimmed}, ShapeFCTimer, nil
	case ShapeEventBridge:
		var ev EventBridgeEvent
		if err := json.Unmarshal(trimmed, &ev); err != nil {
			return nil, ShapeEventBridge, badEvent("EventBridge", err)
		}
		return &envelope.Input{Body: objectOrEmpty(ev.Detail), Trigger: envelope.TriggerTimer,
			Event: eventEventBridge, EventPayload: trimmed}, ShapeEventBridge, nil
	case ShapeSchedule:
		return &envelope.Input{Body: objectOrEmpty(p.Payload), Trigger: envelope.TriggerTimer,
			Event: eventSchedule, EventPayload: trimmed}, ShapeSchedule, nil
	}
	return direct, ShapeDirect, nil
}

// The timer events as Input.Event names them.
const (
	eventFCTimer     = "an FC timer event (it has triggerTime and triggerName), whose input is its payload"
	eventEventBridge = `an EventBridge scheduled event (it has detail-type "Scheduled Event" and source), whose input is its detail`
	eventSchedule    = `a schedule event (it has source "cloudcall.schedule"), whose input is its payload`
)

// timerSource says, for a timer event as its platform sends it, where a
// deployer set the input it carries; ok is false for any other payload,
// one with a member no platform's timer event has (a caller's direct
// input that only looked like a timer) included. The members are the
// platforms' own: FC's timer event (vendor notes §4), the CloudWatch
// "Scheduled Event" (§5; replay-name on a replayed one), and the Input
// the descriptors give ScheduleV2.
func timerSource(in *envelope.Input) (string, bool) {
	var members []string
	var source string
	switch in.Event {
	case eventFCTimer:
		members, source = []string{"triggerTime", "triggerName", "payload"}, "the FC timer trigger's payload (triggerConfig.payload)"
	case eventEventBridge:
		members, source = []string{"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail", "replay-name"}, "the EventBridge scheduled event's detail"
	case eventSchedule:
		members, source = []string{"source", "schedule", "payload"}, "the ScheduleV2 Input's payload"
	default:
		return "", false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(in.EventPayload, &m) != nil {
		return "", false
	}
	for k := range m {
		if !slices.Contains(members, k) {
			return "", false
		}
	}
	return source, true
}

// iamMissing names what an AWS_IAM authorizer's description lacks of what
// API Gateway always fills, "" when nothing. Blank is none: API Gateway
// never writes one, and " " passed for a signer (an outside tester).
func iamMissing(accessKey, userARN string) string {
	accessKey, userARN = strings.TrimSpace(accessKey), strings.TrimSpace(userARN)
	switch {
	case accessKey == "" && userARN == "":
		return "accessKey and no userArn"
	case accessKey == "":
		return "accessKey"
	case userARN == "":
		return "userArn"
	}
	return ""
}

// agree is the event's method, own (the one its shape reads), when every
// copy of the method the payload carries says the same: the top-level
// httpMethod, requestContext.httpMethod, requestContext.http.method and a
// routeKey's ("GET /x"; not $default). Otherwise "" (refused with the
// 405): no platform sends copies that differ, and one read while another
// said GET charged (two re-testers).
func (p *probe) agree(own string) string {
	if own == "" {
		return ""
	}
	same := func(raw json.RawMessage) bool {
		var m string
		return json.Unmarshal(raw, &m) == nil && m == own
	}
	if len(p.HTTPMethod) > 0 && !same(p.HTTPMethod) {
		return ""
	}
	// API Gateway's route keys: "$default", or "METHOD /path" with one
	// space (ANY for every method). Anything else ("GET", "GET\t/x",
	// null) is no platform's, and "GET" alone charged (a re-tester).
	routeOK := func(raw json.RawMessage) bool {
		var rk string
		if string(raw) == "null" || json.Unmarshal(raw, &rk) != nil {
			return false
		}
		m, path, spaced := strings.Cut(rk, " ")
		return rk == "$default" || (spaced && strings.HasPrefix(path, "/") && (m == own || m == "ANY"))
	}
	if len(p.RouteKey) > 0 && !routeOK(p.RouteKey) {
		return ""
	}
	if len(p.RequestContext) == 0 || string(p.RequestContext) == "null" {
		return own
	}
	var rc struct {
		HTTPMethod json.RawMessage `json:"httpMethod"`
		HTTP       json.RawMessage `json:"http"`
		RouteKey   json.RawMessage `json:"routeKey"`
	}
	if json.Unmarshal(p.RequestContext, &rc) != nil {
		return ""
	}
	if len(rc.HTTPMethod) > 0 && !same(rc.HTTPMethod) {
		return ""
	}
	if len(rc.RouteKey) > 0 && !routeOK(rc.RouteKey) {
		return ""
	}
	if len(rc.HTTP) > 0 {
		var h struct {
			Method json.RawMessage `json:"method"`
		}
		if json.Unmarshal(rc.HTTP, &h) != nil || string(rc.HTTP) == "null" || (len(h.Method) > 0 && !same(h.Method)) {
			return "" // http that is no object, or a method that differs
		}
	}
	return own
}

// eventDuplicate finds a member given twice in the objects an event is read
// from (readBelow): encoding/json takes the last of two, or merges two
// objects, so what a check saw need not be what ran ({"iam":{"accessKey":
// ..},"IAM":{"userArn":..}} passed as a full AWS_IAM description, an outside
// tester). One streaming pass that copies no value: every HTTP event goes
// through it.
func eventDuplicate(payload []byte) (string, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(payload), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	return objectDuplicate(dec, nil, true)
}

// readBelow says whether the member name of the object at path is an object
// the runtime reads an event from, and whether its names are compared
// without regard to case (fold). Struct members are matched as encoding/json
// matches them, without case; a header map keeps "Authorization" and
// "authorization" apart (the guard refuses the pair), so only one spelling
// given twice there loses a value.
func readBelow(path []string, name string) (read, fold bool) {
	at := func(names ...string) bool {
		if len(path) != len(names) {
			return false
		}
		for i, n := range names {
			if !strings.EqualFold(path[i], n) {
				return false
			}
		}
		return true
	}
	is := func(n string) bool { return strings.EqualFold(name, n) }
	switch {
	case at():
		if is("requestContext") {
			return true, true
		}
		return is("headers") || is("multiValueHeaders"), false
	case at("requestContext"):
		return is("http") || is("authorizer") || is("identity"), true
	case at("requestContext", "authorizer"):
		return is("iam"), true
	}
	return false, false
}

// objectDuplicate reads one value from dec; for an object, it reports a name
// given twice there (compared without case when fold) or in the members an
// event is read from below it.
func objectDuplicate(dec *jsontext.Decoder, path []string, fold bool) (string, bool) {
	if dec.PeekKind() != '{' {
		_ = dec.SkipValue()
		return "", false
	}
	if _, err := dec.ReadToken(); err != nil {
		return "", false
	}
	seen := make([]string, 0, 16) // on the stack: an event object has a dozen members
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return "", false
		}
		name := tok.String()
		for _, s := range seen {
			if s == name || (fold && strings.EqualFold(s, name)) {
				// Cut: the name is the caller's (a 10,000-byte one
				// given twice came back whole).
				return strings.Join(append(path, envelope.Clip(name)), "."), true
			}
		}
		seen = append(seen, name)
		if read, below := readBelow(path, name); read {
			if dup, ok := objectDuplicate(dec, append(path, name), below); ok {
				return dup, true
			}
			continue
		}
		if dec.SkipValue() != nil {
			return "", false
		}
	}
	_, _ = dec.ReadToken()
	return "", false
}

// shape names the event the probe found, ShapeDirect for none.
func (p *probe) shape() Shape {
	switch {
	case p.RawPath != nil && len(p.RequestContext) > 0 && p.Version != nil && *p.Version == "2.0":
		return ShapeAPIGatewayV2
	case p.RawPath != nil && len(p.RequestContext) > 0 && p.Version != nil && *p.Version == "v1":
		return ShapeFCHTTP
	case len(p.HTTPMethod) > 0 || len(p.RequestContext) > 0:
		// rawPath and requestContext with another version land here, and
		// detect refuses them. Before the timers: an event with any HTTP marker is a call to be
		// signed, whatever timer keys it also carries (it ran unsigned).
		return ShapeHTTPOther
	case p.TriggerTime != nil && p.TriggerName != nil:
		return ShapeFCTimer
	case p.DetailType != nil && p.Source != nil && *p.DetailType == "Scheduled Event":
		return ShapeEventBridge
	case p.Source != nil && *p.Source == ScheduleSource:
		return ShapeSchedule
	}
	return ShapeDirect
}

// eventBound is the largest event an input of at most maxBody bytes can
// arrive in: its body JSON-escaped (at most 6 bytes a byte, \u0000) or in
// base64, plus headers (at most MaxHeaderBytes, which an event may carry
// twice, as headers and multiValueHeaders, each escaped) and the event's
// own fields.
func eventBound(maxBody int) int { return 6*maxBody + 4*MaxHeaderBytes + 16<<10 }

// albQuery joins an ALB event's query as it came: the load balancer passes
// names and values still percent-encoded, so encoding them again would
// change what the caller signed.
func albQuery(q url.Values) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(q)) {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(k + "=" + v)
		}
	}
	return b.String()
}

func httpInput(body string, b64 bool, headers map[string]string, method, path, rawQuery, sourceIP string) (*envelope.Input, error) {
	raw := []byte(body)
	if b64 {
		dec, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, &envelope.Error{Code: envelope.CodeInvalidInput, Reason: "invalid input: isBase64Encoded is true but the body is not base64"}
		}
		raw = dec
	}
	// Add, not Set: an event map may spell one header twice ("Authorization"
	// and "authorization"); keeping both lets the guard refuse the ambiguity
	// instead of map order picking one.
	h := make(http.Header, len(headers))
	for k, v := range headers {
		h.Add(k, v)
	}
	return &envelope.Input{
		Body:     raw,
		Trigger:  envelope.TriggerHTTP,
		Header:   h,
		Method:   method, // as sent: methods are case-sensitive (RFC 9110 9.1)
		Path:     path,
		RawQuery: rawQuery,
		SourceIP: sourceIP,
	}, nil
}

// objectOrEmpty is a timer's payload when it is a JSON object or begins as
// one (beginsAsObject), else {}: a note such as "{hourly check}" is a note,
// not a body to refuse every run.
func objectOrEmpty(b []byte) []byte {
	b = envelope.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' && (json.Valid(b) || beginsAsObject(b)) {
		return b
	}
	return []byte("{}")
}

// beginsAsObject reports b, a '{' and then a member's name, as a JSON object
// however it goes on: read as {}, an FC timer payload with a typo
// ({"threshold":100 without its brace) ran with the defaults it meant to
// change (a re-tester); the input's decoder refuses it, naming where it
// breaks. A note in braces ("{hourly check}") stays a note.
func beginsAsObject(b []byte) bool {
	rest := envelope.TrimSpace(b[1:])
	return len(rest) > 0 && rest[0] == '"'
}

func badEvent(kind string, err error) error {
	reason := fmt.Sprintf("invalid input: malformed %s event", kind)
	// Name the member and what it should hold, as the input's own errors do
	// ("body: expected a string, got object"), not just the event's kind.
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		// Value is "number <as written>" for one out of the field's range:
		// the number is cut and its own length given, not the phrase's
		// (it said 33 digits "(10007 bytes in all)" for 10,000).
		got := envelope.Clip(te.Value)
		if n, ok := strings.CutPrefix(te.Value, "number "); ok {
			got = "number " + envelope.Clip(n)
		}
		reason += fmt.Sprintf(": %s: expected %s, got %s", te.Field, envelope.DescribeType(te.Type), got)
	}
	return &envelope.Error{Code: envelope.CodeInvalidInput, Reason: reason, Err: err}
}

// encodeHTTP wraps an envelope as the HTTP trigger response both platforms take.
func encodeHTTP(resp envelope.Response, extra map[string]string) []byte {
	h := map[string]string{"Content-Type": "application/json; charset=utf-8"}
	for k, v := range extra {
		h[k] = v
	}
	b, _ := json.Marshal(HTTPResponse{StatusCode: resp.Status, Headers: h, Body: string(resp.Body)})
	return b
}

// isHTTPEventMember says whether k (in lower case) is a top-level member of
// the HTTP events the runtime reads (FC 3.0, API Gateway v2 and REST,
// function URLs, ALB).
func isHTTPEventMember(k string) bool {
	switch k {
	case "version", "routekey", "rawpath", "rawquerystring", "cookies", "headers",
		"queryparameters", "querystringparameters", "multivalueheaders", "multivaluequerystringparameters",
		"pathparameters", "stagevariables", "requestcontext", "body", "isbase64encoded",
		"httpmethod", "path", "resource":
		return true
	}
	return false
}

// foreignMembers reports whether an HTTP event has a top-level member no
// HTTP event has (deliveryId, traceSource): a direct input that only
// looked like an event, since a platform's own event has none.
func foreignMembers(event []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(event, &m) != nil {
		return false
	}
	for k := range m {
		if !isHTTPEventMember(strings.ToLower(k)) {
			return true
		}
	}
	return false
}

// eventNote is what a refusal of an input read out of an event adds: which
// event the payload was read as, and what to do; ok is false when there is
// nothing to add (a direct input, or an HTTP event as a platform sends it).
// noTimer says the function has no timer, so a timer event cannot be what
// its caller meant.
func eventNote(in *envelope.Input, noTimer bool) (string, bool) {
	switch {
	case in.Event == "":
		return "", false
	case in.Trigger == envelope.TriggerTimer && noTimer:
		return "the payload was read as " + in.Event + "; this function has no timer — send the input JSON directly", true
	case in.Trigger == envelope.TriggerTimer, foreignMembers(in.EventPayload):
		// The event's own input is what was refused: fix that, or, for
		// a direct call, leave out the members it was recognised by (a
		// re-tester read "those members" as the ones refused).
		return "the payload was read as " + in.Event + ", and that input is what was refused — to invoke directly instead, send the input JSON without the members the event was recognised by", true
	}
	return "", false
}

// noteEvent wraps an operation's handler so that a refusal of an input read
// out of an event names the event (eventNote) before what was wrong with
// it: a direct input with triggerTime and triggerName was told
// "deliveryId: required", one with requestContext "the request body is
// empty" (a black-box tester). known says the function is the registry's,
// sched its timer (nil: none).
//
// A timer's own event has no caller: its input is the deployment's
// configuration, so a refusal of it is -1601 (a WARN line, a fault), not a
// caller's -1001: an hourly quota alert whose payload carried a field was
// refused every hour, logged at INFO and seen by no alarm on faults (an
// outside tester).
func noteEvent(handle func(context.Context, *envelope.Input) (any, error), known bool, sched *registry.Schedule) func(context.Context, *envelope.Input) (any, error) {
	noTimer := known && sched == nil
	return func(ctx context.Context, in *envelope.Input) (any, error) {
		out, err := handle(ctx, in)
		if err == nil || in.Event == "" {
			return out, err
		}
		var e *envelope.Error
		if !errors.As(err, &e) || e.Code != envelope.CodeInvalidInput {
			return out, err
		}
		if sched != nil && in.Trigger == envelope.TriggerTimer {
			if source, ok := timerSource(in); ok {
				return out, timerConfigError(e, source, in.Body, sched)
			}
		}
		note, ok := eventNote(in, noTimer)
		if !ok {
			return out, err
		}
		noted := *e // a copy: the handler's error may be shared
		noted.Reason = "invalid input: " + note + " (read as that event: " + strings.TrimPrefix(e.Reason, "invalid input: ") + ")"
		return out, &noted
	}
}

// timerConfigError is the -1601 for a timer's input the function refused
// (e): where that input is set, what it was, why it was refused, and what
// the registry's schedule sends instead.
func timerConfigError(e *envelope.Error, source string, input []byte, sched *registry.Schedule) *envelope.Error {
	expected := "the registry's schedule " + sched.Name + " sends " + sched.Payload
	if sched.Settings != "" {
		expected += "; " + sched.Settings
	}
	return &envelope.Error{Code: envelope.CodeConfig, Err: e.Err,
		Reason: fmt.Sprintf("configuration: %s is %s, and the function refused it: %s. A timer has no caller to correct it, so correct the trigger: %s",
			source, envelope.Clip(string(input)), strings.TrimPrefix(e.Reason, "invalid input: "), expected)}
}
