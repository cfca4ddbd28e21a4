// cloudcall console: plain JavaScript, no build step. Every text from the
// emulator goes through textContent (never innerHTML): payloads are data.
'use strict';

const TOKEN = document.querySelector('meta[name="cloudcall-token"]').content;
const API = '/__console/api';

// Fault presets per sandbox (vendor names as in the registry). Each is one
// POST /__sandbox/faults body; "on" means a fault with that path and kind is
// in force.
const FAULTS = {
  wechat: [
    { id: 'busy', label: 'quota/get answers -1 (system busy)', fault: { path: '/cgi-bin/express/business/quota/get', kind: 'status', status: 200, body: '{"errcode":-1,"errmsg":"system error"}' } },
    { id: 'token503', label: 'token endpoints answer 503', fault: { path: '/cgi-bin/stable_token', kind: 'status', status: 503, body: 'Service Unavailable' } },
    { id: 'slow', label: 'every call 2 s slower', fault: { path: '', kind: 'latency', delay: '2s' } },
  ],
  ck1: [
    { id: 'pricing503', label: 'pricing answers 503', fault: { path: '/v1/pricing', kind: 'status', status: 503, body: '{"Errors":[{"Code":"ServiceUnavailable","Message":"maintenance"}]}' } },
    { id: 'reset', label: 'connections reset', fault: { path: '/v1/pricing', kind: 'reset' } },
  ],
  alicloud: [
    { id: 'throttle', label: 'Throttling.User (400)', fault: { path: '/', kind: 'status', status: 400, body: '{"Code":"Throttling.User","Message":"Request was denied due to user flow control.","RequestId":"SANDBOX-FAULT"}' } },
    { id: 'malformed', label: 'malformed answers', fault: { path: '/', kind: 'malformed' } },
  ],
  top: [
    { id: 'drop', label: 'charge recorded, answer lost (ambiguous)', fault: { path: '/router/rest', kind: 'drop-after' } },
    { id: 'isp', label: 'isp.top-remote-connection-timeout', fault: { path: '/router/rest', kind: 'status', status: 200, body: '{"error_response":{"code":15,"msg":"Remote service error","sub_code":"isp.top-remote-connection-timeout","request_id":"sandbox"}}' } },
  ],
};

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

async function api(path, opts = {}) {
  const init = { method: opts.method || 'GET', headers: {} };
  if (init.method !== 'GET') {
    init.headers['X-Cloudcall-Console-Token'] = TOKEN;
    init.headers['Content-Type'] = 'application/json';
    init.body = opts.body === undefined ? '' : (typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body));
  }
  const res = await fetch(API + path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!res.ok) throw new Error((data && data.error) || res.statusText);
  return data;
}

// indentJSON indents JSON text as it was written, without reading its
// values: JSON.parse showed a refused {"deliveryId":"YTO","deliveryId":"ZTO"}
// as a valid request, 9007199254740993 as ...992 and 96.00 as 96 (an outside
// tester). Text that is not JSON shows as it is.
function indentJSON(s) {
  try { JSON.parse(s); } catch { return s; }
  let out = '', depth = 0, inStr = false, esc = false;
  const nl = () => '\n' + '  '.repeat(depth);
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inStr) {
      out += c;
      if (esc) esc = false; else if (c === '\\') esc = true; else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') { inStr = true; out += c; continue; }
    if (c === '{' || c === '[') {
      let j = i + 1;
      while (j < s.length && ' \t\r\n'.includes(s[j])) j++;
      if (s[j] === (c === '{' ? '}' : ']')) { out += c + s[j]; i = j; continue; } // {} and [] stay whole
      depth++; out += c + nl(); continue;
    }
    if (c === '}' || c === ']') { depth--; out += nl() + c; continue; }
    if (c === ',') { out += ',' + nl(); continue; }
    if (c === ':') { out += ': '; continue; }
    if (' \t\r\n'.includes(c)) continue;
    out += c;
  }
  return out;
}
const pretty = (v) => {
  if (typeof v === 'string') return indentJSON(v);
  try { return JSON.stringify(v, null, 2); } catch { return String(v); }
};
const fmtTime = (t) => new Date(t).toLocaleTimeString([], { hour12: false });
const ms = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + ' ms';

// ---------- functions ----------

const cards = new Map(); // function name → {card, parts}

// Input form from the JSON Schema (or, without one, from the example).
function inferSchema(v) {
  if (Array.isArray(v)) return { type: 'array' };
  if (v !== null && typeof v === 'object') {
    const props = {};
    for (const [k, x] of Object.entries(v)) props[k] = inferSchema(x);
    return { type: 'object', properties: props };
  }
  if (typeof v === 'number') return { type: Number.isInteger(v) ? 'integer' : 'number' };
  if (typeof v === 'boolean') return { type: 'boolean' };
  return { type: 'string' };
}

function typeOf(s) {
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== 'null') : s.type;
  if (t) return t;
  if (s.properties) return 'object';
  return 'json';
}

// resolve follows a local "$ref" (#/$defs/...) and merges the referring
// keywords (description) over it.
function resolve(schema, root) {
  if (!schema || typeof schema.$ref !== 'string' || !schema.$ref.startsWith('#/')) return schema || {};
  let target = root;
  for (const k of schema.$ref.slice(2).split('/')) target = target && target[k.replace(/~1/g, '/').replace(/~0/g, '~')];
  const { $ref, ...rest } = schema;
  return { ...(target || {}), ...rest };
}

function buildFields(schema, value, path, required, onChange, root = schema) {
  schema = resolve(schema, root);
  const t = typeOf(schema);
  if (t === 'object' && schema.properties) {
    const fs = h('fieldset', { 'data-path': path || '.' }, path ? h('legend', { text: path }) : null);
    const req = new Set(schema.required || []);
    for (const [k, sub] of Object.entries(schema.properties)) {
      fs.append(buildFields(sub, value ? value[k] : undefined, path ? path + '.' + k : k, req.has(k), onChange, root));
    }
    return fs;
  }
  const name = path;
  let input;
  if (Array.isArray(schema.enum) && schema.enum.every((x) => typeof x === 'string')) {
    input = h('select', { 'data-path': name, 'data-type': 'string' }, required ? null : h('option', { value: '', text: '' }),
      schema.enum.map((x) => h('option', { value: x, text: x })));
    if (value !== undefined) input.value = value;
  } else if (t === 'boolean') {
    input = h('input', { type: 'checkbox', 'data-path': name, 'data-type': t });
    input.checked = value === true;
  } else if (t === 'integer' || t === 'number') {
    input = h('input', { type: 'number', step: t === 'integer' ? '1' : 'any', 'data-path': name, 'data-type': t });
    if (value !== undefined) input.value = String(value);
  } else if (t === 'string') {
    input = h('input', { type: 'text', 'data-path': name, 'data-type': t });
    if (value !== undefined) input.value = value;
  } else {
    input = h('textarea', { 'data-path': name, 'data-type': 'json', rows: 2 });
    if (value !== undefined) input.value = JSON.stringify(value);
  }
  if (required) input.dataset.required = '1';
  input.addEventListener('input', onChange);
  input.addEventListener('change', onChange);
  const tip = schema.description || '';
  return h('label', { title: tip }, h('span', { text: name.split('.').pop() + (required ? ' *' : '') }), input);
}

function collect(form) {
  const out = {};
  for (const el of form.querySelectorAll('[data-path][data-type]')) {
    const keys = el.dataset.path.split('.');
    let v;
    switch (el.dataset.type) {
      case 'boolean': v = el.checked; if (!v && !el.dataset.required) continue; break;
      case 'integer': case 'number': if (el.value === '') continue; v = Number(el.value); break;
      case 'json': if (el.value.trim() === '') continue; try { v = JSON.parse(el.value); } catch { v = el.value; } break;
      default: if (el.value === '' && !el.dataset.required) continue; v = el.value;
    }
    let o = out;
    for (const k of keys.slice(0, -1)) o = (o[k] = o[k] || {});
    o[keys[keys.length - 1]] = v;
  }
  return out;
}

function schemaOf(f) {
  let schema = null;
  try { schema = f.schema ? (typeof f.schema === 'string' ? JSON.parse(f.schema) : f.schema) : null; } catch { schema = null; }
  let example = f.example;
  if (schema && Array.isArray(schema.examples) && schema.examples.length) example = schema.examples[0];
  if (!schema) schema = inferSchema(example || {});
  return { schema, example: example || {} };
}

const waiting = new Map(); // request id → result element of an invoke form

function renderResult(box, inv) {
  box.replaceChildren(
    h('div', { class: 'kv' }, 'request id ', h('code', { 'data-testid': 'result-request-id', text: inv.requestId }),
      ' · ', inv.error ? h('b', { class: 'bad', text: 'failed' }) : h('span', { text: 'errCode ' }),
      inv.error ? null : h('b', { 'data-testid': 'result-errcode', text: inv.errCode === undefined ? '—' : String(inv.errCode) }),
      ' · ', ms(inv.durationMs || 0), inv.cold ? ' · cold start' : ''),
    h('pre', { 'data-testid': 'result-response', text: inv.error ? inv.error : pretty(inv.response) }),
    h('div', { class: 'hint', text: 'log lines of this invocation' }),
    h('ul', { class: 'logs', 'data-testid': 'result-logs' }, (inv.logs || []).map((l) => h('li', { text: l }))),
  );
}

function functionCard(f) {
  const { schema, example } = schemaOf(f);
  const payload = h('textarea', { class: 'payload', 'data-testid': 'payload', rows: 3 });
  const sync = () => { payload.value = JSON.stringify(collect(form)); };
  const form = h('form', { class: 'invoke', 'data-testid': 'invoke-form' });
  form.append(buildFields(schema, example, '', false, sync));
  const result = h('div', { class: 'result', 'data-testid': 'invoke-result' });
  const button = h('button', { class: 'primary', type: 'submit', 'data-testid': 'invoke-button', text: 'Invoke' });
  form.append(h('div', { class: 'hint', text: 'sent as a direct invocation (the JSON below; edit it freely):' }), payload, h('div', {}, button), result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    result.replaceChildren(h('span', { class: 'muted', text: 'invoking…' }));
    try {
      const inv = await api('/invoke/' + encodeURIComponent(f.name), { method: 'POST', body: payload.value });
      waiting.set(inv.requestId, result);
      renderResult(result, invocations.get(inv.requestId) || inv);
    } catch (e) {
      result.replaceChildren(h('pre', { class: 'bad', 'data-testid': 'result-error', text: String(e.message || e) }));
    } finally { button.disabled = false; }
  });
  sync();
  if (example && Object.keys(example).length) payload.value = JSON.stringify(example);

  const state = h('span', { class: 'state', 'data-testid': 'fn-state' });
  const instances = h('div', { class: 'instances', 'data-testid': 'fn-instances' });
  const timer = h('div', { class: 'timer', 'data-testid': 'fn-timer' });
  const build = h('div', { class: 'build' });
  const card = h('div', { class: 'card fn', 'data-fn': f.name },
    h('h3', {}, h('span', { class: 'name', text: f.name }), state, f.debug ? h('span', { class: 'state busy', text: 'under Delve: no deadline' }) : null,
      h('span', { class: 'api', text: f.api || '' })),
    h('div', { class: 'muted small', text: f.description || '' }),
    instances, timer, build,
    h('details', { 'data-testid': 'invoke-details' }, h('summary', { text: 'Invoke ' + f.name }), form));
  return { card, state, instances, timer, build };
}

function updateCard(c, f) {
  c.state.textContent = f.state;
  c.state.className = 'state ' + f.state;
  const inst = f.instances || [];
  c.instances.replaceChildren(...(inst.length === 0 ? ['no instance (the next call cold-starts one)'] :
    [inst.length + ' instance' + (inst.length > 1 ? 's' : '') + ': ', ...inst.map((i, n) => h('span', {},
      n ? ' · ' : '', h('code', { text: 'pid ' + i.pid }), ' ' + (i.busy ? 'busy' : i.warm ? 'warm' : 'cold') + ', ' +
      i.invocations + ' call' + (i.invocations === 1 ? '' : 's') + ', ' + (i.rssKiB / 1024).toFixed(1) + ' MB'))]),
    ...(f.queued > 0 ? [h('span', { class: f.queued >= f.queueLimit ? 'bad' : 'hint', 'data-testid': 'fn-queued',
      text: ' · ' + f.queued + ' of ' + f.queueLimit + ' async calls queued' + (f.queued >= f.queueLimit ? ' (full: new ones get 429)' : '') })] : []));
  if (f.timer) {
    const fire = h('button', { 'data-testid': 'fire-timer', text: 'fire now', onclick: async () => {
      fire.disabled = true;
      try { await api('/timers/' + encodeURIComponent(f.name), { method: 'POST' }); } finally { fire.disabled = false; }
    } });
    c.timer.replaceChildren('timer ', h('code', { text: f.timer.name }), ' · next ', h('span', { text: new Date(f.timer.next).toLocaleString([], { hour12: false }) }), ' ', fire);
  } else c.timer.replaceChildren();
  if (f.build) {
    c.build.replaceChildren(h('span', { class: f.build.ok ? 'hint' : 'bad', text: f.build.ok ? 'built in ' + f.build.durationMs + ' ms at ' + fmtTime(f.build.at) : 'last build failed; the previous binary keeps serving' }));
  } else c.build.replaceChildren();
}

function renderBuildErrors(fns) {
  const bad = fns.filter((f) => f.build && !f.build.ok);
  const box = document.getElementById('build-errors');
  box.hidden = bad.length === 0;
  box.replaceChildren(...bad.map((f) => h('div', { 'data-testid': 'build-error', 'data-fn': f.name },
    h('b', { text: f.name + (f.build.failed === 'start' ? ' builds but does not start and stay up' : ' does not compile') + '; the last good binary keeps serving:' }), h('pre', { text: f.build.error }))));
}

async function refreshState() {
  const st = await api('/state');
  document.getElementById('platform').textContent = 'platform ' + st.platform;
  const list = document.getElementById('fn-list');
  for (const f of st.functions) {
    if (!cards.has(f.name)) {
      const c = functionCard(f);
      cards.set(f.name, c);
      list.append(c.card);
    }
    updateCard(cards.get(f.name), f);
  }
  renderBuildErrors(st.functions);
  if (!sandboxesBuilt) buildSandboxes(st.sandboxes || []);
}

// ---------- live invocations ----------

const invocations = new Map();
const rows = new Map();
let selected = null;

function statusOf(inv) {
  if (inv.running) return ['running', 'running'];
  if (inv.error) return ['failed', 'bad'];
  if (inv.errCode !== undefined && inv.errCode !== 0) return ['error', 'bad'];
  if (inv.status && inv.status >= 400) return [String(inv.status), 'bad'];
  return [inv.status ? String(inv.status) : 'ok', 'ok'];
}

// KEEP is how many invocations the console's server keeps (docs/emulator.md).
const KEEP = 500;

function upsertRow(inv) {
  const [label, cls] = statusOf(inv);
  const cells = [
    h('td', { text: fmtTime(inv.start) }),
    h('td', { text: inv.function }),
    h('td', { text: inv.trigger }),
    h('td', { class: cls, text: label }),
    h('td', { class: inv.errCode ? 'bad' : '', 'data-testid': 'row-errcode', text: inv.errCode === undefined ? '' : String(inv.errCode) }),
    h('td', { text: inv.running ? '' : ms(inv.durationMs) }),
    h('td', { text: inv.running ? '' : inv.cold ? 'cold' : 'warm' }),
    h('td', {}, h('code', { text: inv.requestId })),
  ];
  let tr = rows.get(inv.requestId);
  if (!tr) {
    tr = h('tr', { 'data-request-id': inv.requestId, onclick: () => select(inv.requestId) });
    rows.set(inv.requestId, tr);
    document.querySelector('#inv-table tbody').prepend(tr);
    // The page keeps what the server keeps, its last KEEP: it kept every
    // one, 121 MB of a tab after 1,200 calls (an outside tester).
    while (rows.size > KEEP) {
      const [id, old] = rows.entries().next().value;
      old.remove();
      rows.delete(id);
      invocations.delete(id);
      if (selected === id) { selected = null; renderDetail(); }
    }
  }
  tr.replaceChildren(...cells);
}


function select(id) {
  if (selected && rows.get(selected)) rows.get(selected).classList.remove('selected');
  selected = id;
  if (rows.get(id)) rows.get(id).classList.add('selected');
  renderDetail();
}

function renderDetail() {
  const box = document.getElementById('inv-detail');
  const inv = invocations.get(selected);
  if (!inv) { box.hidden = true; box.replaceChildren(); return; }
  box.hidden = false;
  const failed = h('span', { class: 'bad', 'data-testid': 'replay-error' });
  const replay = h('button', { 'data-testid': 'replay', text: 'Replay', onclick: async () => {
    replay.disabled = true;
    failed.textContent = '';
    try {
      const again = await api('/replay/' + encodeURIComponent(inv.requestId), { method: 'POST' });
      select(again.requestId);
    } catch (e) {
      // It said nothing: the server no longer kept the call (its 500 and
      // 64 MiB), and the error went to the devtools console only.
      failed.textContent = ' replay failed: ' + e.message + ' (send it again from the function\'s form)';
    } finally { replay.disabled = false; }
  } });
  box.replaceChildren(h('div', { class: 'card', 'data-testid': 'detail', 'data-request-id': inv.requestId },
    h('h3', {}, h('span', { text: inv.function }), h('code', { class: 'api', text: inv.requestId }), replay, failed),
    h('div', { class: 'kv' }, `trigger ${inv.trigger} · ${inv.running ? 'running' : ms(inv.durationMs)}` + (inv.cold ? ` · cold start (init ${ms(inv.initDurationMs || 0)})` : '') + (inv.pid ? ` · pid ${inv.pid}` : '')),
    h('div', { class: 'grid2' },
      h('div', {}, h('div', { class: 'hint', text: requestTitle(inv) }), h('pre', { 'data-testid': 'detail-request', text: requestText(inv) }),
        inv.trigger === 'http' ? h('details', {}, h('summary', { text: 'the whole trigger event' }), h('pre', { text: pretty(inv.request) })) : null),
      h('div', {}, h('div', { class: 'hint', text: inv.trigger === 'http' && inv.status ? 'response (HTTP ' + inv.status + ')' : 'response' }),
        h('pre', { 'data-testid': 'detail-response', text: inv.error ? inv.error : responseText(inv) }))),
    h('div', { class: 'hint', text: 'log lines' }),
    h('ul', { class: 'logs', 'data-testid': 'detail-logs' }, (inv.logs || []).map((l) => h('li', { text: l })))));
}

// HTTP trigger events carry the body as a string: show it decoded, with the
// method and path, and keep the whole event one click away.
function httpParts(ev) {
  if (!ev || typeof ev !== 'object' || typeof ev.body !== 'string') return null;
  let body = ev.body;
  if (ev.isBase64Encoded) { try { body = atob(body); } catch { /* keep */ } }
  const http = (ev.requestContext && ev.requestContext.http) || {};
  return { method: http.method || '', path: ev.rawPath || http.path || '', body };
}
function requestTitle(inv) {
  const p = inv.trigger === 'http' && httpParts(inv.request);
  return p ? `request: ${p.method} ${p.path}` : 'request';
}
function requestText(inv) {
  const p = inv.trigger === 'http' && httpParts(inv.request);
  return p ? pretty(p.body) : pretty(inv.request);
}
function responseText(inv) {
  const r = inv.response;
  if (inv.trigger === 'http' && r && typeof r === 'object' && typeof r.body === 'string') return pretty(r.body);
  return pretty(r);
}

let sbTimer = null;
function onInvocation(inv) {
  invocations.set(inv.requestId, inv);
  upsertRow(inv);
  if (selected === inv.requestId) renderDetail();
  const box = waiting.get(inv.requestId);
  if (box) renderResult(box, inv);
  if (!inv.running) {
    clearTimeout(sbTimer);
    sbTimer = setTimeout(() => { refreshSandboxes().catch(() => {}); refreshState().catch(() => {}); }, 150);
  }
}

function connect() {
  const conn = document.getElementById('conn');
  const es = new EventSource(API + '/events');
  es.addEventListener('open', () => { conn.textContent = 'live'; conn.className = 'pill ok'; });
  es.addEventListener('invocation', (ev) => onInvocation(JSON.parse(ev.data)));
  es.addEventListener('error', () => { conn.textContent = 'reconnecting…'; conn.className = 'pill bad'; });
}

// ---------- sandboxes ----------

let sandboxesBuilt = false;
const sbParts = new Map();

function buildSandboxes(list) {
  sandboxesBuilt = true;
  const root = document.getElementById('sb-list');
  if (list.length === 0) root.append(h('div', { class: 'muted', text: 'no sandboxes (upstream real)' }));
  for (const sb of list) {
    const faults = h('div', { class: 'faults' });
    for (const p of FAULTS[sb.vendor] || []) {
      const box = h('input', { type: 'checkbox', 'data-fault': p.id, onchange: () => toggleFault(sb.vendor, p, box) });
      faults.append(h('label', {}, box, p.label));
    }
    const body = h('div', { class: 'sb-body' });
    const card = h('div', { class: 'card', 'data-sandbox': sb.vendor },
      h('h3', {}, h('span', { text: sb.vendor }), h('code', { class: 'api', text: sb.url })),
      body, (FAULTS[sb.vendor] || []).length ? h('div', { class: 'hint', text: 'fault injection' }) : null, faults);
    root.append(card);
    sbParts.set(sb.vendor, { card, body, faults });
  }
  refreshSandboxes();
}

function sameFault(a, b) { return (a.path || '') === (b.path || '') && a.kind === b.kind && (a.status || 0) === (b.status || 0); }

// A refresh that read the faults before a toggle finished must not undo the
// box the user just clicked: each toggle bumps the vendor's generation, and
// a refresh applies fault states only if none happened while it read them.
async function toggleFault(vendor, preset, box) {
  const on = box.checked;
  const parts = sbParts.get(vendor);
  parts.gen = (parts.gen || 0) + 1;
  parts.toggling = (parts.toggling || 0) + 1;
  try {
    const base = '/sandbox/' + vendor;
    const now = (await api(base + '/faults')).faults || [];
    // The sandbox clears faults all at once: clear, then put back the others.
    await api(base + '/faults/clear', { method: 'POST' });
    const keep = now.filter((f) => !sameFault(f, preset.fault)).map((f) => ({ ...f, delay: f.delay ? f.delay / 1e6 + 'ms' : undefined }));
    if (on) keep.push(preset.fault);
    for (const f of keep) await api(base + '/faults', { method: 'POST', body: f });
  } finally {
    parts.toggling -= 1;
    parts.gen += 1;
  }
  await refreshSandboxes();
}

// The accounts table stays in place between refreshes so a balance being
// edited is not overwritten; only untouched inputs follow the sandbox.
function accountsTable(parts, base, acc) {
  if (!parts.accounts) {
    parts.accountRows = new Map();
    parts.accountBody = h('tbody');
    parts.accounts = h('table', { 'data-testid': 'wechat-accounts' },
      h('thead', {}, h('tr', {}, h('th', { text: 'courier' }), h('th', { text: 'biz id' }), h('th', { text: 'quota (edit to drive quota-alert)' }))),
      parts.accountBody);
  }
  for (const a of acc) {
    const key = a.deliveryId + '/' + a.bizId;
    let row = parts.accountRows.get(key);
    if (!row) {
      const input = h('input', { type: 'number', class: 'quota-input', 'data-account': key });
      input.addEventListener('input', () => { input.dataset.dirty = '1'; });
      const save = h('button', { text: 'set', onclick: async () => {
        await api(base + '/wechat/quota', { method: 'POST', body: { deliveryId: a.deliveryId, bizId: a.bizId, quota: Number(input.value) } });
        delete input.dataset.dirty;
        refreshSandboxes();
      } });
      const label = h('td');
      row = { input, label, tr: h('tr', {}, h('td', { text: a.deliveryId }), label, h('td', {}, input, ' ', save)) };
      parts.accountRows.set(key, row);
      parts.accountBody.append(row.tr);
    }
    row.label.textContent = a.bizId + (a.errcode ? ' (answers ' + a.errcode + ')' : '');
    if (!row.input.dataset.dirty && document.activeElement !== row.input) row.input.value = String(a.quota);
  }
  return parts.accounts;
}

function kv(label, value, testid) { return h('div', { class: 'kv' }, label + ' ', h('b', { 'data-testid': testid, text: String(value) })); }

async function refreshSandboxes() {
  for (const [vendor, parts] of sbParts) {
    const base = '/sandbox/' + vendor;
    try {
      // Not every sandbox has counters and faults (the notification inbox).
      const gen = parts.gen || 0;
      const [calls, faults] = await Promise.all([api(base + '/calls').catch(() => ({})), api(base + '/faults').catch(() => ({ faults: [] }))]);
      if (!parts.toggling && (parts.gen || 0) === gen) {
        for (const box of parts.faults.querySelectorAll('input[data-fault]')) {
          const p = (FAULTS[vendor] || []).find((x) => x.id === box.dataset.fault);
          box.checked = (faults.faults || []).some((f) => sameFault(f, p.fault));
        }
      }
      const kids = [];
      if (vendor === 'wechat') {
        kids.push(kv('token fetches', calls.token || 0, 'wechat-token-fetches'), kv('quota/get calls', calls.quota || 0, 'wechat-quota-calls'));
        const acc = (await api(base + '/wechat/accounts')).accounts || [];
        kids.push(accountsTable(parts, base, acc));
      } else if (vendor === 'ck1') {
        kids.push(kv('token rotations (refresh_token spent)', calls.refresh || 0, 'ck1-rotations'), kv('token endpoint calls', calls['oauth2/token'] || 0, 'ck1-token-calls'), kv('pricing calls', calls.pricing || 0, 'ck1-pricing'));
      } else if (vendor === 'alicloud') {
        const win = await api(base + '/cams/window');
        kids.push(kv('documented limit', win.qps + ' QPS per AccessKey', 'cams-qps'));
        for (const k of win.keys || []) kids.push(kv(k.accessKeyId, `${k.lastSecond} in the last second, at most ${k.maxPerSecond} in any second`, 'cams-window'));
      } else if (vendor === 'top') {
        const ledger = (await api(base + '/top/charges')).charges || [];
        kids.push(kv('charges in the ledger', ledger.length, 'top-ledger-count'));
        kids.push(h('table', { 'data-testid': 'top-ledger' }, h('thead', {}, h('tr', {}, ['id', 'order', 'price (fen)', 'type', 'at'].map((t) => h('th', { text: t })))),
          h('tbody', {}, ledger.slice().reverse().map((c) => h('tr', { 'data-order': c.orderId }, h('td', { text: c.id }), h('td', { text: c.orderId }), h('td', { text: String(c.price) }), h('td', { text: String(c.type) }), h('td', { text: c.at }))))));
      } else if (vendor === 'notify') {
        const inbox = (await api(base + '/notify/messages')).messages || [];
        kids.push(kv('messages received', inbox.length, 'notify-count'));
        kids.push(h('ul', { class: 'logs', 'data-testid': 'notify-inbox' }, inbox.slice(-30).reverse().map((m) => h('li', {
          text: fmtTime(m.at) + ' ' + m.channel + (m.accepted ? ': ' : ' (refused: ' + (m.reason || '') + '): ') +
            (m.body ? JSON.stringify(m.body) : (m.raw || '')).slice(0, 400),
        }))));
      }
      const other = Object.entries(calls).filter(([k]) => k.startsWith('http:')).map(([k, v]) => k.slice(5) + ' ' + v).join(' · ');
      if (other) kids.push(h('div', { class: 'hint', text: 'requests: ' + other }));
      parts.body.replaceChildren(...kids);
    } catch (e) {
      parts.body.replaceChildren(h('div', { class: 'bad', text: 'sandbox unreachable: ' + (e.message || e) }));
    }
  }
}

// ---------- start ----------

refreshState().then(connect).catch((e) => { document.getElementById('conn').textContent = 'error: ' + e.message; });
setInterval(() => { refreshState().catch(() => {}); }, 2000);
setInterval(() => { refreshSandboxes().catch(() => {}); }, 5000);
