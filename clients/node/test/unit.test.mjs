// @cloudcall/client against fake functions: signing, retries, deadlines and
// errors where the real functions cannot be made to misbehave on cue.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, CloudCallError, ErrCode, canonicalQuery, authorization, functions } from '../index.mjs';
import { repoRoot, CI } from './helpers.mjs';

const SECRET = 'unit-test-secret-000000';

// A fake function: handler(req, body, n) answers; every request is kept.
async function fake(handler) {
  const seen = [];
  const srv = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    seen.push({ url: req.url, headers: req.headers, body });
    await handler(req, res, body, seen.length);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${srv.address().port}`;
  return {
    url, seen,
    client: (o = {}) => createClient({ baseUrl: url, keyId: 'k1', secret: SECRET, ...o }),
    close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }),
  };
}

const ok = (res, extra = {}) => {
  res.writeHead(200, { 'content-type': 'application/json', 'x-fc-request-id': 'req-1' });
  res.end(JSON.stringify({ errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 7, ...extra }));
};
const json = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};
// A charge's whole success envelope, as its output schema requires it.
const charged = (idempotencyKey) => ({ errCode: 0, errMsg: 'top.ascp.launchExtraCharge:ok',
  result: { success: true, data: { extraChargeServiceOrderId: 'ECS1', feature: '' } }, requestId: 'top-req-1', idempotencyKey });
const quota = { deliveryId: 'YTO', bizId: 'xyz' };
const charge = { omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC1', price: 100, type: 2 } };
const rejected = (p) => p.then(() => assert.fail('resolved'), (e) => e);

describe('ErrCode', () => {
  // Callers branch on names, not numbers (an outside tester found only the Go
  // client had them): the same codes as the function's error schema, no more,
  // no fewer, with the Go client's names.
  it('names every code of the error schema, as the Go client does', () => {
    const schema = JSON.parse(readFileSync(join(repoRoot, 'shared/registry/schemas/error.json'), 'utf8'));
    const codes = schema['x-error-codes'].map((c) => c.errCode).sort();
    assert.deepEqual(Object.values(ErrCode).sort(), codes);
    const goSrc = readFileSync(join(repoRoot, 'clients/go/cloudcall/client.go'), 'utf8');
    for (const [name, code] of Object.entries(ErrCode)) {
      assert.match(goSrc, new RegExp(`\\bCode${name}\\s+= ${code}\\b`), `Go's Code${name}`);
    }
    assert.ok(Object.isFrozen(ErrCode));
  });

  it('is what the client itself answers with', async () => {
    const cc = createClient({ endpoints: { 'logistics-get-quota': 'http://127.0.0.1:9' }, keyId: 'k', secret: SECRET });
    const err = await rejected(cc.openapi.logistics.getQuota(quota));
    assert.equal(err.errCode, ErrCode.Unreachable, 'nothing listens on port 9');
    assert.equal(err.status, 0);
  });
});

describe('signing', () => {
  it('matches the scheme: the function side recomputes the signature', async () => {
    const f = await fake((req, res) => ok(res));
    try {
      await f.client().openapi.logistics.getQuota(quota);
      const { headers, body, url } = f.seen[0];
      const m = headers.authorization.match(/^CLOUDCALL-HMAC-SHA256 KeyId=k1,Timestamp=(\d+),Nonce=([A-Za-z0-9_-]{16,64}),Signature=([0-9a-f]{64})$/);
      assert.ok(m, headers.authorization);
      assert.ok(Math.abs(Number(m[1]) - Date.now() / 1000) < 5);
      const sts = ['CLOUDCALL-HMAC-SHA256', 'POST', url, '', m[1], m[2], createHash('sha256').update(body).digest('hex')].join('\n');
      assert.equal(m[3], createHmac('sha256', SECRET).update(sts).digest('hex'));
      assert.equal(body.toString(), JSON.stringify(quota));
      assert.equal(headers['content-type'], 'application/json');
    } finally {
      await f.close();
    }
  });

  it('is the README snippet\'s signature for the same timestamp and nonce', () => {
    const got = authorization({ keyId: 'backend-2026', secret: SECRET, method: 'post', path: '/logistics-get-quota', query: 'b=2&a=1', body: '{}', timestamp: 1700000000, nonce: 'nonce-0123456789abcdef' });
    const sts = ['CLOUDCALL-HMAC-SHA256', 'POST', '/logistics-get-quota', 'a=1&b=2', '1700000000', 'nonce-0123456789abcdef', createHash('sha256').update('{}').digest('hex')].join('\n');
    assert.equal(got, `CLOUDCALL-HMAC-SHA256 KeyId=backend-2026,Timestamp=1700000000,Nonce=nonce-0123456789abcdef,Signature=${createHmac('sha256', SECRET).update(sts).digest('hex')}`);
  });

  it('the shared vectors of shared/callerauth: canonical query, string to sign, signature; refusals', (t) => {
    const file = join(repoRoot, 'shared/callerauth/testdata/canonical_query_vectors.json');
    if (!existsSync(file)) {
      if (CI) assert.fail(`${file} is missing`);
      t.skip('shared/callerauth/testdata/canonical_query_vectors.json is not there');
      return;
    }
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    assert.ok(doc.vectors.length > 0);
    for (const v of doc.vectors) {
      const sign = () => authorization({ keyId: doc.keyId, secret: doc.secret, method: v.method, path: v.path, query: v.query, body: v.body, timestamp: v.timestamp, nonce: v.nonce });
      if (v.expect.refused) {
        assert.throws(() => canonicalQuery(v.query), TypeError, `${v.name}: must be refused`);
        assert.throws(sign, TypeError, `${v.name}: must not be signed`);
        continue;
      }
      assert.equal(canonicalQuery(v.query), v.expect.canonicalQuery, v.name);
      assert.equal(sign(), v.expect.authorization, v.name);
    }
  });

  it('canonical query: sorted in UTF-8 byte order, RFC 3986, + is a space; bad escapes refused', () => {
    assert.equal(canonicalQuery(''), '');
    assert.equal(canonicalQuery('?b=2&a=1&a=0'), 'a=0&a=1&b=2');
    assert.equal(canonicalQuery('x=a+b&y=%2B&z=*\'()!~'), 'x=a%20b&y=%2B&z=%2A%27%28%29%21~');
    assert.equal(canonicalQuery('flag&=v'), '=v&flag=');
    // U+FF5E sorts after U+1F600 in UTF-16 units but before it in UTF-8 bytes.
    assert.equal(canonicalQuery('k=%F0%9F%98%80&k=%EF%BD%9E'), 'k=%EF%BD%9E&k=%F0%9F%98%80');
    assert.throws(() => canonicalQuery('a=%zz'), TypeError);
    assert.throws(() => canonicalQuery('a=1;b=2'), TypeError);
  });
});

describe('retries', () => {
  it('429 with Retry-After: waits, then sends the same bytes with a new signature', async () => {
    const f = await fake((req, res, body, n) => (n === 1 ? json(res, 429, { errCode: -1201, errMsg: 'x:fail throttled', retryAfter: 1 }, { 'retry-after': '1' }) : ok(res)));
    try {
      const t0 = Date.now();
      const r = await f.client().openapi.logistics.getQuota(quota);
      assert.equal(r.quotaNum, 7);
      assert.equal(f.seen.length, 2);
      assert.ok(Date.now() - t0 >= 950, 'waited the Retry-After');
      assert.deepEqual(f.seen[0].body, f.seen[1].body);
      assert.notEqual(f.seen[0].headers.authorization, f.seen[1].headers.authorization);
    } finally {
      await f.close();
    }
  });

  it('429 without Retry-After is not retried', async () => {
    const f = await fake((req, res) => json(res, 429, { errCode: -1201, errMsg: 'x:fail throttled' }));
    try {
      const err = await rejected(f.client().openapi.logistics.getQuota(quota));
      assert.equal(err.errCode, -1201);
      assert.equal(err.status, 429);
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  it('429 retries are bounded: 2 by default, maxRetries otherwise', async () => {
    const f = await fake((req, res) => json(res, 429, { errCode: -1201, errMsg: 'x:fail throttled', retryAfter: 0 }, { 'retry-after': '0' }));
    try {
      const err = await rejected(f.client().openapi.logistics.getQuota(quota));
      assert.equal(err.errCode, -1201);
      assert.equal(err.attempts, 3);
      const err2 = await rejected(f.client({ maxRetries: 3 }).openapi.logistics.getQuota(quota));
      assert.equal(err2.attempts, 4);
      assert.equal(f.seen.length, 7);
    } finally {
      await f.close();
    }
  });

  it('a Retry-After that would end past the deadline rejects at once', async () => {
    const f = await fake((req, res) => json(res, 429, { errCode: -1201, errMsg: 'x:fail throttled', retryAfter: 2 }, { 'retry-after': '2' }));
    try {
      const err = await rejected(f.client({ timeoutMs: 1000 }).openapi.logistics.getQuota(quota));
      assert.equal(err.retryAfter, 2);
      assert.equal(err.attempts, 1);
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  // An outside tester: "2.5" and "-1" went through Date.parse (V8 reads them
  // as dates in 2001), so a gateway's 429 was retried at once, 6 requests in
  // 700 ms, and the caller was told retryAfter 0. RFC 9110 allows digits or
  // an HTTP-date; anything else is no Retry-After, as in the Go client.
  it('a Retry-After that is neither delay-seconds nor an HTTP-date is absent: no retry, no retryAfter', async () => {
    for (const h of ['2.5', '-1', '+1', '1e1', '0x10', 'soon', '2026-12-03T10:00:00Z', 'Mon, 30 Feb 2026 00:00:00 GMT',
      'Mon, 01 Jan 2001 00:00:00 UTC', 'Monday, 01-Jan-01 24:00:00 GMT', 'Jan 1 2001']) {
      const f = await fake((req, res) => json(res, 429, { message: 'Too Many Requests' }, { 'retry-after': h }));
      try {
        const err = await rejected(f.client({ maxRetries: 5 }).openapi.logistics.getQuota(quota));
        assert.equal(err.errCode, -1201, h);
        assert.equal(err.retryAfter, undefined, h);
        assert.equal(f.seen.length, 1, h);
      } finally {
        await f.close();
      }
    }
  });

  it('a Retry-After in each HTTP-date form of RFC 9110 is waited out', async () => {
    // All past: a wait of 0, then the retry that answers.
    for (const h of ['Sun, 06 Nov 1994 08:49:37 GMT', 'Sunday, 06-Nov-94 08:49:37 GMT', 'Sun Nov  6 08:49:37 1994', 'Sat Nov 16 08:49:37 1994']) {
      const f = await fake((req, res, body, n) => (n === 1 ? json(res, 429, { message: 'Too Many Requests' }, { 'retry-after': h }) : ok(res)));
      try {
        const out = await f.client().openapi.logistics.getQuota(quota);
        assert.equal(out.quotaNum, 7, h);
        assert.equal(f.seen.length, 2, h);
      } finally {
        await f.close();
      }
    }
    // A minute ahead: past maxRetryWaitMs, so it rejects at once with the wait.
    const at = new Date(Date.now() + 60_000).toUTCString();
    const f = await fake((req, res) => json(res, 429, { message: 'Too Many Requests' }, { 'retry-after': at }));
    try {
      const err = await rejected(f.client().openapi.logistics.getQuota(quota));
      assert.ok(err.retryAfter >= 59 && err.retryAfter <= 60, `retryAfter ${err.retryAfter}`);
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  it('a redirect is never followed nor retried', async () => {
    const f = await fake((req, res) => { res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }); res.end(); });
    try {
      const err = await rejected(f.client().openapi.logistics.getQuota(quota));
      assert.equal(err.errCode, -1303);
      assert.equal(err.status, 302);
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  it('a Retry-After longer than maxRetryWaitMs rejects at once with retryAfter', async () => {
    const f = await fake((req, res) => json(res, 429, { errCode: -1201, errMsg: 'x:fail throttled', retryAfter: 42 }, { 'retry-after': '42' }));
    try {
      const err = await rejected(f.client().openapi.logistics.getQuota(quota));
      assert.equal(err.retryAfter, 42);
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  it('a charge is retried after a 429 with the very same body (so the same idempotency key)', async () => {
    const f = await fake((req, res, body, n) => (n === 1 ? json(res, 429, { errCode: -1201, errMsg: 'x:fail throttled' }, { 'retry-after': '0' })
      : json(res, 200, charged(JSON.parse(body).idempotencyKey))));
    try {
      const r = await f.client().top.ascp.launchExtraCharge(charge, { idempotencyKey: 'k-1' });
      assert.equal(r.idempotencyKey, 'k-1');
      assert.equal(f.seen.length, 2);
      assert.deepEqual(f.seen[0].body, f.seen[1].body);
      assert.equal(JSON.parse(f.seen[0].body).idempotencyKey, 'k-1', 'the key travels in the signed body');
      assert.equal(f.seen[0].url, '/top-launch-extra-charge');
    } finally {
      await f.close();
    }
  });

  it('a read is retried after the connection drops; a charge is not, and says the outcome is unknown', async () => {
    const drop = (req, res, body, n) => (n === 1 ? req.socket.destroy() : ok(res));
    const f = await fake(drop);
    try {
      const r = await f.client().openapi.logistics.getQuota(quota);
      assert.equal(r.quotaNum, 7);
      assert.equal(f.seen.length, 2);
    } finally {
      await f.close();
    }
    // Dropped every time: the request arrived, so "could not reach" would be false.
    const d = await fake((req) => req.socket.destroy());
    try {
      const err = await rejected(d.client().openapi.logistics.getQuota(quota));
      assert.equal(err.errCode, -1302);
      assert.equal(d.seen.length, 3);
      assert.match(err.errMsg, /^openapi\.logistics\.getQuota:fail the connection to http:\/\/127\.0\.0\.1:\d+ failed before an answer \(/);
    } finally {
      await d.close();
    }
    const g = await fake(drop);
    try {
      const err = await rejected(g.client().top.ascp.launchExtraCharge(charge, { idempotencyKey: 'k-2' }));
      assert.equal(err.errCode, -1304);
      assert.equal(err.status, 0);
      assert.equal(err.idempotencyKey, 'k-2');
      assert.match(err.errMsg, /outcome unknown — the connection failed .* call again with the same input and key:/);
      assert.equal(g.seen.length, 1, 'never re-sent');
    } finally {
      await g.close();
    }
  });

  // A fetch that times out on its own (AbortSignal.timeout inside it,
  // undici's headersTimeout) cut a request that may have arrived: a read is
  // -1301, sent once, as the Go client answers its http.Client.Timeout; a
  // charge -1304 with its key. It was -1302 and sent three times (an outside
  // tester, of the Go client).
  // A plain abort() in the fetch too (a re-tester: -1302, sent three times).
  it('a fetch\'s own timeout or abort is -1301 for a read, sent once; -1304 for a charge', async () => {
    const ownTimeout = (url, init) => fetch(url, { ...init, signal: AbortSignal.any([init.signal, AbortSignal.timeout(1000)]) }); // room for the first fetch to load
    const ownAbort = (url, init) => {
      const c = new AbortController();
      setTimeout(() => c.abort(), 1000);
      return fetch(url, { ...init, signal: AbortSignal.any([init.signal, c.signal]) });
    };
    const cases = [
      { name: 'no headers in time', handler: () => {}, call: (c) => c.openapi.logistics.getQuota(quota), errCode: -1301, status: 0, key: undefined, msg: /^openapi\.logistics\.getQuota:fail no answer before the fetch's own timeout/ },
      { name: 'the body stops arriving', handler: (req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.write('{"errCode":0,'); }, call: (c) => c.openapi.logistics.getQuota(quota), errCode: -1301, status: 200, key: undefined, msg: /^openapi\.logistics\.getQuota:fail no answer before the fetch's own timeout/ },
      { name: 'a charge', handler: () => {}, call: (c) => c.top.ascp.launchExtraCharge(charge, { idempotencyKey: 'k-ft' }), errCode: -1304, status: 0, key: 'k-ft', msg: /call again with the same input and key/ },
    ];
    for (const [how, ownFetch, causeName] of [['AbortSignal.timeout', ownTimeout, 'TimeoutError'], ['abort()', ownAbort, 'AbortError']]) for (const tc of cases) {
      const f = await fake(tc.handler);
      try {
        const err = await rejected(tc.call(f.client({ fetch: ownFetch })));
        tc.name = `${how}, ${tc.name.replace(/^.*?, /, '')}`;
        assert.ok(err instanceof CloudCallError, `${tc.name}: got ${err}`);
        assert.equal(err.errCode, tc.errCode, `${tc.name}: ${err.errMsg}`);
        assert.equal(err.attempts, 1, tc.name);
        assert.equal(f.seen.length, 1, `${tc.name}: sent once, it may have arrived`);
        assert.equal(err.status, tc.status, tc.name);
        assert.equal(err.idempotencyKey, tc.key, tc.name);
        assert.match(err.errMsg, tc.msg, tc.name);
        assert.equal(err.cause?.name, causeName, `${tc.name}: the cause is the fetch's`);
      } finally {
        await f.close();
      }
    }
  });

  it('a "replayed nonce" (something delivered the request twice): a read is asked again, a charge is -1304 with its key', async () => {
    const replayed = (api) => (req, res, body, n) => (n === 1
      ? json(res, 401, { errCode: -1101, errMsg: `${api}:fail unauthenticated: replayed nonce` })
      : ok(res));
    const f = await fake(replayed('openapi.logistics.getQuota'));
    try {
      const r = await f.client().openapi.logistics.getQuota(quota);
      assert.equal(r.quotaNum, 7);
      assert.equal(f.seen.length, 2);
      assert.notEqual(f.seen[0].headers.authorization, f.seen[1].headers.authorization, 'signed anew');
    } finally {
      await f.close();
    }
    const g = await fake(replayed('top.ascp.launchExtraCharge'));
    try {
      const err = await rejected(g.client().top.ascp.launchExtraCharge(charge, { idempotencyKey: 'k-r' }));
      assert.equal(err.errCode, -1304, 'the first delivery may have charged: never "not charged"');
      assert.equal(err.status, 401);
      assert.equal(err.idempotencyKey, 'k-r');
      assert.match(err.errMsg, /outcome unknown — the function refused this request as a replay .* call again with the same input and key:/);
      assert.equal(g.seen.length, 1, 'never re-sent');
    } finally {
      await g.close();
    }
    const k = await fake(replayed('top.ascp.launchExtraCharge'));
    try {
      const err = await rejected(k.client().top.ascp.launchExtraCharge(charge));
      assert.equal(err.errCode, -1304);
      assert.match(err.errMsg, /call again with the same input: /, 'keyless: the same input is the key');
    } finally {
      await k.close();
    }
    // Any other refusal of the signature is what it says.
    const h = await fake((req, res) => json(res, 401, { errCode: -1101, errMsg: 'top.ascp.launchExtraCharge:fail unauthenticated: signature does not match' }));
    try {
      const err = await rejected(h.client().top.ascp.launchExtraCharge(charge, { idempotencyKey: 'k-s' }));
      assert.equal(err.errCode, -1101);
      assert.equal(h.seen.length, 1);
    } finally {
      await h.close();
    }
  });

  // A read is sent again only after a connection failure (refused, DNS,
  // reset or closed by the peer). A fetch's own timeout or abort is -1301,
  // and any other failure of the fetch (its own error, an abort with a
  // reason, which fetch rejects with as it is) -1302: one attempt, it may
  // have arrived. Re-testers found aborts with a reason and a fetch's own
  // error sent three times, and charges naming "the connection failed (23)",
  // "(20)" or "(undefined)".
  it('only a connection failure sends a read again; the charge names what happened', async () => {
    const hang = () => {};
    const answer = (req, res) => ok(res);
    const reset = (req) => req.socket.resetAndDestroy();
    // A fetch that aborts its own request after 400 ms, with a reason (or none).
    const aborting = (reason) => (url, init) => {
      const c = new AbortController();
      setTimeout(() => (reason === undefined ? c.abort() : c.abort(reason)), 400);
      return fetch(url, { ...init, signal: AbortSignal.any([init.signal, c.signal]) });
    };
    // A fetch that sends the request, then fails with its own error.
    const ownError = async (url, init) => {
      const res = await fetch(url, init);
      await res.text();
      throw new Error('gateway gave up');
    };
    const read = (c) => c.openapi.logistics.getQuota(quota);
    const chargeIt = (c) => c.top.ascp.launchExtraCharge(charge, { idempotencyKey: 'k-tr' });
    const cases = [
      { name: 'abort with an Error reason, a read', handler: hang, fetch: aborting(new Error('gave up')), call: read, errCode: -1302, attempts: 1, hits: 1,
        msg: /^openapi\.logistics\.getQuota:fail the fetch \(options\.fetch\) failed with: gave up; not sent again, it may have arrived$/ },
      { name: 'abort with an Error reason, a charge', handler: hang, fetch: aborting(new Error('gave up')), call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail outcome unknown — the fetch \(options\.fetch\) failed with: gave up, after the charge may have been sent; call again with the same input and key:/ },
      { name: 'abort with a string reason, a read', handler: hang, fetch: aborting('gave up'), call: read, errCode: -1302, attempts: 1, hits: 1,
        msg: /^openapi\.logistics\.getQuota:fail the fetch \(options\.fetch\) failed with: gave up; not sent again, it may have arrived$/ },
      { name: 'abort with a string reason, a charge', handler: hang, fetch: aborting('gave up'), call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail outcome unknown — the fetch \(options\.fetch\) failed with: gave up, after the charge may have been sent; call again with the same input and key:/ },
      { name: 'abort() without a reason, a charge', handler: hang, fetch: aborting(undefined), call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail outcome unknown — no answer before the fetch's own timeout or abort \(options\.fetch: AbortError: This operation was aborted\) after the charge may have been sent; call again with the same input and key:/ },
      { name: 'AbortSignal.timeout, a charge', handler: hang, fetch: (url, init) => fetch(url, { ...init, signal: AbortSignal.any([init.signal, AbortSignal.timeout(400)]) }), call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail outcome unknown — no answer before the fetch's own timeout or abort \(options\.fetch: TimeoutError: The operation was aborted due to timeout\) after the charge may have been sent; call again with the same input and key:/ },
      { name: 'its own error after sending, a read', handler: answer, fetch: ownError, call: read, errCode: -1302, attempts: 1, hits: 1,
        msg: /^openapi\.logistics\.getQuota:fail the fetch \(options\.fetch\) failed with: gateway gave up; not sent again, it may have arrived$/ },
      { name: 'its own error after sending, a charge', handler: answer, fetch: ownError, call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail outcome unknown — the fetch \(options\.fetch\) failed with: gateway gave up, after the charge may have been sent; call again/ },
      { name: 'reset by the server every time, a read', handler: reset, call: read, errCode: -1302, attempts: 3, hits: 3,
        msg: /^openapi\.logistics\.getQuota:fail the connection to http:\/\/127\.0\.0\.1:\d+ failed before an answer \(ECONNRESET\)$/ },
      { name: 'reset by the server, a charge', handler: reset, call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail outcome unknown — the connection failed \(ECONNRESET\) after the charge may have been sent; call again with the same input and key:/ },
      { name: 'refused, a read', refused: true, call: read, errCode: -1302, attempts: 3, hits: 0,
        msg: /^openapi\.logistics\.getQuota:fail could not reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/ },
      { name: 'refused, a charge', refused: true, call: chargeIt, errCode: -1302, attempts: 1, hits: 0, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail could not reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/ },
      // A fetch that resolves to no Response failed as if it threw.
      { name: 'a fetch resolving to undefined, a read', handler: answer, fetch: async (url, init) => { await (await fetch(url, init)).text(); return undefined; }, call: read, errCode: -1302, attempts: 1, hits: 1,
        msg: /^openapi\.logistics\.getQuota:fail the fetch \(options\.fetch\) failed with: the fetch resolved to nothing; not sent again, it may have arrived$/ },
      { name: 'a fetch resolving to {}, a charge', handler: answer, fetch: async (url, init) => { await (await fetch(url, init)).text(); return {}; }, call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail outcome unknown — the fetch \(options\.fetch\) failed with: the fetch resolved to an object that is no Response, after the charge/ },
      // A Response-like object whose text() gives no promise or no string,
      // or whose headers.get throws: a CloudCallError, never a plain error.
      { name: 'a text() that returns a string, not a promise, a read', handler: answer, fetch: async (url, init) => { await (await fetch(url, init)).text(); return { status: 200, headers: new Headers(), text: () => '{}' }; }, call: read, errCode: -1303, attempts: 1, hits: 1, status: 200,
        msg: /^openapi\.logistics\.getQuota:fail / },
      { name: 'a text() that gives a number, a charge', handler: answer, fetch: async (url, init) => { await (await fetch(url, init)).text(); return { status: 200, headers: new Headers(), text: async () => 42 }; }, call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr', status: 200,
        msg: /^top\.ascp\.launchExtraCharge:fail outcome unknown — the answer stopped arriving/ },
      { name: 'a headers.get that throws, a charge', handler: answer, fetch: async (url, init) => { await (await fetch(url, init)).text(); return { status: 502, headers: { get() { throw new Error('hget'); } }, text: async () => 'no envelope' }; }, call: chargeIt, errCode: -1304, attempts: 1, hits: 1, key: 'k-tr', status: 502,
        msg: /^top\.ascp\.launchExtraCharge:fail / },
      // A failed TLS handshake and a port fetch blocks sent nothing: not
      // -1304 "may have been sent" (a re-tester).
      { name: 'HTTPS to a plain HTTP port, a charge', base: (u) => u.replace('http://', 'https://'), call: chargeIt, errCode: -1302, attempts: 1, hits: 0, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail could not reach https:\/\/127\.0\.0\.1:\d+ \(\w+\)$/ },
      { name: 'a port fetch blocks, a charge', base: () => 'http://127.0.0.1:9', call: chargeIt, errCode: -1302, attempts: 1, hits: 0, key: 'k-tr',
        msg: /^top\.ascp\.launchExtraCharge:fail could not reach http:\/\/127\.0\.0\.1:9 \(bad port\)$/ },
    ];
    for (const tc of cases) {
      const f = await fake(tc.handler ?? answer);
      try {
        if (tc.refused) await f.close();
        const err = await rejected(tc.call(f.client({ ...(tc.fetch && { fetch: tc.fetch }), ...(tc.base && { baseUrl: tc.base(f.url) }) })));
        assert.ok(err instanceof CloudCallError, `${tc.name}: got ${err}`);
        assert.equal(err.errCode, tc.errCode, `${tc.name}: ${err.errMsg}`);
        assert.equal(err.attempts, tc.attempts, `${tc.name}: ${err.errMsg}`);
        assert.equal(f.seen.length, tc.hits, `${tc.name}: requests the server saw`);
        assert.equal(err.status, tc.status ?? 0, tc.name);
        assert.equal(err.idempotencyKey, tc.key, tc.name);
        assert.match(err.errMsg, tc.msg, tc.name);
        assert.doesNotMatch(err.errMsg, /\(\d+\)|undefined/, `${tc.name}: no bare code, no undefined`);
      } finally {
        if (!tc.refused) await f.close();
      }
    }
  });

  // A read is sent again only with room for another attempt as long as the
  // last, as the Go client does: a connection closed after 600 ms of a 1 s
  // budget was sent again into the deadline, running the function twice for
  // a -1301 (a re-tester).
  it('a connection failure is not sent again without room for another attempt', async () => {
    const f = await fake((req) => new Promise((r) => setTimeout(() => { req.socket.destroy(); r(); }, 600)));
    try {
      const err = await rejected(f.client({ timeoutMs: 1000 }).openapi.logistics.getQuota(quota));
      assert.ok(err instanceof CloudCallError, `got ${err}`);
      assert.equal(err.errCode, -1302, err.errMsg);
      assert.equal(err.attempts, 1, err.errMsg);
      assert.equal(f.seen.length, 1, 'the function ran once');
    } finally {
      await f.close();
    }
  });

  it('a refused connection is -1302 after the bounded retries', async () => {
    const f = await fake((req, res) => ok(res));
    const url = f.url;
    await f.close();
    const cc = createClient({ baseUrl: url, keyId: 'k1', secret: SECRET, maxRetries: 1 });
    const err = await rejected(cc.openapi.logistics.getQuota(quota));
    assert.equal(err.errCode, -1302);
    assert.equal(err.attempts, 2);
    assert.match(err.errMsg, /^openapi\.logistics\.getQuota:fail could not reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/);
    const err2 = await rejected(cc.top.ascp.launchExtraCharge(charge));
    assert.equal(err2.errCode, -1302, 'never sent: not an unknown outcome');
    assert.equal(err2.attempts, 1);
  });
});

describe('deadlines and errors', () => {
  it('timeoutMs bounds the call with an AbortSignal: -1301 for a read, -1304 for a charge', async () => {
    const f = await fake(() => {}); // never answers
    try {
      const err = await rejected(f.client({ timeoutMs: 300 }).openapi.logistics.getQuota(quota));
      assert.equal(err.errCode, -1301);
      assert.equal(err.status, 0);
      assert.equal(err.cause?.name, 'TimeoutError');
      const err2 = await rejected(f.client({ timeoutMs: 300 }).top.ascp.launchExtraCharge(charge));
      assert.equal(err2.errCode, -1304);
    } finally {
      await f.close();
    }
  });

  it('headers then a body that stops: -1301 for a read, -1304 with the key for a charge', async () => {
    // The function answered its status line and headers, then went quiet:
    // it ran, so a charge's outcome is unknown, never "not an envelope".
    const f = await fake((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '200', 'x-fc-request-id': 'req-stall' });
      res.write('{"errCode":0,');
    });
    try {
      const err = await rejected(f.client({ timeoutMs: 300 }).openapi.logistics.getQuota(quota));
      assert.equal(err.errCode, -1301);
      assert.equal(err.requestId, 'req-stall');
      const err2 = await rejected(f.client({ timeoutMs: 300 }).top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'stall-1' }));
      assert.equal(err2.errCode, -1304);
      assert.equal(err2.idempotencyKey, 'stall-1');
      assert.match(err2.errMsg, /outcome unknown — the answer stopped arriving within the timeout; call again with the same input and key/);
    } finally {
      await f.close();
    }
  });

  it('a 429 whose wait leaves no room for another attempt is answered as the 429', async () => {
    // The first attempt takes 250 ms and asks for a 1 s wait; with a 1.4 s
    // budget a retry could only time out, so the caller gets -1201 and
    // retryAfter, not a vague -1301.
    const f = await fake(async (req, res) => {
      await new Promise((r) => setTimeout(r, 250));
      json(res, 429, { errCode: -1201, errMsg: 'cams.queryChatappBindWaba:fail throttled', retryAfter: 1 }, { 'retry-after': '1' });
    });
    try {
      const err = await rejected(f.client({ timeoutMs: 1400 }).openapi.logistics.getQuota(quota));
      assert.equal(err.errCode, -1201);
      assert.equal(err.retryAfter, 1);
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  it('a retry the deadline cuts rejects with the 429 it retried, not -1301', async () => {
    // An outside tester: the function answered 429 retryAfter 1 after a
    // while, the client waited 1 s and asked again, and its own deadline cut
    // that second attempt: -1301 "no answer within the timeout". The first
    // attempt takes 200 ms, so the retry fits (200 + 1000 + 200 < 2000 ms);
    // the second answers only after the deadline, or stops mid-body.
    const envelope = { errCode: -1201, errMsg: 'openapi.logistics.getQuota:fail throttled by the vendor', retryAfter: 1, upstream: { vendor: 'wechat', code: '45009', message: 'reach max api daily quota limit' } };
    const timers = new Set();
    const later = (ms, f) => { const t = setTimeout(() => { timers.delete(t); f(); }, ms); timers.add(t); };
    const second = {
      slow: (res) => later(1500, () => json(res, 429, envelope, { 'retry-after': '1' })),
      stalled: (res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': '200' }); res.write('{"errCode":0,'); },
    };
    for (const [name, answer] of Object.entries(second)) {
      const f = await fake((req, res, body, n) => {
        if (n === 1) later(200, () => json(res, 429, envelope, { 'retry-after': '1', 'x-fc-request-id': 'req-429' }));
        else answer(res);
      });
      try {
        const err = await rejected(f.client({ timeoutMs: 2000 }).openapi.logistics.getQuota(quota));
        assert.ok(err instanceof CloudCallError, `${name}: ${err}`);
        assert.equal(err.errCode, -1201, `${name}: ${err.errMsg}`);
        assert.equal(err.status, 429, name);
        assert.equal(err.retryAfter, 1, name);
        assert.equal(err.errMsg, envelope.errMsg, name);
        assert.deepEqual(err.upstream, envelope.upstream, name);
        assert.equal(err.requestId, 'req-429', name);
        assert.equal(err.attempts, 2, name);
        assert.equal(f.seen.length, 2, `${name}: the retry was sent`);
      } finally {
        for (const t of timers) clearTimeout(t);
        await f.close();
      }
    }
    // A platform's 429 (no envelope) is kept the same way.
    const g = await fake((req, res, body, n) => {
      if (n === 1) later(200, () => json(res, 429, { message: 'Too Many Requests' }, { 'retry-after': '1' }));
    });
    try {
      const err = await rejected(g.client({ timeoutMs: 2000 }).openapi.logistics.getQuota(quota));
      assert.equal(err.errCode, -1201, err.errMsg);
      assert.equal(err.status, 429);
      assert.equal(err.retryAfter, 1);
      assert.match(err.errMsg, /^openapi\.logistics\.getQuota:fail throttled before the function \(HTTP 429 from http:\/\/127\.0\.0\.1:\d+\/logistics-get-quota\): \{"message":"Too Many Requests"\}$/);
      assert.equal(err.attempts, 2);
      assert.equal(g.seen.length, 2);
    } finally {
      for (const t of timers) clearTimeout(t);
      await g.close();
    }
  });

  it('a charge whose 429 retry the deadline cuts is -1304 with its key: the retry may have charged', async () => {
    const timers = new Set();
    const f = await fake((req, res, body, n) => {
      if (n === 1) timers.add(setTimeout(() => json(res, 429, { errCode: -1201, errMsg: 'top.ascp.launchExtraCharge:fail throttled', retryAfter: 1, idempotencyKey: 'cut-1' }, { 'retry-after': '1' }), 200));
    });
    try {
      const err = await rejected(f.client({ timeoutMs: 2000 }).top.ascp.launchExtraCharge(charge, { idempotencyKey: 'cut-1' }));
      assert.equal(err.errCode, -1304, err.errMsg);
      assert.equal(err.status, 0);
      assert.equal(err.idempotencyKey, 'cut-1');
      assert.equal(err.attempts, 2);
      assert.equal(f.seen.length, 2);
    } finally {
      for (const t of timers) clearTimeout(t);
      await f.close();
    }
  });

  it('a keyless charge whose 429 retry is cut is -1304 with the key the function echoed', async () => {
    // Without a caller key the function keys the charge by its fingerprint
    // and echoes it on the 429: the -1304 named none (an outside re-tester).
    const timers = new Set();
    const key = 'auto:' + 'ab'.repeat(32);
    const f = await fake((req, res, body, n) => {
      if (n === 1) timers.add(setTimeout(() => json(res, 429, { errCode: -1201, errMsg: 'top.ascp.launchExtraCharge:fail throttled', retryAfter: 1, idempotencyKey: key }, { 'retry-after': '1' }), 200));
    });
    try {
      const err = await rejected(f.client({ timeoutMs: 2000 }).top.ascp.launchExtraCharge(charge));
      assert.equal(err.errCode, -1304, err.errMsg);
      assert.equal(err.idempotencyKey, key);
      assert.match(err.errMsg, /same input and key/);
      assert.equal(f.seen.length, 2);
      assert.equal(JSON.parse(f.seen[1].body).idempotencyKey, undefined, 'the retry sends the very same bytes');
    } finally {
      for (const t of timers) clearTimeout(t);
      await f.close();
    }
  });

  it('the caller\'s AbortSignal rejects with its reason', async () => {
    const ac = new AbortController();
    // The caller gives up once the request has arrived (no timing involved).
    const f = await fake(() => ac.abort(new Error('user went away')));
    try {
      const p = f.client().openapi.logistics.getQuota(quota, { signal: ac.signal });
      const err = await rejected(p);
      assert.equal(err.message, 'user went away');
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  it('a caller\'s AbortSignal.timeout is the caller\'s: a read rejects with its reason', async () => {
    // It is a TimeoutError too; it was taken for the client's own deadline
    // and answered -1301.
    const f = await fake(() => {});
    try {
      const err = await rejected(f.client().openapi.logistics.getQuota(quota, { signal: AbortSignal.timeout(100) }));
      assert.ok(!(err instanceof CloudCallError), `got ${err.errCode} ${err.message}`);
      assert.equal(err.name, 'TimeoutError');
    } finally {
      await f.close();
    }
  });

  it('a caller\'s abort during a charge is -1304 with the key, the reason as cause', async () => {
    const ac = new AbortController();
    const reason = new Error('user went away');
    const f = await fake(() => ac.abort(reason));
    try {
      const err = await rejected(f.client().top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'abort-1' }, { signal: ac.signal }));
      assert.ok(err instanceof CloudCallError);
      assert.equal(err.errCode, -1304);
      assert.equal(err.idempotencyKey, 'abort-1');
      assert.equal(err.cause, reason);
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  it('a platform\'s 429 that is no envelope is a throttle: waited out, or -1201 with the key', async () => {
    const f = await fake((req, res, body, n) => {
      if (n === 1 || n >= 3) return json(res, 429, { message: 'Too Many Requests' }, { 'retry-after': '0' });
      ok(res);
    });
    try {
      const out = await f.client().openapi.logistics.getQuota(quota);
      assert.equal(out.quotaNum, 7);
      assert.equal(f.seen.length, 2);
      const err = await rejected(f.client({ maxRetries: 0 }).top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'gw-429' }));
      assert.equal(err.errCode, -1201);
      assert.equal(err.status, 429);
      assert.equal(err.retryAfter, 0);
      assert.equal(err.idempotencyKey, 'gw-429');
    } finally {
      await f.close();
    }
  });

  it('a charge answered by something that is no envelope is -1304 with its key, whatever the status', async () => {
    for (const status of [200, 400, 307]) {
      const f = await fake((req, res) => { res.writeHead(status, { 'content-type': 'text/html', location: '/elsewhere' }); res.end('<html>proxy page</html>'); });
      try {
        const err = await rejected(f.client().top.ascp.launchExtraCharge({ ...charge, idempotencyKey: `html-${status}` }));
        assert.equal(err.errCode, -1304, `${status}: ${err.errMsg}`);
        assert.equal(err.idempotencyKey, `html-${status}`);
        assert.equal(err.status, status);
        assert.equal(f.seen.length, 1, 'never sent again');
        // A read is only unreadable.
        const r = await rejected(f.client().openapi.logistics.getQuota(quota));
        assert.equal(r.errCode, -1303);
      } finally {
        await f.close();
      }
    }
  });

  it('errCode 0 is a success only as this function\'s "<api>:ok" with a 2xx: a proxy\'s JSON or another function\'s answer is not', async () => {
    const answers = [
      [502, { errCode: 0, errMsg: 'top.ascp.launchExtraCharge:ok' }], // errCode 0 on a gateway error
      [200, { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 1 }], // another function at this endpoint
      [200, { errCode: 0, errMsg: 'x:ok' }],
      [200, { errCode: 0 }],
    ];
    for (const [status, body] of answers) {
      const f = await fake((req, res) => json(res, status, body));
      try {
        const err = await rejected(f.client().top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'not-ours' }));
        assert.equal(err.errCode, -1304, `${status} ${JSON.stringify(body)}: ${err.errMsg}`);
        assert.equal(err.idempotencyKey, 'not-ours');
        assert.equal(err.status, status);
        assert.match(err.errMsg, /is not a cloudcall envelope/);
        assert.match(err.errMsg, /call again with the same input and key:/);
        assert.equal(f.seen.length, 1, 'never sent again');
        // Without a key there is none to repeat with (an outside tester).
        const keyless = await rejected(f.client().top.ascp.launchExtraCharge(charge));
        assert.equal(keyless.errCode, -1304);
        assert.match(keyless.errMsg, /call again with the same input:/);
        const r = await rejected(f.client().cams.queryChatappBindWaba({}));
        assert.equal(r.errCode, -1303, JSON.stringify(body));
      } finally {
        await f.close();
      }
    }
  });

  it('a signal already aborted sends nothing, a charge neither', async () => {
    const f = await fake((req, res) => ok(res));
    try {
      const reason = new Error('gave up before');
      const err = await rejected(f.client().top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'pre-1' }, { signal: AbortSignal.abort(reason) }));
      assert.equal(err, reason);
      assert.equal(f.seen.length, 0);
    } finally {
      await f.close();
    }
  });

  it('a per-call timeoutMs is checked before anything is sent', async () => {
    const f = await fake((req, res) => ok(res));
    try {
      for (const timeoutMs of [-5, 'abc', 3e9, 0, 0.5]) {
        await assert.rejects(f.client().top.ascp.launchExtraCharge(charge, { timeoutMs }), /timeoutMs/, String(timeoutMs));
      }
      assert.equal(f.seen.length, 0);
    } finally {
      await f.close();
    }
  });

  it('a charge that could not be reached still names its key', async () => {
    const f = await fake((req, res) => ok(res));
    const url = f.url;
    await f.close();
    const cc = createClient({ baseUrl: url, keyId: 'k1', secret: SECRET });
    const err = await rejected(cc.top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'refused-1' }));
    assert.equal(err.errCode, -1302);
    assert.equal(err.idempotencyKey, 'refused-1');
  });

  it('a failure envelope becomes a CloudCallError with every field', async () => {
    const upstream = { vendor: 'ck1', httpStatus: 400, code: 'E1', message: 'bad', requestId: 'T-1' };
    const f = await fake((req, res) => json(res, 400, { errCode: -1001, errMsg: 'ck1.pricing.inboundBox:fail boxes[0].weight: bad', field: 'boxes[0].weight', upstream }, { 'x-fc-request-id': 'fc-req-9' }));
    try {
      const err = await rejected(f.client().ck1.pricing.inboundBox({ warehouseId: 'US', boxes: [] }));
      assert.ok(err instanceof CloudCallError);
      assert.ok(err instanceof Error);
      assert.equal(err.name, 'CloudCallError');
      assert.equal(err.message, err.errMsg);
      assert.deepEqual({ errCode: err.errCode, field: err.field, upstream: err.upstream, requestId: err.requestId, status: err.status, function: err.function, api: err.api },
        { errCode: -1001, field: 'boxes[0].weight', upstream, requestId: 'fc-req-9', status: 400, function: 'ck1-pricing-inbound-box', api: 'ck1.pricing.inboundBox' });
    } finally {
      await f.close();
    }
  });

  it('an answer that is not an envelope is -1303 with the status and a snippet', async () => {
    const f = await fake((req, res) => { res.writeHead(502, { 'content-type': 'text/html' }); res.end('<html>Bad Gateway</html>'); });
    try {
      const err = await rejected(f.client().cams.queryChatappBindWaba({}));
      assert.equal(err.errCode, -1303);
      assert.equal(err.status, 502);
      assert.match(err.errMsg, /Bad Gateway/);
    } finally {
      await f.close();
    }
  });

  it('endpoints per function win over baseUrl; a missing one is a TypeError', async () => {
    const f = await fake((req, res) => ok(res));
    try {
      const cc = createClient({ endpoints: { 'logistics-get-quota': f.url + '/custom/path' }, keyId: 'k1', secret: SECRET });
      await cc.openapi.logistics.getQuota(quota);
      assert.equal(f.seen[0].url, '/custom/path');
      await assert.rejects(cc.ck1.pricing.inboundBox({ warehouseId: 'US', boxes: [] }), TypeError);
    } finally {
      await f.close();
    }
  });

  it('options are checked when the client is made', () => {
    assert.throws(() => createClient({ keyId: 'k1', secret: SECRET }), /baseUrl/);
    assert.throws(() => createClient({ baseUrl: 'http://x', keyId: 'k1', secret: 'short' }), /16/);
    assert.throws(() => createClient({ baseUrl: 'http://x', keyId: 'bad id', secret: SECRET }), /keyId/);
    assert.throws(() => createClient({ baseUrl: 'http://x', keyId: 'k1', secret: SECRET, timeoutMs: -1 }), /timeoutMs/);
    // Past 2^31-1 ms Node's timer fires after 1 ms: a charge would be cut off at once.
    assert.throws(() => createClient({ baseUrl: 'http://x', keyId: 'k1', secret: SECRET, timeoutMs: 3e9 }), /timeoutMs/);
    assert.throws(() => createClient({ baseUrl: 'http://x', keyId: 'k1', secret: SECRET, maxRetries: 1.5 }), /maxRetries/);
    // 16 bytes of UTF-8, as the functions count: six CJK characters are 18.
    assert.doesNotThrow(() => createClient({ baseUrl: 'http://x', keyId: 'k1', secret: '密钥密钥密钥' }));
    assert.throws(() => createClient({ baseUrl: 'http://x', keyId: 'k1', secret: '密钥密钥密' }), /16 bytes/);
    // URLs fetch cannot send: at call time a charge read "outcome unknown"
    // (-1304) for a request that never left.
    assert.throws(() => createClient({ baseUrl: 'ftp://127.0.0.1:9000', keyId: 'k1', secret: SECRET }), /baseUrl must be an http:\/\/ or https:\/\/ URL, got ftp:/);
    assert.throws(() => createClient({ baseUrl: 'file:///tmp', keyId: 'k1', secret: SECRET }), /http:\/\/ or https:\/\//);
    assert.throws(() => createClient({ baseUrl: 'http://user:pw@127.0.0.1:9000', keyId: 'k1', secret: SECRET }), /must not carry credentials/);
    assert.throws(() => createClient({ baseUrl: '127.0.0.1:9000/fn', keyId: 'k1', secret: SECRET }), /has no scheme: write http:\/\/127.0.0.1:9000\/fn/);
    assert.throws(() => createClient({ endpoints: { 'top-launch-extra-charge': 'fc.example.com/x' }, keyId: 'k1', secret: SECRET }), /endpoints\["top-launch-extra-charge"\]/);
    // <baseUrl>/<function> would land in the query or fragment: a 405, and
    // a charge read "outcome unknown".
    assert.throws(() => createClient({ baseUrl: 'http://127.0.0.1:9720?x=1', keyId: 'k1', secret: SECRET }), /must not carry a query or fragment/);
    assert.throws(() => createClient({ baseUrl: 'http://127.0.0.1:9720#prod', keyId: 'k1', secret: SECRET }), /must not carry a query or fragment/);
    assert.throws(() => createClient({ baseUrl: 'localhost:9720', keyId: 'k1', secret: SECRET }), /"localhost:9720" has no scheme: write http:\/\/localhost:9720/);
    assert.throws(() => createClient({ baseUrl: '127.0.0.1:9720', keyId: 'k1', secret: SECRET }), /has no scheme: write http:\/\/127.0.0.1:9720/);
    assert.throws(() => createClient({ baseUrl: '[::1]:9720', keyId: 'k1', secret: SECRET }), /has no scheme/);
    for (const bare of ['http://127.0.0.1:9720?', 'http://127.0.0.1:9720/#']) {
      assert.throws(() => createClient({ baseUrl: bare, keyId: 'k1', secret: SECRET }), /must not carry a query or fragment/, bare);
    }
    assert.throws(() => createClient({ baseUrl: 'http://127.0.0.1:9720 ', keyId: 'k1', secret: SECRET }), /has spaces around it/);
    assert.doesNotThrow(() => createClient({ baseUrl: 'http://[::1]:9720/', keyId: 'k1', secret: SECRET }));
    assert.throws(() => createClient({ endpoints: {}, keyId: 'k1', secret: SECRET }), /endpoints is empty and there is no baseUrl/);
    assert.throws(() => createClient({ endpoints: 'http://x/q', keyId: 'k1', secret: SECRET }), /endpoints must be an object/);
    assert.doesNotThrow(() => createClient({ baseUrl: 'HTTP://LOCALHOST:9720/prefix/', keyId: 'k1', secret: SECRET }));
    assert.throws(() => createClient({ endpoints: { 'logistics-get-qouta': 'http://x/q' }, keyId: 'k1', secret: SECRET }), /endpoints names "logistics-get-qouta", which is no function; known: logistics-get-quota/);
    // As the Go client refuses them: every call failed with a bare TypeError.
    assert.throws(() => createClient({ endpoints: { 'logistics-get-quota': 'http://x/q?a=1;b=2' }, keyId: 'k1', secret: SECRET }), /endpoints\["logistics-get-quota"\]: its query cannot be signed/);
    assert.throws(() => createClient({ endpoints: { 'logistics-get-quota': 'http://x/q?a=%zz' }, keyId: 'k1', secret: SECRET }), /its query cannot be signed/);
    // The Go client's spellings were ignored, and the message blamed the option meant.
    assert.throws(() => createClient({ baseURL: 'http://x', keyId: 'k1', secret: SECRET }), /unknown option "baseURL" \(did you mean "baseUrl"\?\)/);
    assert.throws(() => createClient({ baseUrl: 'http://x', keyID: 'k1', secret: SECRET }), /unknown option "keyID" \(did you mean "keyId"\?\)/);
    assert.throws(() => createClient({ baseUrl: 'http://x', keyId: 'k1', secret: SECRET, retries: 1 }), /unknown option "retries" \(did you mean "maxRetries"\?\); the options are baseUrl, endpoints/);
    assert.throws(() => createClient({ baseUrl: 'http://x', keyId: 'k1', secret: SECRET, Timeout: 1 }), /unknown option "Timeout" \(did you mean "timeoutMs"\?\)/);
    // An empty segment fetch sends as it is: every call drew a redirect.
    assert.throws(() => createClient({ endpoints: { 'top-launch-extra-charge': 'http://x//top-launch-extra-charge' }, keyId: 'k1', secret: SECRET }), /has an empty path segment \(\/\/\)/);
    assert.doesNotThrow(() => createClient({ baseUrl: 'http://x/prefix//', keyId: 'k1', secret: SECRET }), 'trailing slashes of a base URL go');
  });

  it('call options are checked: a misspelled idempotency key is refused, not dropped', async () => {
    const f = await fake((req, res) => ok(res));
    try {
      const cc = f.client();
      for (const [opts, re] of [
        [{ idempotencykey: 'k1' }, /unknown call option "idempotencykey" \(did you mean "idempotencyKey"\?\); top.ascp.launchExtraCharge takes signal, timeoutMs, idempotencyKey/],
        [{ IdempotencyKey: 'k1' }, /did you mean "idempotencyKey"/],
        [{ idempotency_key: 'k1' }, /did you mean "idempotencyKey"/],
        [{ timeout: 5 }, /did you mean "timeoutMs"/],
      ]) {
        await assert.rejects(cc.top.ascp.launchExtraCharge(charge, opts), re);
      }
      await assert.rejects(cc.openapi.logistics.getQuota(quota, { idempotencyKey: 'k' }), /unknown call option "idempotencyKey"; openapi.logistics.getQuota takes signal, timeoutMs/);
      assert.equal(f.seen.length, 0, 'nothing was sent');
    } finally {
      await f.close();
    }
  });

  it('CloudCallError can be built by a test, and says how when misused', () => {
    const e = new CloudCallError({ errCode: -1001, errMsg: 'openapi.logistics.getQuota:fail bizId: required', api: 'openapi.logistics.getQuota', function: 'logistics-get-quota' });
    assert.equal(e.message, 'openapi.logistics.getQuota:fail bizId: required');
    assert.equal(e.status, 0);
    assert.ok(e instanceof Error);
    assert.throws(() => new CloudCallError(), /new CloudCallError\(\{ errCode, errMsg, api, function/);
    assert.throws(() => new CloudCallError('boom'), TypeError);
  });

  it('a custom fetch is used', async () => {
    const calls = [];
    const cc = createClient({ baseUrl: 'http://fn.example', keyId: 'k1', secret: SECRET, fetch: async (url, init) => {
      calls.push(String(url));
      return new Response(JSON.stringify({ errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 0 }), { status: 200 });
    } });
    const r = await cc.openapi.logistics.getQuota(quota);
    assert.equal(r.quotaNum, 0);
    assert.deepEqual(calls, ['http://fn.example/logistics-get-quota']);
  });

  it('two different idempotency keys are refused before sending', async () => {
    const cc = createClient({ baseUrl: 'http://fn.example', keyId: 'k1', secret: SECRET, fetch: async () => assert.fail('sent') });
    const err = await rejected(cc.top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'a' }, { idempotencyKey: 'b' }));
    assert.equal(err.errCode, -1001);
    assert.equal(err.field, 'idempotencyKey');
  });

  it('an empty idempotency key is no key: the other one is used, and they do not disagree', async () => {
    // docs/envelope.md, Policies: an empty key is no key. { idempotencyKey: '' }
    // in the input with a key in the options was refused as two keys.
    const sent = [];
    const cc = createClient({ baseUrl: 'http://fn.example', keyId: 'k1', secret: SECRET, fetch: async (url, init) => {
      const key = JSON.parse(init.body.toString()).idempotencyKey;
      sent.push(key);
      return new Response(JSON.stringify(charged(key ?? 'fingerprint-key')), { status: 200 });
    } });
    assert.equal((await cc.top.ascp.launchExtraCharge({ ...charge, idempotencyKey: '' }, { idempotencyKey: 'k' })).idempotencyKey, 'k');
    assert.equal((await cc.top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'a' }, { idempotencyKey: '' })).idempotencyKey, 'a');
    assert.equal((await cc.top.ascp.launchExtraCharge({ ...charge, idempotencyKey: 'k' }, { idempotencyKey: 'k' })).idempotencyKey, 'k');
    await cc.top.ascp.launchExtraCharge(charge, { idempotencyKey: '' });
    assert.deepEqual(sent, ['k', 'a', 'k', undefined], 'an empty option adds no key to the body');
  });

  it('no input at all is sent as {}, for the function to name what is missing; a non-object is refused', async () => {
    const sent = [];
    const cc = createClient({ baseUrl: 'http://fn.example', keyId: 'k1', secret: SECRET, fetch: async (url, init) => {
      sent.push(init.body.toString());
      return new Response(JSON.stringify({ errCode: -1001, errMsg: 'openapi.logistics.getQuota:fail invalid input: deliveryId: required', field: 'deliveryId' }), { status: 400 });
    } });
    const err = await rejected(cc.openapi.logistics.getQuota());
    assert.equal(err.errCode, -1001);
    assert.equal(err.field, 'deliveryId', 'the function names the field, as for {}');
    assert.equal(err.status, 400);
    assert.equal((await rejected(cc.openapi.logistics.getQuota(undefined, { timeoutMs: 1000 }))).field, 'deliveryId');
    assert.deepEqual(sent, ['{}', '{}']);
    for (const input of [null, [], 'x', 1]) {
      const e = await rejected(cc.openapi.logistics.getQuota(input));
      assert.equal(e.errCode, -1001, String(input));
      assert.equal(e.field, '');
      assert.equal(e.status, 0, 'refused before sending');
    }
    assert.equal(sent.length, 2);
  });

  it('what JSON.stringify cannot send as given is refused before sending, naming the field', async () => {
    const cc = createClient({ baseUrl: 'http://fn.example', keyId: 'k1', secret: SECRET, fetch: async () => assert.fail('sent') });
    const param = charge.omsLaunchExtraChargeParameter;
    const cases = [
      // A BigInt made stringify throw a bare TypeError; NaN went out as null.
      [{ ...charge, omsLaunchExtraChargeParameter: { ...param, price: 12n } }, 'omsLaunchExtraChargeParameter.price', 'expected a number, got the BigInt 12n'],
      [{ ...charge, omsLaunchExtraChargeParameter: { ...param, price: NaN } }, 'omsLaunchExtraChargeParameter.price', 'expected a finite number, got NaN'],
      [{ ...charge, omsLaunchExtraChargeParameter: { ...param, price: -Infinity } }, 'omsLaunchExtraChargeParameter.price', 'expected a finite number, got -Infinity'],
    ];
    for (const [input, field, said] of cases) {
      const err = await rejected(cc.top.ascp.launchExtraCharge(input));
      assert.ok(err instanceof CloudCallError, err);
      assert.equal(err.errCode, -1001);
      assert.equal(err.field, field);
      assert.ok(err.errMsg.startsWith(`top.ascp.launchExtraCharge:fail invalid input: ${field}: ${said}`), err.errMsg);
    }
    const box = { weight: 1, length: 1, width: 1, height: 1, quantity: 1 };
    const err = await rejected(cc.ck1.pricing.inboundBox({ warehouseId: 'US', boxes: [box, { ...box, quantity: Infinity }] }));
    assert.equal(err.field, 'boxes[1].quantity');
    const loop = { warehouseId: 'US', boxes: [] };
    loop.boxes.push(loop);
    assert.equal((await rejected(cc.ck1.pricing.inboundBox(loop))).field, 'boxes[0]');

    // What toJSON returns is judged, boxed values too, and whatever would
    // go out as null, {} or not at all.
    const self = { deliveryId: 'YTO' };
    self.bizId = { toJSON: () => self };
    for (const [bizId, said] of [
      [{ toJSON: () => 1n }, 'expected a number, got the BigInt 1n'],
      [Object(1n), 'expected a number, got the BigInt 1n'],
      [new Number(NaN), 'expected a finite number, got NaN'],
      [{ toJSON: () => NaN }, 'expected a finite number, got NaN'],
      [new Date('nope'), 'an invalid Date, which goes out as null'],
      [() => 1, 'a function cannot go out as JSON'],
      [Symbol('s'), 'a symbol cannot go out as JSON'],
      [new Map([['a', 1]]), 'Map is no plain object or array and does not go out as it is'],
      [new Set([1]), 'Set is no plain object or array and does not go out as it is'],
      [new Uint8Array([1, 2]), 'Uint8Array is no plain object or array and does not go out as it is'],
      [new Error('x'), 'Error is no plain object or array and does not go out as it is'],
      [/x/, 'RegExp is no plain object or array and does not go out as it is'],
      [{ toJSON: () => new Date(0) }, 'Date is no plain object or array and does not go out as it is'],
    ]) {
      const err = await rejected(cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId }));
      assert.ok(err instanceof CloudCallError, String(err));
      assert.equal(err.field, 'bizId');
      assert.ok(err.errMsg.includes(`invalid input: bizId: ${said}`), err.errMsg);
    }
    assert.equal((await rejected(cc.openapi.logistics.getQuota(self))).field, 'bizId');
    for (const [boxes, field] of [[[1, undefined], 'boxes[1]'], [[1, , 3], 'boxes[1]']]) { // eslint-disable-line no-sparse-arrays
      assert.equal((await rejected(cc.ck1.pricing.inboundBox({ warehouseId: 'US', boxes }))).field, field);
    }
    let deep = {};
    for (let i = 0; i < 200000; i++) deep = { a: deep };
    const deepErr = await rejected(cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: deep }));
    assert.ok(deepErr instanceof CloudCallError, String(deepErr));
    assert.equal(deepErr.errCode, -1001);
    // What goes out as written still goes: a valid Date, a toJSON's string,
    // an undefined member (left out, as omitted).
    const sent = [];
    const ok = createClient({ baseUrl: 'http://fn.example', keyId: 'k1', secret: SECRET, fetch: async (url, init) => {
      sent.push(init.body.toString());
      return new Response(JSON.stringify({ errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 1 }), { status: 200 });
    } });
    await ok.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: { toJSON: () => 'xyz' }, extra: undefined });
    // One object twice, under names that read like paths, is no cycle.
    const shared = { k: 1 };
    await ok.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: 'b', a: shared, 'a.b': shared, 'a[0]': [shared] });
    assert.deepEqual(sent, ['{"deliveryId":"YTO","bizId":"xyz"}', '{"deliveryId":"YTO","bizId":"b","a":{"k":1},"a.b":{"k":1},"a[0]":[{"k":1}]}']);
  });
});

// An outside tester: {"errCode":0,"errMsg":"...:ok"} with no quotaNum
// resolved with quotaNum undefined (Go read 0, "no balance left"), and
// "quotaNum":"210" resolved a string. A success answer missing a field its
// schema requires, or with a field of another JSON type, is -1303 naming the
// field, in the Go client's words (clients/go/cloudcall: TestSuccessAnswerIsCheckedAgainstTheSchema);
// the charge's is -1304 with its key (errCode 0: it charged).
describe('success answers are checked against the output schema', () => {
  const cases = [
    ['openapi.logistics.getQuota', { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok' }, 'quotaNum: required, missing'],
    ['openapi.logistics.getQuota', { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: '210' }, 'quotaNum: expected an integer, got a string'],
    ['openapi.logistics.getQuota', { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: null }, 'quotaNum: expected an integer, got null'],
    ['openapi.logistics.getQuota', { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 2.5 }, 'quotaNum: expected an integer, got a number'],
    ['ck1.pricing.inboundBox', { errCode: 0, errMsg: 'ck1.pricing.inboundBox:ok', services: [{ serviceCode: 'A', serviceName: 'n', success: true, message: '',
      chargeInfo: { summary: [{ currency: 'CNY' }], detail: [] } }] }, 'services[0].chargeInfo.summary[0].amount: required, missing'],
    ['ck1.pricing.inboundBox', { errCode: 0, errMsg: 'ck1.pricing.inboundBox:ok', services: {} }, 'services: expected an array, got an object'],
    ['cams.queryChatappBindWaba', { errCode: 0, errMsg: 'cams.queryChatappBindWaba:ok', requestId: 'R1', data: { id: 'W1', name: 5 } }, 'data.name: expected a string, got a number'],
  ];
  for (const [api, answer, problem] of cases) {
    it(`${api}: ${problem}`, async () => {
      const f = await fake((req, res) => json(res, 200, answer, { 'x-fc-request-id': 'rid-shape' }));
      try {
        const [ns, ...rest] = api.split('.');
        const method = rest.reduce((o, k) => o[k], f.client()[ns]);
        const err = await rejected(method({ deliveryId: 'YTO', bizId: 'xyz', warehouseId: 'US', boxes: [] }));
        assert.ok(err instanceof CloudCallError);
        assert.equal(err.errCode, ErrCode.Unreadable);
        assert.equal(err.errMsg, `${api}:fail the answer does not match the generated type: ${problem}`);
        assert.equal(err.status, 200);
        assert.equal(err.requestId, 'rid-shape');
        assert.equal(err.attempts, 1);
        assert.equal(f.seen.length, 1);
      } finally {
        await f.close();
      }
    });
  }

  it('a charge that answered errCode 0 without its result is -1304 with the key', async () => {
    const f = await fake((req, res) => json(res, 200, { errCode: 0, errMsg: 'top.ascp.launchExtraCharge:ok', requestId: 'r', idempotencyKey: 'k-shape' }));
    try {
      const err = await rejected(f.client().top.ascp.launchExtraCharge(charge, { idempotencyKey: 'k-shape' }));
      assert.equal(err.errCode, ErrCode.OutcomeUnknown);
      assert.equal(err.idempotencyKey, 'k-shape');
      assert.equal(err.errMsg, "top.ascp.launchExtraCharge:fail the function answered errCode 0 (done) in a shape this client's types do not hold (result: required, missing); reconcile with the idempotency key");
      assert.equal(f.seen.length, 1);
    } finally {
      await f.close();
    }
  });

  it('a whole answer passes, extra fields and all', async () => {
    const f = await fake((req, res) => json(res, 200, { errCode: 0, errMsg: 'cams.queryChatappBindWaba:ok', requestId: 'R1', data: { id: 'W1', later: 1 }, more: true }));
    try {
      const out = await f.client().cams.queryChatappBindWaba({});
      assert.deepEqual(out.data, { id: 'W1', later: 1 });
    } finally {
      await f.close();
    }
  });
});

// A function that allows anonymous calls (plain `make run`, or FC's
// authType: function with CLOUDCALL_ALLOW_ANONYMOUS=true) takes unsigned
// calls: createClient threw without a secret, so the README's snippet could
// not reach one (an outside tester).
describe('unsigned clients (keyId and secret both omitted)', () => {
  it('send no Authorization header, and the call succeeds', async () => {
    const f = await fake((req, res) => ok(res));
    try {
      const cc = createClient({ baseUrl: f.url });
      const r = await cc.openapi.logistics.getQuota(quota);
      assert.equal(r.quotaNum, 7);
      assert.equal(f.seen.length, 1);
      assert.equal(f.seen[0].headers.authorization, undefined);
      // Explicitly undefined is omitted too (a spread of an unset variable).
      const again = createClient({ baseUrl: f.url, keyId: undefined, secret: undefined });
      await again.openapi.logistics.getQuota(quota);
      assert.equal(f.seen[1].headers.authorization, undefined);
    } finally {
      await f.close();
    }
  });

  it('leave the Authorization header to a custom fetch (the platform\'s signature, FC authType: function)', async () => {
    const f = await fake((req, res) => ok(res));
    try {
      const platformFetch = (url, init) => fetch(url, { ...init, headers: { ...init.headers, authorization: 'ACS3-HMAC-SHA256 Credential=x' } });
      const r = await createClient({ baseUrl: f.url, fetch: platformFetch }).openapi.logistics.getQuota(quota);
      assert.equal(r.quotaNum, 7);
      assert.equal(f.seen[0].headers.authorization, 'ACS3-HMAC-SHA256 Credential=x');
    } finally {
      await f.close();
    }
  });

  it('a -1101 keeps the function\'s errMsg; the message says the client had no key', async () => {
    const errMsg = 'openapi.logistics.getQuota:fail unauthenticated: missing Authorization header: sign the request (CLOUDCALL-HMAC-SHA256)';
    const f = await fake((req, res) => json(res, 401, { errCode: -1101, errMsg }));
    try {
      const err = await rejected(createClient({ baseUrl: f.url }).openapi.logistics.getQuota(quota));
      assert.ok(err instanceof CloudCallError);
      assert.equal(err.errCode, ErrCode.Unauthenticated);
      assert.equal(err.status, 401);
      assert.equal(err.errMsg, errMsg);
      assert.equal(err.message, errMsg + ' (this client sends unsigned calls: it was made without keyId and secret; give both, a key of the functions\' CLOUDCALL_CALLER_KEYS)');
      // A signed client's -1101 is the function's errMsg alone.
      const signed = await rejected(f.client().openapi.logistics.getQuota(quota));
      assert.equal(signed.message, errMsg);
    } finally {
      await f.close();
    }
  });

  it('a half-configured client fails at creation, saying what to do', () => {
    const omit = 'or omit both keyId and secret for a function that allows anonymous calls (unsigned calls)';
    for (const [name, o, want] of [
      ['keyId without secret', { keyId: 'k1' }, `cloudcall: keyId is given without secret: give both (a key of the functions' CLOUDCALL_CALLER_KEYS), ${omit}`],
      ['secret without keyId', { secret: SECRET }, `cloudcall: secret is given without keyId: give both (a key of the functions' CLOUDCALL_CALLER_KEYS), ${omit}`],
      ['an empty secret (the old README, CLOUDCALL_KEY unset)', { keyId: 'backend', secret: '' }, `cloudcall: secret must be the key's secret (at least 16 bytes in UTF-8), ${omit}`],
      ['a short secret', { keyId: 'k1', secret: 'short' }, `cloudcall: secret must be the key's secret (at least 16 bytes in UTF-8), ${omit}`],
      ['a bad keyId', { keyId: 'bad id', secret: SECRET }, `cloudcall: keyId must be 1-64 of A-Z a-z 0-9 _ . - (the id in CLOUDCALL_CALLER_KEYS), ${omit}`],
    ]) {
      assert.throws(() => createClient({ baseUrl: 'http://x', ...o }), (err) => err instanceof TypeError && err.message === want, name);
    }
  });
});

// A wrong signal rejected with "outer.addEventListener is not a function"
// (an outside tester): it is named as every other bad option is.
describe('the signal call option', () => {
  it('is refused naming it when it is no AbortSignal, before anything is sent', async () => {
    const f = await fake((req, res) => ok(res));
    try {
      const cc = f.client();
      for (const [name, signal] of [
        ['an empty object', {}],
        ['a string', 'abort'],
        ['a number', 1],
        ['a controller, not its signal', new AbortController()],
        ['an object with aborted only', { aborted: false }],
      ]) {
        for (const call of [() => cc.openapi.logistics.getQuota(quota, { signal }), () => cc.top.ascp.launchExtraCharge(charge, { signal })]) {
          const err = await rejected(call());
          assert.ok(err instanceof TypeError, `${name}: ${err}`);
          assert.match(err.message, /^cloudcall: signal must be an AbortSignal \(AbortController's signal, AbortSignal\.timeout\(ms\)\), got /, name);
        }
      }
      assert.equal(f.seen.length, 0, 'nothing was sent');
      // No signal is no signal.
      await cc.openapi.logistics.getQuota(quota, { signal: undefined });
      await cc.openapi.logistics.getQuota(quota, { signal: null });
      assert.equal(f.seen.length, 2);
    } finally {
      await f.close();
    }
  });
});

// The flag read "idempotent": the three reads false, the charge true,
// backwards for anyone who took it as "safe to repeat" (an outside tester).
describe('functions', () => {
  it('names the function whose input takes an idempotency key: the charge only', () => {
    assert.deepEqual(functions.map((f) => [f.api, f.function, f.takesIdempotencyKey]), [
      ['openapi.logistics.getQuota', 'logistics-get-quota', false],
      ['ck1.pricing.inboundBox', 'ck1-pricing-inbound-box', false],
      ['cams.queryChatappBindWaba', 'cams-query-chatapp-bind-waba', false],
      ['top.ascp.launchExtraCharge', 'top-launch-extra-charge', true],
    ]);
    for (const f of functions) assert.equal(Object.hasOwn(f, 'idempotent'), false, f.function);
  });
});
