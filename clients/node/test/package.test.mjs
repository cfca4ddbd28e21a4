// The published shape: `npm pack` → install into an empty project → works
// from ESM and from CommonJS; its types pass `tsc --strict --noEmit` on a
// typed example and fail on a misspelled field (pinned typescript).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { pkgDir, have, CI, tsc, esbuild } from './helpers.mjs';

const hasNpm = have('npm');
if (!hasNpm && CI) throw new Error('npm is missing: CI=true needs it for the package tests');

describe('npm pack', { skip: !hasNpm && 'npm is missing' }, () => {
  let project;
  let tarball;
  let server;
  let url;

  before(async () => {
    project = mkdtempSync(join(tmpdir(), 'cloudcall-pack-'));
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', project], { cwd: pkgDir, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    tarball = { path: join(project, info.filename), files: info.files.map((f) => f.path).sort() };
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'empty-project', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball.path], { cwd: project, stdio: 'pipe' });
    // A fake function that checks the request's shape and answers an envelope.
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const signed = /^CLOUDCALL-HMAC-SHA256 KeyId=pack,Timestamp=\d+,Nonce=\w+,Signature=[0-9a-f]{64}$/.test(req.headers.authorization || '');
        if (!signed) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ errCode: -1101, errMsg: 'openapi.logistics.getQuota:fail unauthenticated' }));
          return;
        }
        const input = JSON.parse(body);
        if (input.bizId === '') {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ errCode: -1001, errMsg: 'openapi.logistics.getQuota:fail bizId: required', field: 'bizId' }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errCode: 0, errMsg: 'openapi.logistics.getQuota:ok', quotaNum: 210 }));
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${server.address().port}`;
  });

  after(async () => {
    await new Promise((r) => (server ? server.close(r) : r()));
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it('holds only the runtime files and declares no dependencies', () => {
    assert.deepEqual(tarball.files, ['LICENSE', 'README.md', 'api.cjs', 'index.cjs', 'index.d.mts', 'index.d.ts', 'index.mjs', 'package.json']);
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules/@cloudcall/client/package.json'), 'utf8'));
    assert.equal(pkg.dependencies, undefined);
    assert.equal(pkg.engines.node, '>=18');
  });

  const program = (load) => `${load}
const cc = createClient({ baseUrl: process.env.URL, keyId: 'pack', secret: 'pack-secret-0000000000' });
const r = await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: 'xyz' });
let err;
try { await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: '' }); } catch (e) { err = e; }
console.log(JSON.stringify({ quotaNum: r.quotaNum, isError: err instanceof CloudCallError, errCode: err.errCode, field: err.field }));`;

  for (const [name, file, src] of [
    ['ESM (import)', 'esm.mjs', program("import { createClient, CloudCallError } from '@cloudcall/client';")],
    ['CommonJS (require)', 'cjs.cjs', `const { createClient, CloudCallError } = require('@cloudcall/client');\n(async () => {${program('')}\n})().catch((e) => { console.error(e); process.exit(1); });`],
  ]) {
    it(`works from ${name}`, async () => {
      writeFileSync(join(project, file), src);
      // Asynchronously: the fake function answers from this process.
      const { stdout: out } = await promisify(execFile)(process.execPath, [file], { cwd: project, env: { ...process.env, URL: url }, encoding: 'utf8' });
      assert.deepEqual(JSON.parse(out), { quotaNum: 210, isError: true, errCode: -1001, field: 'bizId' });
    });
  }

  it('installs from the repository directory too (the README\'s npm install /path/to/cloudcall/clients/node)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudcall-dir-'));
    try {
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'dir-project', version: '1.0.0', private: true }));
      execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', pkgDir], { cwd: dir, stdio: 'pipe' });
      writeFileSync(join(dir, 'esm.mjs'), program("import { createClient, CloudCallError } from '@cloudcall/client';"));
      const { stdout } = await promisify(execFile)(process.execPath, ['esm.mjs'], { cwd: dir, env: { ...process.env, URL: url }, encoding: 'utf8' });
      assert.deepEqual(JSON.parse(stdout), { quotaNum: 210, isError: true, errCode: -1001, field: 'bizId' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // esbuild turns the CommonJS core into part of an ES module; a require()
  // of a Node built-in there became a stand-in that threw "Dynamic require
  // of node:crypto is not supported" when the bundle started (an outside
  // tester's Lambda bundle).
  for (const format of ['esm', 'cjs']) {
    it(`works bundled by esbuild (--format=${format})`, async () => {
      const r = esbuild();
      if (r.error) {
        if (CI) throw new Error(r.error);
        return;
      }
      writeFileSync(join(project, 'app.mjs'), program("import { createClient, CloudCallError } from '@cloudcall/client';"));
      const out = join(project, `bundle-${format}.${format === 'esm' ? 'mjs' : 'cjs'}`);
      const src = format === 'esm' ? 'app.mjs' : 'app-cjs.cjs';
      if (format === 'cjs') {
        writeFileSync(join(project, src), `const { createClient, CloudCallError } = require('@cloudcall/client');\n(async () => {${program('')}\n})().catch((e) => { console.error(e); process.exit(1); });`);
      }
      execFileSync(r.bin, [src, '--bundle', '--platform=node', `--format=${format}`, `--outfile=${out}`, '--log-level=error'], { cwd: project, stdio: 'pipe' });
      const { stdout } = await promisify(execFile)(process.execPath, [out], { cwd: project, env: { ...process.env, URL: url }, encoding: 'utf8' });
      assert.deepEqual(JSON.parse(stdout), { quotaNum: 210, isError: true, errCode: -1001, field: 'bizId' });
      if (format === 'cjs') {
        // A Node without process.getBuiltinModule (18, 20 before 20.16): the
        // CommonJS bundle takes the require() path (the README's advice).
        const old = await promisify(execFile)(process.execPath, ['--import', 'data:text/javascript,delete process.getBuiltinModule', out], { cwd: project, env: { ...process.env, URL: url }, encoding: 'utf8' });
        assert.deepEqual(JSON.parse(old.stdout), { quotaNum: 210, isError: true, errCode: -1001, field: 'bizId' });
      }
    });
  }

  it('ESM and CommonJS share one CloudCallError class', () => {
    writeFileSync(join(project, 'both.mjs'), `import { createRequire } from 'node:module';
import * as esm from '@cloudcall/client';
const cjs = createRequire(import.meta.url)('@cloudcall/client');
import def from '@cloudcall/client';
console.log(esm.CloudCallError === cjs.CloudCallError && esm.createClient === cjs.createClient && def.createClient === cjs.default.createClient);`);
    assert.equal(execFileSync(process.execPath, ['both.mjs'], { cwd: project, encoding: 'utf8' }).trim(), 'true');
  });

  describe('types (tsc --strict --noEmit, pinned typescript)', () => {
    let bin;
    before(() => {
      const r = tsc();
      if (r.error && CI) throw new Error(r.error);
      bin = r.bin;
    });

    const check = (files, options = {}) => {
      const dir = join(project, 'types');
      execFileSync('mkdir', ['-p', dir]);
      const cfg = JSON.parse(readFileSync(join(pkgDir, 'test/types/tsconfig.json'), 'utf8'));
      for (const f of files) copyFileSync(join(pkgDir, 'test/types', f), join(dir, f));
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ ...cfg, compilerOptions: { ...cfg.compilerOptions, ...options }, files }));
      // "type": "module" is not set: .mts and .cts pick ESM and CommonJS resolution themselves.
      return spawnSync(process.execPath, [bin, '-p', join(dir, 'tsconfig.json')], { cwd: dir, encoding: 'utf8' });
    };
    // failsOnce: file does not type-check, for exactly one error, which matches want.
    const failsOnce = (file, want) => {
      const r = check([file]);
      assert.notEqual(r.status, 0);
      const errors = r.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
      assert.equal(errors.length, 1, r.stdout);
      assert.match(errors[0], want);
    };

    it('passes on the typed examples (ESM and CommonJS)', (t) => {
      if (!bin) return t.skip('typescript could not be installed (offline?)');
      const r = check(['ok.mts', 'ok.cts']);
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });

    it('declares the error\'s cause for a target below ES2022', (t) => {
      if (!bin) return t.skip('typescript could not be installed (offline?)');
      const r = check(['cause.mts'], { target: 'ES2020', lib: ['ES2020', 'DOM'] });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });

    it('fails on a misspelled input field, naming it', (t) => {
      if (!bin) return t.skip('typescript could not be installed (offline?)');
      failsOnce('misspelled.mts', /misspelled\.mts\(5,\d+\): error TS\d+: .*'bizID'.*'bizId'/);
    });

    it('fails on options that say where no function is (neither baseUrl nor endpoints)', (t) => {
      if (!bin) return t.skip('typescript could not be installed (offline?)');
      failsOnce('no-endpoint.mts', /no-endpoint\.mts\(4,\d+\): error TS\d+: .*not assignable to parameter of type 'ClientOptions'/);
    });

    it('fails on a keyId without its secret (both, or neither for unsigned calls)', (t) => {
      if (!bin) return t.skip('typescript could not be installed (offline?)');
      failsOnce('half-key.mts', /half-key\.mts\(4,\d+\): error TS\d+: .*not assignable to parameter of type 'ClientOptions'/);
    });

    it('fails on a misspelled result field, naming it', (t) => {
      if (!bin) return t.skip('typescript could not be installed (offline?)');
      failsOnce('misspelled-output.mts', /misspelled-output\.mts\(6,\d+\): error TS\d+: Property 'quotaNumber' does not exist.*'quotaNum'/);
    });
  });
});
