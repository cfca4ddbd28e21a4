package clientgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// tsPreamble is the hand-written part of the package's types: options, the
// error and the call options. The rest of index.d.ts comes from the schemas.
const tsPreamble = `/** The names of the functions the client calls (their HTTP trigger paths). */
export type FunctionName = %s;

/** Where the functions are: baseUrl, endpoints, or both (endpoints win); at least one. */
export type ClientWhere = (
  | {
      /** Functions live at <baseUrl>/<function> (cloudcall local, one API gateway). */
      baseUrl: string;
      /** Per-function trigger URLs (FC gives each function its own); these win over baseUrl. */
      endpoints?: Partial<Record<FunctionName, string>>;
    }
  | {
      baseUrl?: undefined;
      /** Per-function trigger URLs (FC gives each function its own). */
      endpoints: Partial<Record<FunctionName, string>>;
    }
);

/** createClient's options: where the functions are, the caller key (or none: unsigned calls), and the settings. */
export type ClientOptions = ClientWhere & CallerKey & ClientSettings;

/**
 * The caller key that signs every call: keyId and secret together, or both omitted for a function that allows
 * anonymous calls (CLOUDCALL_ALLOW_ANONYMOUS: make run; FC's authType: function, whose signature a custom fetch adds).
 * An unsigned client sends no Authorization header; a -1101 it gets says so in its message.
 */
export type CallerKey =
  | {
      /** The caller key id (an id in the functions' CLOUDCALL_CALLER_KEYS). */
      keyId: string;
      /** The caller key's secret (at least 16 bytes in UTF-8). */
      secret: string;
    }
  | { keyId?: undefined; secret?: undefined };

export interface ClientSettings {
  /** One deadline for the whole call, retries and waits included: 1 to 2147483647 ms. Default 15000. */
  timeoutMs?: number;
  /** A WHATWG fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
  /** Retries after the first attempt (429 with Retry-After; a read after a connection failure: refused, DNS, reset or closed). Default 2. */
  maxRetries?: number;
  /** The longest Retry-After the client waits out; a longer one rejects at once. Default 10000. */
  maxRetryWaitMs?: number;
}

export interface CallOptions {
  /** Aborts the call: a read rejects with the signal's reason; a charge that may have been sent, with -1304 and its key (the reason as cause). */
  signal?: AbortSignal;
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
}

export interface ChargeOptions extends CallOptions {
  /** At most one charge per key; without one the function keys the charge by the request's fingerprint. */
  idempotencyKey?: string;
}

/** What the vendor said, verbatim. */
export interface Upstream {
  vendor: string;
  httpStatus?: number;
  code?: string;
  message?: string;
  subCode?: string;
  subMessage?: string;
  requestId?: string;
  extra?: Record<string, unknown>;
}

/** What a CloudCallError is built from: the client builds them; a test may too. */
export interface CloudCallErrorInit {
  errCode: number;
  errMsg: string;
  api: string;
  function: FunctionName;
  /** 0 (the default) when no answer came. */
  status?: number;
  field?: string;
  retryAfter?: number;
  upstream?: Upstream;
  requestId?: string;
  idempotencyKey?: string;
  attempts?: number;
  cause?: unknown;
}

/**
 * The bundle's error codes (docs/envelope.md), named as the Go client names them: CloudCallError.errCode is one
 * of these or the vendor's own code (a WeChat errcode).
 */
export declare const ErrCode: Readonly<{
  /** 400: the input broke a documented rule; field names it. */
  InvalidInput: -1001;
  /** 413: body or headers over the limit. */
  PayloadTooLarge: -1002;
  /** 401: the caller's signature was refused. */
  Unauthenticated: -1101;
  /** 403: the caller is known but not allowed. */
  Forbidden: -1102;
  /** 429: wait retryAfter seconds. */
  Throttled: -1201;
  /** No answer before the deadline. */
  Timeout: -1301;
  /** The function or the vendor could not be reached. */
  Unreachable: -1302;
  /** An answer came that could not be read. */
  Unreadable: -1303;
  /** A charge may or may not have happened: call again with the same key. */
  OutcomeUnknown: -1304;
  /** The vendor refused; upstream says what it said. */
  VendorRefused: -1305;
  /** 409: the charge's key is in flight, or was used for another request. */
  IdempotencyConflict: -1401;
  /** 503: the functions' shared state is down; retry. */
  StoreUnavailable: -1501;
  /** 500: the function lacks configuration. */
  Config: -1601;
  /** 500: a bug; requestId finds it in the logs. */
  Internal: -1999;
}>;

/** A failed call: the function's failure envelope, or what the client saw instead (status 0). */
export declare class CloudCallError extends Error {
  constructor(init: CloudCallErrorInit);
  readonly name: 'CloudCallError';
  /** The envelope's errCode: a WeChat errcode or one of the bundle's negative codes. */
  readonly errCode: number;
  /** "<api>:fail <reason>". */
  readonly errMsg: string;
  /** The input field at fault (errCode -1001). */
  readonly field?: string;
  /** Seconds to wait before trying again (errCode -1201). */
  readonly retryAfter?: number;
  readonly upstream?: Upstream;
  /** The platform's request id (x-fc-request-id, x-amzn-RequestId), else the vendor's. */
  readonly requestId?: string;
  /** The HTTP status; 0 when no answer came (timeout, connection failure). */
  readonly status: number;
  /** The idempotency key in force, as the function echoed it (the charge). */
  readonly idempotencyKey?: string;
  readonly api: string;
  readonly function: FunctionName;
  /** How many times the request was tried, retries included (a try that could not connect counts too). */
  readonly attempts?: number;
  /** What ended the call when it was not the function's answer: the transport error, or the abort reason of a charge that may have been sent. Declared here too, for a target below ES2022. */
  readonly cause?: unknown;
}

/** One callable function, as the client lists it. */
export interface FunctionInfo {
  /** The method path, e.g. "openapi.logistics.getQuota". */
  readonly api: string;
  /** The HTTP trigger path, e.g. "logistics-get-quota". */
  readonly function: FunctionName;
  /**
   * Its input takes an idempotencyKey: true for the charge (top.ascp.launchExtraCharge), which moves money, so the
   * client never retries it after it may have been sent and retries a 429 with the same bytes (the same key); false
   * for the reads. It says nothing of whether repeating the call is harmless (the reads are; a charge repeats safely
   * only with its key).
   */
  readonly takesIdempotencyKey: boolean;
}

export declare const functions: readonly FunctionInfo[];

export interface AuthorizationInput {
  keyId: string;
  secret: string;
  method: string;
  path: string;
  query?: string;
  body?: string | Uint8Array;
  timestamp?: number;
  nonce?: string;
}

/** The Authorization header of the signing scheme (docs/caller-auth.md), for callers not using the methods. */
export declare function authorization(input: AuthorizationInput): string;

/** The canonical query of the signing scheme. */
export declare function canonicalQuery(rawQuery: string): string;

/** A client whose methods follow the API names: cc.openapi.logistics.getQuota(input). */
export declare function createClient(options: ClientOptions): Client;

declare const _default: { createClient: typeof createClient; CloudCallError: typeof CloudCallError; ErrCode: typeof ErrCode; authorization: typeof authorization; canonicalQuery: typeof canonicalQuery; functions: typeof functions };
export default _default;
`

func typescript(fns []*fn) ([]byte, error) {
	var b strings.Builder
	b.WriteString("// " + Header + "\n// Types of @cloudcall/client; the same declarations serve require() and import.\n\n")
	names := make([]string, len(fns))
	for i, f := range fns {
		names[i] = jsString(f.Name)
	}
	fmt.Fprintf(&b, tsPreamble, strings.Join(names, " | "))
	for _, f := range fns {
		for _, side := range []struct {
			s    *schema
			name string
		}{{f.in, f.typePrefix + "Input"}, {f.out, f.typePrefix + "Output"}} {
			g := tsGen{r: resolver{root: side.s}, defPrefix: side.name}
			body, err := g.typ(side.s, "")
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", f.Name, side.name, err)
			}
			b.WriteString("\n")
			b.WriteString(jsdoc(side.s.Description, ""))
			if strings.HasPrefix(body, "{") {
				fmt.Fprintf(&b, "export interface %s %s\n", side.name, body)
			} else {
				fmt.Fprintf(&b, "export type %s = %s;\n", side.name, body)
			}
			for _, d := range g.defs {
				b.WriteString("\n" + d)
			}
		}
	}
	root, err := buildTree(fns)
	if err != nil {
		return nil, err
	}
	b.WriteString("\n/** The methods, one per function, at their API names. */\nexport interface Client ")
	b.WriteString(tsTree(root, ""))
	b.WriteString("\n")
	return []byte(b.String()), nil
}

func tsTree(t *tree, indent string) string {
	var b strings.Builder
	b.WriteString("{\n")
	in := indent + "  "
	for _, c := range t.children {
		if c.fn != nil {
			f := c.fn
			opts := "CallOptions"
			if f.takesKey {
				opts = "ChargeOptions"
			}
			b.WriteString(jsdoc(fmt.Sprintf("%s (POST /%s). %s", f.API, f.Name, firstSentence(f.in.Description)), in))
			fmt.Fprintf(&b, "%s%s(input: %sInput, options?: %s): Promise<%sOutput>;\n", in, c.name, f.typePrefix, opts, f.typePrefix)
			continue
		}
		fmt.Fprintf(&b, "%s%s: %s;\n", in, tsKey(c.name), tsTree(c, in))
	}
	b.WriteString(indent + "}")
	return b.String()
}

type tsGen struct {
	r         resolver
	defPrefix string
	defs      []string
	done      map[string]string
}

// typ renders a schema as a TypeScript type expression at indentation ind.
func (g *tsGen) typ(s *schema, ind string) (string, error) {
	s, def, err := g.r.resolve(s)
	if err != nil {
		return "", err
	}
	if def != "" {
		return g.named(def, s)
	}
	if len(s.Const) > 0 {
		return string(s.Const), nil
	}
	if len(s.Enum) > 0 {
		parts := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			parts[i] = string(e)
		}
		return strings.Join(parts, " | "), nil
	}
	if alts := append(append([]*schema{}, s.OneOf...), s.AnyOf...); len(alts) > 0 && len(s.Properties) == 0 {
		parts := make([]string, len(alts))
		for i, a := range alts {
			t, err := g.typ(a, ind)
			if err != nil {
				return "", err
			}
			parts[i] = t
		}
		return strings.Join(parts, " | "), nil
	}
	t, null := s.nonNull()
	var out string
	switch t {
	case "string":
		out = "string"
	case "integer", "number":
		out = "number"
	case "boolean":
		out = "boolean"
	case "array":
		if s.Items == nil {
			out = "unknown[]"
			break
		}
		it, err := g.typ(s.Items, ind)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(it, "| ") && !strings.HasPrefix(it, "{") {
			it = "(" + it + ")"
		}
		out = it + "[]"
	case "object":
		o, err := g.object(s, ind)
		if err != nil {
			return "", err
		}
		out = o
	default:
		out = "unknown"
	}
	if null {
		out += " | null"
	}
	return out, nil
}

func (g *tsGen) object(s *schema, ind string) (string, error) {
	if len(s.order) == 0 {
		if x := s.extra(); x != nil {
			v, err := g.typ(x, ind)
			if err != nil {
				return "", err
			}
			return "Record<string, " + v + ">", nil
		}
		return "Record<string, unknown>", nil
	}
	var b strings.Builder
	b.WriteString("{\n")
	in := ind + "  "
	for _, name := range s.order {
		p := s.Properties[name]
		t, err := g.typ(p, in)
		if err != nil {
			return "", err
		}
		desc := p.Description
		if desc == "" {
			if rp, _, err := g.r.resolve(p); err == nil {
				desc = rp.Description
			}
		}
		b.WriteString(jsdoc(desc, in))
		opt := "?"
		if s.isRequired(name) {
			opt = ""
		}
		fmt.Fprintf(&b, "%s%s%s: %s;\n", in, tsKey(name), opt, t)
	}
	if string(bytes.TrimSpace(s.AdditionalProperties)) == "true" {
		// Declared open: fields the vendor adds later arrive and can be read.
		b.WriteString(in + "[field: string]: unknown;\n")
	}
	b.WriteString(ind + "}")
	return b.String(), nil
}

// named emits a $defs entry once as its own type and refers to it.
func (g *tsGen) named(def string, s *schema) (string, error) {
	if g.done == nil {
		g.done = map[string]string{}
	}
	name := g.defPrefix + pascal(def)
	if _, ok := g.done[def]; ok {
		return name, nil
	}
	g.done[def] = name
	body, err := g.typ(&schema{Type: s.Type, Properties: s.Properties, order: s.order, Required: s.Required,
		AdditionalProperties: s.AdditionalProperties, Items: s.Items, Enum: s.Enum, Const: s.Const, OneOf: s.OneOf, AnyOf: s.AnyOf}, "")
	if err != nil {
		return "", err
	}
	decl := jsdoc(g.r.root.Defs[def].Description, "")
	if strings.HasPrefix(body, "{") {
		decl += fmt.Sprintf("export interface %s %s\n", name, body)
	} else {
		decl += fmt.Sprintf("export type %s = %s;\n", name, body)
	}
	g.defs = append(g.defs, decl)
	return name, nil
}

func jsdoc(text, ind string) string {
	text = strings.ReplaceAll(text, "*/", "*\\/")
	c := comment(text, ind+" * ", 100)
	if c == "" {
		return ""
	}
	if strings.Count(c, "\n") == 1 {
		return ind + "/** " + strings.TrimPrefix(strings.TrimSuffix(c, "\n"), ind+" * ") + " */\n"
	}
	return ind + "/**\n" + c + ind + " */\n"
}

func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}

func tsKey(name string) string {
	for i, r := range name {
		if !(r == '_' || r == '$' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return jsString(name)
		}
	}
	return name
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
