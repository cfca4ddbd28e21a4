// Browser tests of the cloudcall console: playwright-core driving the
// system's chromium (Debian's package; no browser download). Run by
// cmd/cloudcall's TestConsoleInBrowser, which starts `cloudcall local` and
// passes CONSOLE_URL, FUNCTIONS and CHROMIUM; CONSOLE_SCREENSHOTS, when set,
// is the folder the screenshots go to (make screenshots: docs/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.CONSOLE_URL;
const FUNCTIONS = (process.env.FUNCTIONS || '').split(',').filter(Boolean);
const SHOTS = process.env.CONSOLE_SCREENSHOTS || '';
const profile = mkdtempSync(join(tmpdir(), 'cloudcall-chromium-'));
let ctx, page;
const pageErrors = [];

before(async () => {
  assert.ok(BASE, 'CONSOLE_URL is set');
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 1000 },
  });
  page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => pageErrors.push('pageerror: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push('console.error: ' + m.text()); });
  page.on('requestfailed', (r) => { if (!r.url().endsWith('/__console/api/events')) pageErrors.push('request failed: ' + r.url()); });
  await page.goto(BASE + '/');
});

after(async () => {
  await ctx?.close();
  rmSync(profile, { recursive: true, force: true });
});

const fn = (name) => page.locator(`[data-fn="${name}"]`);

async function invokeFromForm(name, edit) {
  const card = fn(name);
  if (!(await card.locator('details').evaluate((d) => d.open))) await card.locator('summary').click();
  if (edit) await edit(card);
  const rid = card.locator('[data-testid=result-request-id]');
  const before = (await rid.count()) ? await rid.textContent() : null;
  await card.locator('[data-testid=invoke-button]').click();
  await card.locator('[data-testid=result-errcode]').waitFor();
  await page.waitForFunction(([n, b]) => {
    const el = document.querySelector(`[data-fn="${n}"] [data-testid=result-request-id]`);
    return el && el.textContent !== b;
  }, [name, before]);
  return {
    requestId: await card.locator('[data-testid=result-request-id]').textContent(),
    errCode: await card.locator('[data-testid=result-errcode]').textContent(),
    response: JSON.parse(await card.locator('[data-testid=result-response]').textContent()),
  };
}

test('the console lists every function', async () => {
  assert.ok(FUNCTIONS.length >= 5, 'FUNCTIONS names the registry');
  await page.locator('#conn.ok').waitFor(); // the live stream is connected
  for (const name of FUNCTIONS) {
    await fn(name).waitFor();
    assert.equal(await fn(name).locator('.name').textContent(), name);
  }
  assert.equal(await page.locator('#fn-list [data-fn]').count(), FUNCTIONS.length);
  assert.match(await fn('quota-alert').locator('[data-testid=fn-timer]').textContent(), /quota-alert-hourly · next /);
});

test('invoke logistics-get-quota from its form: the result and its log lines', async () => {
  const card = fn('logistics-get-quota');
  if (!(await card.locator('details').evaluate((d) => d.open))) await card.locator('summary').click();
  assert.equal(await card.locator('input[data-path=deliveryId]').inputValue(), 'YTO', 'prefilled with the example');
  assert.equal(await card.locator('input[data-path=bizId]').inputValue(), 'xyz');
  const r = await invokeFromForm('logistics-get-quota');
  assert.equal(r.errCode, '0');
  assert.deepEqual(r.response, { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 210 });
  // The function's own invocation line, with this request id, arrives over SSE.
  await page.waitForFunction((id) => [...document.querySelectorAll('[data-fn="logistics-get-quota"] [data-testid=result-logs] li')]
    .some((li) => li.textContent.includes('"msg":"invocation"') && li.textContent.includes(id)), r.requestId);
  // Editing a field changes what is sent.
  const z = await invokeFromForm('logistics-get-quota', async (c) => { await c.locator('input[data-path=deliveryId]').fill('ZTO'); await c.locator('input[data-path=bizId]').fill('zero-balance'); });
  assert.deepEqual(z.response, { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 0 });
  await card.locator('input[data-path=deliveryId]').fill('YTO');
  await card.locator('input[data-path=bizId]').fill('xyz');
});

test('an invocation made with an HTTP client appears live, by its request id', async () => {
  const res = await fetch(BASE + '/logistics-get-quota', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"deliveryId":"YUNDA","bizId":"yunda-01"}' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 55 });
  const id = res.headers.get('x-fc-request-id');
  assert.ok(id, 'the trigger answers with x-fc-request-id');
  const row = page.locator(`#inv-table tr[data-request-id="${id}"]`);
  await row.waitFor();
  // The row appears as the call starts ("running") and is finished by the
  // end event, which the stream may bring after the caller has its answer
  // (under -race it did).
  await page.waitForFunction((id) => /logistics-get-quotahttp200/.test(document.querySelector(`#inv-table tr[data-request-id="${id}"]`)?.textContent ?? ''), id);
  assert.match(await row.textContent(), /logistics-get-quotahttp200/);
  await row.click();
  const detail = page.locator(`[data-testid=detail][data-request-id="${id}"]`);
  await detail.waitFor();
  assert.match(await detail.locator('[data-testid=detail-request]').textContent(), /yunda-01/);
  await page.waitForFunction((rid) => [...document.querySelectorAll('[data-testid=detail-logs] li')].some((li) => li.textContent.includes(rid)), id);
  if (SHOTS) await page.screenshot({ path: join(SHOTS, 'console-invocation.png') });
  // Replay sends the same request again, under a new request id.
  await detail.locator('[data-testid=replay]').click();
  await page.waitForFunction((rid) => { const d = document.querySelector('[data-testid=detail]'); return d && d.dataset.requestId !== rid; }, id);
  const again = await page.locator('[data-testid=detail]').getAttribute('data-request-id');
  await page.locator(`#inv-table tr[data-request-id="${again}"]`).waitFor();
  assert.match(await page.locator('[data-testid=detail-request]').textContent(), /yunda-01/);
});

test('a WeChat fault toggled on makes the next call fail with -1', async () => {
  const wechat = page.locator('[data-sandbox=wechat]');
  const toggle = wechat.locator('input[data-fault=busy]');
  await toggle.check();
  await page.waitForFunction(() => document.querySelector('[data-sandbox=wechat] input[data-fault=busy]').checked);
  const failed = await invokeFromForm('logistics-get-quota');
  assert.equal(failed.errCode, '-1');
  assert.equal(failed.response.errCode, -1);
  assert.match(failed.response.errMsg, /^openapi\.logistics\.getQuota:fail /);
  assert.match(await page.locator(`#inv-table tr[data-request-id="${failed.requestId}"] [data-testid=row-errcode]`).textContent(), /^-1$/);
  if (SHOTS) {
    await page.locator(`#inv-table tr[data-request-id="${failed.requestId}"]`).click();
    await page.locator(`[data-testid=detail][data-request-id="${failed.requestId}"]`).waitFor();
    await page.screenshot({ path: join(SHOTS, 'console-fault.png'), fullPage: true });
  }
  await toggle.uncheck();
  const ok = await invokeFromForm('logistics-get-quota');
  assert.equal(ok.errCode, '0', 'with the fault off, calls work again');
});

// setBalance edits YTO/xyz's balance in the WeChat sandbox panel and waits
// until the panel shows it. The panel re-renders when invocations stream in
// (a fired timer's, say), which can replace the input between the fill and
// the click on a loaded machine: then the edit is made again.
async function setBalance(value) {
  for (let attempt = 1; ; attempt++) {
    const input = page.locator('[data-sandbox=wechat] input[data-account="YTO/xyz"]');
    await input.fill(value);
    await input.locator('xpath=following-sibling::button').click();
    try {
      await page.waitForFunction((v) => document.querySelector('[data-sandbox=wechat] input[data-account="YTO/xyz"]').value === v, value, { timeout: 5000 });
      return;
    } catch (err) {
      if (attempt === 4) throw err;
    }
  }
}

test('a WeChat balance edited in the console is what the next call reads; fire now runs the timer', async () => {
  await setBalance('90');
  const r = await invokeFromForm('logistics-get-quota');
  assert.deepEqual(r.response, { errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 90 });
  // quota-alert's timer, fired from its card, reads the same balance.
  const before = await page.locator('#inv-table tbody tr').count();
  await fn('quota-alert').locator('[data-testid=fire-timer]').click();
  await page.waitForFunction((n) => [...document.querySelectorAll('#inv-table tbody tr')].length > n &&
    [...document.querySelectorAll('#inv-table tbody tr')].some((tr) => /quota-alerttimerok/.test(tr.textContent)), before);
  const row = page.locator('#inv-table tbody tr', { hasText: 'quota-alert' }).first();
  await row.click();
  await page.waitForFunction(() => /"balance": 90/.test(document.querySelector('[data-testid=detail-response]')?.textContent || ''));
  await setBalance('210');
});

test("a charge's ledger entry shows in the TOP sandbox", async () => {
  // The form comes from the input schema: fields the example leaves out
  // (feature, session) are there too, and required ones are marked.
  const card = fn('top-launch-extra-charge');
  if (!(await card.locator('details').evaluate((d) => d.open))) await card.locator('summary').click();
  assert.equal(await card.locator('input[data-path="omsLaunchExtraChargeParameter.feature"]').count(), 1);
  assert.equal(await card.locator('input[data-path=session]').count(), 1);
  assert.equal(await card.locator('input[data-path="omsLaunchExtraChargeParameter.price"]').getAttribute('data-required'), '1');
  const order = 'BFC-CONSOLE-' + Date.now();
  const r = await invokeFromForm('top-launch-extra-charge', async (c) => {
    await c.locator('input[data-path="omsLaunchExtraChargeParameter.wdsCoordinationOrderId"]').fill(order);
    await c.locator('input[data-path="omsLaunchExtraChargeParameter.price"]').fill('2500');
    await c.locator('input[data-path=idempotencyKey]').fill('console-' + order);
  });
  assert.equal(r.errCode, '0', JSON.stringify(r.response));
  assert.equal(r.response.result.success, true);
  const row = page.locator(`[data-sandbox=top] [data-testid=top-ledger] tr[data-order="${order}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(order + '2500'));
  assert.equal(await page.locator(`[data-sandbox=top] [data-testid=top-ledger] tr[data-order="${order}"]`).count(), 1, 'one charge, one entry');
});

// The detail shows a request as it was sent: re-parsed, a refused
// {"deliveryId":"YTO","deliveryId":"ZTO"} read as a valid request (an
// outside tester). And the page keeps what the server keeps, its last 500
// invocations: it kept every one, 121 MB of a tab after 1,200 calls.
test('a request shows as sent, and the table keeps the last 500', async () => {
  const sent = '{"deliveryId":"YTO","deliveryId":"ZTO","bizId":"xyz"}';
  const res = await fetch(BASE + '/logistics-get-quota', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: sent });
  assert.equal(res.status, 400);
  const id = res.headers.get('x-fc-request-id');
  const row = page.locator(`#inv-table tr[data-request-id="${id}"]`);
  await row.waitFor();
  await row.click();
  const shown = await page.locator(`[data-testid=detail][data-request-id="${id}"] [data-testid=detail-request]`).textContent();
  assert.equal(shown, '{\n  "deliveryId": "YTO",\n  "deliveryId": "ZTO",\n  "bizId": "xyz"\n}');
  for (let i = 0; i < 510; i += 10) {
    await Promise.all(Array.from({ length: 10 }, () => fetch(BASE + '/logistics-get-quota', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"deliveryId":"YTO","bizId":"xyz"}' }).then((r) => r.arrayBuffer())));
  }
  await page.waitForFunction((id) => !document.querySelector(`#inv-table tr[data-request-id="${id}"]`), id);
  assert.equal(await page.locator('#inv-table tbody tr').count(), 500);
  assert.equal(await page.locator(`[data-testid=detail][data-request-id="${id}"]`).count(), 0, 'its detail went with it');
});

test('no page errors', async () => {
  if (SHOTS) {
    await page.locator('[data-fn="logistics-get-quota"] [data-testid=result-logs] li').first().waitFor();
    await page.screenshot({ path: join(SHOTS, 'console.png'), fullPage: true });
  }
  assert.deepEqual(pageErrors, []);
});
