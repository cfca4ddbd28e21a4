// Test helpers: the repository root, tools (go, npm, pinned typescript), and
// `cloudcall local --caller-keys` running the real function binaries.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

export const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = resolve(pkgDir, '..', '..');
export const CI = process.env.CI === 'true';

// The pinned compiler of the type tests (.ci/run installs the same).
export const TYPESCRIPT = 'typescript@5.9.3';
export const toolsDir = process.env.CLOUDCALL_NODE_TOOLS || join(pkgDir, '.tools');

export function have(cmd, args = ['--version']) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Skips (locally) or fails (CI=true) when a tool is missing. Returns a skip reason or undefined. */
export function need(t, what, ok) {
  if (ok) return false;
  const msg = `${what} is missing`;
  if (CI) throw new Error(`${msg} (CI=true requires it; .ci/run installs it)`);
  t.skip(msg);
  return true;
}

// The pinned bundler of the bundle test: esbuild is what Lambda and FC users
// most often bundle Node functions with.
export const ESBUILD = 'esbuild@0.28.2';

/** tsc from the pinned typescript in toolsDir, installing it there when absent. */
export function tsc() {
  return tool(TYPESCRIPT, join('typescript', 'bin', 'tsc'));
}

/** esbuild from the pinned package in toolsDir, installing it there when absent. */
export function esbuild() {
  return tool(ESBUILD, join('esbuild', 'bin', 'esbuild'));
}

// Both pins in one install: an install of one with --no-save removes the other.
function tool(pkg, path) {
  const bin = join(toolsDir, 'node_modules', path);
  if (!existsSync(bin)) {
    mkdirSync(toolsDir, { recursive: true });
    try {
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', toolsDir, TYPESCRIPT, ESBUILD], { stdio: 'pipe' });
    } catch (err) {
      return { error: `could not install ${pkg} into ${toolsDir}: ${err.stderr || err.message}` };
    }
  }
  return { bin };
}

export const SECRET = 'node-client-test-secret-0001';
export const KEY_ID = 'backend';

/**
 * Starts `cloudcall local --caller-keys` on free ports with the real
 * function binaries and the vendor sandboxes (callerKeys: false, plain
 * `cloudcall local`: anonymous calls allowed). Returns { baseUrl, sandbox(vendor), stop }.
 */
export async function startLocal({ platform = 'fc', callerKeys = true } = {}) {
  const work = mkdtempSync(join(tmpdir(), 'cloudcall-node-'));
  let bin = process.env.CLOUDCALL_BIN;
  if (!bin) {
    bin = join(work, 'cloudcall');
    execFileSync('go', ['build', '-o', bin, './cmd/cloudcall'], { cwd: repoRoot, stdio: 'inherit' });
  }
  const child = spawn(bin, ['local', '--addr', '127.0.0.1:0', '--sandbox-addr', '127.0.0.1:0', '--timers', 'off',
    '--platform', platform, '--bin', join(work, 'bin'), ...(callerKeys ? ['--caller-keys', `${KEY_ID}:${SECRET}`] : [])], {
    cwd: repoRoot, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const sandboxes = {};
  const baseUrl = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('cloudcall local did not start within 180 s:\n' + out)), 180000);
    const onData = (d) => {
      out += d;
      for (const m of out.matchAll(/^sandbox (\w+)\s+(http:\/\/\S+)/gm)) sandboxes[m[1]] = m[2];
      const m = out.match(/cloudcall local on (http:\/\/\S+)/);
      if (m && /Ctrl-C stops everything/.test(out)) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`cloudcall local exited (${code}):\n${out}`));
    });
  });
  child.removeAllListeners('exit');
  let stopping = false;
  child.on('exit', (code, signal) => {
    out += `\n[cloudcall local exited: code ${code}, signal ${signal}]\n`;
    // Dying mid-run fails every later call; say why where the failures are read.
    if (!stopping) console.error(`cloudcall local exited during the tests (code ${code}, signal ${signal}):\n` + out.split('\n').slice(-80).join('\n'));
  });
  return {
    baseUrl,
    sandbox: (vendor) => sandboxes[vendor],
    log: () => out,
    async stop() {
      stopping = true;
      try {
        process.kill(-child.pid, 'SIGINT');
      } catch {}
      await new Promise((r) => {
        const t = setTimeout(() => {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {}
          r();
        }, 5000);
        child.on('exit', () => {
          clearTimeout(t);
          r();
        });
        if (child.exitCode !== null) r();
      });
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/**
 * A proxy in front of a base URL that answers the first `count` requests of
 * each path with 429 (Retry-After: retryAfter and a -1201 envelope), then
 * forwards. It records every request's path, body and Authorization header.
 */
export async function throttlingProxy(target, { count = 1, retryAfter = 1 } = {}) {
  const seen = [];
  const throttled = new Map();
  const srv = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    seen.push({ path: req.url, body, authorization: req.headers.authorization });
    const n = throttled.get(req.url) || 0;
    if (n < count) {
      throttled.set(req.url, n + 1);
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(retryAfter) });
      res.end(JSON.stringify({ errCode: -1201, errMsg: 'proxy:fail throttled', retryAfter }));
      return;
    }
    const up = await fetch(target + req.url, { method: req.method, headers: { 'content-type': 'application/json', ...(req.headers.authorization !== undefined && { authorization: req.headers.authorization }) }, body });
    const headers = Object.fromEntries([...up.headers].filter(([k]) => !['content-length', 'transfer-encoding', 'connection'].includes(k)));
    res.writeHead(up.status, headers);
    res.end(Buffer.from(await up.arrayBuffer()));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}`, seen, close: () => new Promise((r) => srv.close(r)) };
}

export async function ledger(topSandbox, order) {
  const res = await fetch(`${topSandbox}/__sandbox/top/charges?order=${encodeURIComponent(order)}`);
  return (await res.json()).charges ?? [];
}
