// login.test.js — the dashboard's login and roles in a real browser (headless Debian chromium
// driven by playwright-core) against this build's canaryd with access control on
// (docs/ACCESS.md).
//
// Checks: the login page shows when canaryd answers 401; a wrong password is refused with a
// message and no session; a viewer logs in, sees their name and role in the header, and has
// no acknowledge control (and the API refuses the viewer's acknowledgement with 403 even with
// the CSRF token); logout returns to the login page and ends the session; an operator logs in
// and acknowledges the critical alert from the banner, signed with their own name; when the
// admin disables her, her open page's live stream ends and the page shows the login form by
// itself. Exits non-zero on the first failure, after stopping what it started.
'use strict';
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const CANARYD = process.env.CANARYD;
const OUT = process.env.OUT_DIR || path.join(process.cwd(), 'out');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ADMIN_TOKEN = 'login-test-admin-token-0123456789';

const children = [];
let browser = null;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'canary-login-'));

function log(...a) { console.log('[login]', ...a); }
function check(cond, what) {
  if (!cond) throw new Error('FAILED: ' + what);
  log('ok -', what);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(50);
  }
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const ready = path.join(dir, 'port');
  const out = fs.openSync(path.join(dir, 'canaryd.log'), 'w');
  children.push(spawn(CANARYD, ['-l', '127.0.0.1:0', '-d', path.join(dir, 'canary.db'), '--ready-file', ready,
    '--set', 'security.unsigned=accept'],
  { stdio: ['ignore', out, out], env: Object.assign({}, process.env, { CANARY_API_ADMIN_TOKEN: ADMIN_TOKEN }) }));
  const port = await waitFor(async () => fs.existsSync(ready) && fs.readFileSync(ready, 'utf8').trim(), 10000, 'canaryd to start');
  const base = `http://127.0.0.1:${port}`;
  const admin = async (method, p, body) => {
    const r = await fetch(base + p, { method, headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + ADMIN_TOKEN }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };
  check((await admin('POST', '/api/v1/users', { name: 'vera', role: 'viewer', password: 'vera-viewer-pass' })).status === 201, 'a viewer is created with the admin token');
  check((await admin('POST', '/api/v1/users', { name: 'olga', role: 'operator', password: 'olga-operator-pass' })).status === 201, 'an operator is created');
  // A critical gas alert to acknowledge (ingest needs no user: devices authenticate themselves).
  let seq = 1;
  for (let i = 0; i < 5; i++) {
    await fetch(base + '/api/v1/ingest', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ device: 'probe-1', seq: seq++, ts: Date.now(), values: { gas_ppm: 6000 } }) });
    await sleep(100);
  }
  const alert = await waitFor(async () => {
    const r = await admin('GET', '/api/v1/alerts?state=open');
    return r.body.alerts && r.body.alerts.find((a) => a.severity === 'critical');
  }, 10000, 'a critical alert');
  log('critical alert', alert.id);

  browser = await chromium.launch({ executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  // 401s are the point of this test: the browser logs each as a failed resource.
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[13]|status of 429/.test(m.text())) errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));

  // 1. the login page, and a wrong password
  await page.goto(base + '/');
  await page.waitForSelector('#login-form', { timeout: 10000 });
  check(await page.isHidden('#who'), 'the login page shows when canaryd answers 401, nobody in the header');
  await page.screenshot({ path: path.join(OUT, 'login.png') });
  await page.fill('#login-user', 'vera');
  await page.fill('#login-password', 'not-her-password');
  await page.click('#login-submit');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.length > 0, null, { timeout: 10000 });
  const msg = await page.textContent('#login-error');
  check(/wrong user name or password/.test(msg), `a wrong password is refused ("${msg}")`);
  check(!(await context.cookies()).some((c) => c.name === 'canary_session'), 'no session cookie after a failed login');

  // 2. the viewer logs in: name and role in the header, no acknowledge control
  await page.fill('#login-password', 'vera-viewer-pass');
  await page.click('#login-submit');
  await page.waitForSelector('#who:not([hidden])', { timeout: 10000 });
  check((await page.textContent('#who-name')) === 'vera' && (await page.textContent('#who-role')) === 'viewer', 'the header shows vera, viewer');
  const cookie = (await context.cookies()).find((c) => c.name === 'canary_session');
  check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
  check(await page.evaluate(() => !document.cookie.includes('canary_session')), 'page scripts cannot read the session cookie');
  await page.waitForSelector('#banner:not([hidden])', { timeout: 10000 });
  check(!(await page.isVisible('#banner-ack')), 'the critical banner shows, without an Acknowledge button for a viewer');
  await page.goto(base + '/#/alerts/' + alert.id);
  await page.waitForSelector('#alert-comment-add', { state: 'attached', timeout: 10000 });
  check(!(await page.isVisible('#alert-ack')) && !(await page.isVisible('#alert-resolve')) && !(await page.isVisible('#alert-comment')), 'the alert page has no Acknowledge, Resolve or comment box for a viewer');
  const forced = await page.evaluate(async (id) => {
    const s = await (await fetch('/api/v1/session')).json();
    const r = await fetch(`/api/v1/alerts/${id}/ack`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token }, body: '{}' });
    return { status: r.status, body: await r.json() };
  }, alert.id);
  check(forced.status === 403 && forced.body.error.required_role === 'operator', 'canaryd refuses a viewer\'s acknowledgement with 403 naming the operator role');
  await page.screenshot({ path: path.join(OUT, 'login-viewer.png') });

  // 3. logout
  await page.click('#logout');
  await page.waitForSelector('#login-form', { timeout: 10000 });
  const after = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
  check(after === 401, 'logout returns to the login page and the session is over');

  // 4. the operator acknowledges from the banner
  await page.fill('#login-user', 'olga');
  await page.fill('#login-password', 'olga-operator-pass');
  await page.click('#login-submit');
  await page.waitForSelector('#who:not([hidden])', { timeout: 10000 });
  check((await page.textContent('#who-role')) === 'operator', 'the header shows the operator role');
  await page.goto(base + '/#/alerts/' + alert.id);
  await page.waitForSelector('#alert-ack', { state: 'visible', timeout: 10000 });
  check(await page.isVisible('#alert-comment') && !(await page.isVisible('#alert-by')), 'an operator has the alert controls, without the "as" name field (canaryd signs with the login)');
  await page.waitForSelector('#banner-ack', { state: 'visible', timeout: 10000 });
  await page.click('#banner-ack');
  const acked = await waitFor(async () => {
    const a = (await admin('GET', '/api/v1/alerts/' + alert.id)).body;
    const one = a.alert || a;
    return one.state === 'acknowledged' && one;
  }, 10000, 'the acknowledgement');
  check(acked.acknowledged_by === 'olga', `the operator acknowledged it from the banner, signed "${acked.acknowledged_by}"`);

  // 5. the admin disables olga: her open page's live stream ends ('ended') and the page shows
  // the login form by itself, without a click or a reload.
  await page.goto(base + '/');
  await page.waitForFunction(() => document.querySelector('#live') && document.querySelector('#live').dataset.state === 'live', null, { timeout: 10000 });
  check((await admin('PATCH', '/api/v1/users/olga', { disabled: true })).status === 200, 'the admin disables olga');
  const t0 = Date.now();
  await page.waitForSelector('#login-form', { timeout: 10000 });
  // Under the stream's reconnect delay (2 s): the 'ended' event did it, not a failed reconnect.
  check(Date.now() - t0 < 1800, `the page showed the login form ${Date.now() - t0} ms after olga was disabled`);
  await page.screenshot({ path: path.join(OUT, 'login-stream-ended.png') });

  check(errors.length === 0, 'no console errors' + (errors.length ? ': ' + errors.join(' | ') : ''));
  await context.close();
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  for (const p of children.reverse()) {
    if (p.exitCode === null) {
      p.kill('SIGTERM');
      await new Promise((r) => { const t = setTimeout(() => { p.kill('SIGKILL'); r(); }, 5000); p.on('exit', () => { clearTimeout(t); r(); }); });
    }
  }
}

main().then(async () => {
  await cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
  log('PASSED; screenshots in', OUT);
  process.exit(0);
}, async (e) => {
  console.error('[login]', e.message);
  const p = path.join(dir, 'canaryd.log');
  if (fs.existsSync(p)) console.error('--- canaryd.log (last lines)\n' + fs.readFileSync(p, 'utf8').split('\n').slice(-15).join('\n'));
  await cleanup();
  process.exit(1);
});
