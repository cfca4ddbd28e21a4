// @cloudcall/client against `cloudcall local --caller-keys`: the real
// function binaries behind signature checks, against the vendor sandboxes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, CloudCallError } from '../index.mjs';
import { startLocal, throttlingProxy, ledger, have, CI, SECRET, KEY_ID, repoRoot, pkgDir } from './helpers.mjs';

const hasGo = have('go', ['version']);

// The Quickstart's snippet ends at the call (its comment says 210); the
// client section's prints it. Pasted as written, the Quickstart's lacked
// its import (an outside tester).
const readmeSnippets = [['node-first-call', ''], ['node-quickstart', '\nconsole.log(quotaNum);\n']];

// runSnippet runs the README's snippet marked marker against baseUrl, with
// CLOUDCALL_KEY set to key (unset when key is undefined).
async function runSnippet(marker, tail, baseUrl, key) {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const m = readme.match(new RegExp(`<!-- readme:${marker} -->\n\`\`\`js\n([\\s\\S]*?)\`\`\``));
  assert.ok(m, `README.md has the snippet marked ${marker}`);
  // Inside the package directory '@cloudcall/client' resolves to the package itself.
  const file = join(pkgDir, 'test', `.readme-${marker}.mjs`);
  writeFileSync(file, m[1].replace('http://127.0.0.1:9000', baseUrl) + tail);
  const env = { ...process.env, CLOUDCALL_KEY: key };
  if (key === undefined) delete env.CLOUDCALL_KEY;
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [file], { env });
    assert.equal(stdout, '210\n');
  } finally {
    rmSync(file, { force: true });
  }
}
if (!hasGo && CI) throw new Error('go is missing: CI=true needs it to build cloudcall local');

// Per function: the call, a working input, and a bad one with the field the
// function must name.
const cases = [
  {
    fn: 'logistics-get-quota', call: (cc) => cc.openapi.logistics.getQuota,
    good: { deliveryId: 'YTO', bizId: 'xyz' }, check: (r) => assert.equal(r.quotaNum, 210),
    bad: { deliveryId: 5, bizId: 'xyz' }, field: 'deliveryId',
  },
  {
    fn: 'ck1-pricing-inbound-box', call: (cc) => cc.ck1.pricing.inboundBox,
    good: { warehouseId: 'US', boxes: [{ weight: 1200, length: 30, width: 20, height: 15, quantity: 2 }] },
    check: (r) => assert.deepEqual(r.services.map((s) => [s.serviceCode, s.totalCharge]), [['USSEA', { currency: 'CNY', amount: 96 }], ['USAIR', { currency: 'USD', amount: 31.57 }]]),
    bad: { warehouseId: 'US', boxes: [{ weight: 'heavy', length: 30, width: 20, height: 15, quantity: 2 }] }, field: 'boxes[0].weight',
  },
  {
    fn: 'cams-query-chatapp-bind-waba', call: (cc) => cc.cams.queryChatappBindWaba,
    good: { custSpaceId: '293483949493' }, check: (r) => assert.equal(r.data.businessName, 'Alibaba'),
    bad: { custSpaceId: 293483949493 }, field: 'custSpaceId',
  },
  {
    fn: 'top-launch-extra-charge', call: (cc) => cc.top.ascp.launchExtraCharge,
    good: { omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC-NODE-1', price: 12345, type: 2, desc: 'second visit' } },
    check: (r) => {
      assert.equal(r.result.success, true);
      assert.match(r.idempotencyKey, /^auto:[0-9a-f]{64}$/);
    },
    bad: { omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC-NODE-2', price: 12.5, type: 2 } }, field: 'omsLaunchExtraChargeParameter.price',
  },
];

describe('@cloudcall/client against cloudcall local --caller-keys', { skip: !hasGo && 'go is missing (needed to build cloudcall local)' }, () => {
  let local;
  let cc;
  before(async () => {
    local = await startLocal();
    cc = createClient({ baseUrl: local.baseUrl, keyId: KEY_ID, secret: SECRET, timeoutMs: 20000 });
  });
  after(async () => {
    if (process.env.CLOUDCALL_TEST_LOG) console.log(local?.log().split('\n').slice(-40).join('\n'));
    await local?.stop();
  });

  for (const c of cases) {
    describe(c.fn, () => {
      it('succeeds with the envelope', async () => {
        const r = await c.call(cc)(c.good);
        assert.equal(r.errCode, 0);
        assert.match(r.errMsg, /:ok$/);
        c.check(r);
      });

      it('rejects bad input with errCode -1001 and the field, nothing sent to the vendor', async () => {
        const err = await c.call(cc)(c.bad).then(() => assert.fail('resolved'), (e) => e);
        assert.ok(err instanceof CloudCallError, String(err));
        assert.equal(err.errCode, -1001);
        assert.equal(err.field, c.field);
        assert.equal(err.status, 400);
        assert.equal(err.function, c.fn);
        assert.match(err.requestId, /^[0-9a-f-]{36}$/, 'the platform request id of the invocation');
      });

      it('rejects a wrong secret with errCode -1101', async () => {
        const wrong = createClient({ baseUrl: local.baseUrl, keyId: KEY_ID, secret: 'not-the-secret-0000000000' });
        const err = await c.call(wrong)(c.good).then(() => assert.fail('resolved'), (e) => e);
        assert.equal(err.errCode, -1101);
        assert.equal(err.status, 401);
        assert.match(err.errMsg, /signature does not match/);
      });

      it('waits out a 429 with Retry-After and sends the same bytes again, signed anew', async () => {
        const proxy = await throttlingProxy(local.baseUrl, { count: 1, retryAfter: 1 });
        try {
          const viaProxy = createClient({ baseUrl: proxy.url, keyId: KEY_ID, secret: SECRET, timeoutMs: 20000 });
          const input = c.fn === 'top-launch-extra-charge'
            ? { omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC-NODE-429', price: 500, type: 1 } }
            : c.good;
          const r = await c.call(viaProxy)(input);
          assert.equal(r.errCode, 0);
          const mine = proxy.seen.filter((s) => s.path === '/' + c.fn);
          assert.equal(mine.length, 2, 'one 429, one retry');
          assert.deepEqual(mine[0].body, mine[1].body, 'byte-identical body');
          assert.notEqual(mine[0].authorization, mine[1].authorization, 'a new nonce and signature');
          if (c.fn === 'top-launch-extra-charge') assert.equal((await ledger(local.sandbox('top'), 'BFC-NODE-429')).length, 1);
        } finally {
          await proxy.close();
        }
      });
    });
  }

  it('a 429 whose Retry-After is longer than the client waits rejects at once with retryAfter (TOP ban, 42 s)', async () => {
    const err = await cc.top.ascp.launchExtraCharge({ omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC-ERR-7', price: 100, type: 2 } })
      .then(() => assert.fail('resolved'), (e) => e);
    assert.equal(err.errCode, -1201);
    assert.equal(err.status, 429);
    assert.equal(err.retryAfter, 42);
    assert.equal(err.attempts, 1);
    assert.equal(err.upstream.code, '7');
    assert.match(err.idempotencyKey, /^auto:/, 'the key in force is on the error too');
    assert.equal((await ledger(local.sandbox('top'), 'BFC-ERR-7')).length, 0);
  });

  it('a charge called twice is one ledger entry and the same answer twice', async () => {
    const input = { omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC-NODE-TWICE', price: 2500, type: 2, desc: '二次上门' } };
    const first = await cc.top.ascp.launchExtraCharge(input);
    const second = await cc.top.ascp.launchExtraCharge(input);
    assert.deepEqual(second, first);
    assert.equal((await ledger(local.sandbox('top'), 'BFC-NODE-TWICE')).length, 1);
  });

  it('a charge with the caller\'s idempotency key: echoed, one entry, a different request under it is refused', async () => {
    const input = { omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC-NODE-KEY', price: 700, type: 3 } };
    const first = await cc.top.ascp.launchExtraCharge(input, { idempotencyKey: 'order-42-visit-2' });
    assert.equal(first.idempotencyKey, 'order-42-visit-2');
    const again = await cc.top.ascp.launchExtraCharge(input, { idempotencyKey: 'order-42-visit-2' });
    assert.deepEqual(again, first);
    const other = { omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC-NODE-KEY', price: 701, type: 3 } };
    const err = await cc.top.ascp.launchExtraCharge(other, { idempotencyKey: 'order-42-visit-2' }).then(() => assert.fail('resolved'), (e) => e);
    assert.equal(err.errCode, -1401);
    assert.equal(err.status, 409);
    assert.equal(err.idempotencyKey, 'order-42-visit-2');
    assert.equal((await ledger(local.sandbox('top'), 'BFC-NODE-KEY')).length, 1);
  });

  it('signs the query of an endpoint URL the way the function checks it', async () => {
    const withQuery = createClient({
      endpoints: { 'logistics-get-quota': `${local.baseUrl}/logistics-get-quota?tenant=east%20wing&b=2&a=%E6%97%A5+1` },
      keyId: KEY_ID, secret: SECRET,
    });
    const r = await withQuery.openapi.logistics.getQuota({ deliveryId: 'ZTO', bizId: 'zero-balance' });
    assert.equal(r.quotaNum, 0, 'a zero balance is present');
  });

  for (const [marker, tail] of readmeSnippets) {
    it(`the README's ${marker} snippet works as written (CLOUDCALL_KEY set: signed)`, () => runSnippet(marker, tail, local.baseUrl, SECRET));
  }

  it('a WeChat refusal keeps WeChat\'s errcode', async () => {
    const err = await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: 'wrong-password' }).then(() => assert.fail('resolved'), (e) => e);
    assert.equal(err.errCode, 9300531);
    assert.equal(err.status, 502);
  });
});

// Plain `cloudcall local` (as `make run`) allows anonymous calls: the README's
// snippet with CLOUDCALL_KEY unset threw in createClient (secret: ''), and a
// client could not be made without a key (an outside tester).
describe('@cloudcall/client unsigned, against plain cloudcall local (anonymous calls allowed)', { skip: !hasGo && 'go is missing (needed to build cloudcall local)' }, () => {
  let local;
  before(async () => {
    local = await startLocal({ callerKeys: false });
  });
  after(async () => {
    await local?.stop();
  });

  it('an unsigned client succeeds and sends no Authorization header', async () => {
    const proxy = await throttlingProxy(local.baseUrl, { count: 0 });
    try {
      const cc = createClient({ baseUrl: proxy.url, timeoutMs: 20000 });
      const r = await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: 'xyz' });
      assert.equal(r.quotaNum, 210);
      assert.deepEqual(proxy.seen.map((s) => [s.path, s.authorization]), [['/logistics-get-quota', undefined]]);
    } finally {
      await proxy.close();
    }
  });

  for (const [marker, tail] of readmeSnippets) {
    it(`the README's ${marker} snippet works as written (CLOUDCALL_KEY unset: unsigned)`, () => runSnippet(marker, tail, local.baseUrl, undefined));
  }
});
