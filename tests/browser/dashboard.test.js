// dashboard.test.js — the dashboard in a real browser (headless Debian chromium driven by
// playwright-core) against this build's canaryd and a simulated fleet.
//
// Checks: the device list renders; a live value changes within 1 s of a new reading; a gas
// leak (gas_ppm 6000) shows the critical banner; acknowledging it in the banner changes the
// alert's state in the API; the history chart draws points; the alerts page shows the
// timeline; the security page lists a forged reading's event; a device on MQTT (a real
// Mosquitto) shows 'mqtt online' on its card and 'mqtt offline' once its process is killed
// (the broker's will, pushed through the stream); no console errors. Screenshots
// (overview, device page, alerts page, security page, phone, dark)
// go to $OUT_DIR. Exits non-zero on the first failure, after stopping what it started.
'use strict';
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const CANARYD = process.env.CANARYD;
const CLI = process.env.CANARY_CLI;
const OUT = process.env.OUT_DIR || path.join(process.cwd(), 'out');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MOSQUITTO = process.env.MOSQUITTO || '/usr/sbin/mosquitto';

const children = [];
let browser = null;
let proxyRef = null;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'canary-browser-'));

function log(...a) { console.log('[browser]', ...a); }
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

function start(cmd, args, name) {
  const out = fs.openSync(path.join(dir, name + '.log'), 'w');
  const p = spawn(cmd, args, { stdio: ['ignore', out, out] });
  children.push(p);
  return p;
}

// A TCP proxy between the browser and canaryd that can cut the network for a while.
function startProxy(targetPort) {
  const sockets = new Set();
  let server = null;
  const listen = (port) => new Promise((resolve) => {
    server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
  const proxy = {
    port: 0,
    async blip(ms, during) {
      server.close(); // refuse new connections (its callback waits for the open ones)
      for (const s of sockets) s.destroy();
      await during();
      await sleep(ms);
      await listen(proxy.port);
    },
    close() { for (const s of sockets) s.destroy(); server.close(); },
  };
  return listen(0).then((port) => { proxy.port = port; return proxy; });
}

// A free TCP port on 127.0.0.1 (for Mosquitto, which cannot report the one it chose).
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const ready = path.join(dir, 'port');
  // a real broker for the MQTT device (anonymous, loopback only)
  const brokerPort = await freePort();
  fs.writeFileSync(path.join(dir, 'mosquitto.conf'), `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  start(MOSQUITTO, ['-c', path.join(dir, 'mosquitto.conf')], 'mosquitto');
  await waitFor(() => new Promise((resolve) => {
    const c = net.connect(brokerPort, '127.0.0.1', () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false));
  }), 10000, 'mosquitto to listen');
  // the simulated fleet sends unsigned readings (canaryd's default refuses them)
  start(CANARYD, ['-l', '127.0.0.1:0', '-d', path.join(dir, 'canary.db'), '--ready-file', ready, '--set', 'security.unsigned=accept',
    '--set', 'mqtt.enabled=true', '--set', `mqtt.port=${brokerPort}`], 'canaryd');
  const port = await waitFor(async () => fs.existsSync(ready) && fs.readFileSync(ready, 'utf8').trim(), 10000, 'canaryd to start');
  const direct = `http://127.0.0.1:${port}`;
  const proxy = await startProxy(Number(port));
  proxyRef = proxy;
  const base = `http://127.0.0.1:${proxy.port}`; // the browser's way to canaryd
  log('canaryd at', direct, 'the browser through', base);
  start(CLI, ['simulate', '--devices', '6', '--rate', '2', '--duration', '0', '--url', direct, '--register', '--quiet', '--prefix', 'lab'], 'simulate');
  // one device on MQTT, in a process of its own so that it can die
  const mqttDevice = start(CLI, ['simulate', '--transport', 'mqtt', '--broker', `127.0.0.1:${brokerPort}`, '--devices', '1', '--rate', '1', '--duration', '0',
    '--url', direct, '--register', '--quiet', '--prefix', 'mq'], 'simulate-mqtt');

  const api = async (p, body) => {
    const r = await fetch(direct + p, body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
  };
  let seq = 1;
  const post = (values) => api('/api/v1/ingest', { device: 'probe-1', seq: seq++, ts: Date.now(), values });

  // probe-1: 15 minutes of history (a reading every 5 s, gas with a short excursion past the
  // warning level that rises for half a minute and clears slowly), so the device page has
  // something to draw. Its values, and the live ones below, move as a real room's do, so
  // the tamper checks keep the device trusted (a 3 degree jump in a second would be doubted)
  const now = Date.now();
  const history = [];
  for (let i = 0; i < 180; i++) {
    const ts = now - (180 - i) * 5000;
    const bump = i < 118 ? 0 : i < 124 ? 750 * (i - 117) / 6 : 750 * Math.exp(-(i - 123) / 8);
    const gas = 420 + 25 * Math.sin(i / 9) + (i % 7) + bump;
    history.push({ device: 'probe-1', seq: seq++, ts, values: { gas_ppm: Math.round(gas), temperature_c: Math.round((24 + 2 * Math.sin(i / 30)) * 10) / 10 } });
  }
  check((await fetch(direct + '/api/v1/ingest', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(history) })).status === 200, '15 minutes of history for probe-1 are stored');
  await fetch(direct + '/api/v1/devices/probe-1', { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'Test kitchen', location: 'Lab, bench 2', kind: 'kitchen' }) });

  // the fleet has registered (names come with --register)
  await waitFor(async () => (await api('/api/v1/devices')).body.devices.filter((d) => d.name).length >= 7, 15000, 'the simulated fleet');

  browser = await chromium.launch({ executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, colorScheme: 'light' });
  const page = await context.newPage();
  const errors = [];
  let blipping = false; // the network errors the blip itself causes are expected
  page.on('console', (m) => { if (m.type() === 'error' && !(blipping && /net::ERR_/.test(m.text()))) errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));

  // 1. the device list renders
  await page.goto(base + '/');
  await page.waitForSelector('[data-testid=device-card]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-card]').length >= 7, null, { timeout: 10000 });
  const names = await page.$$eval('[data-testid=device-card] .name', (els) => els.map((e) => e.textContent));
  check(names.length >= 7 && names.every((n) => n.length > 0), `device list renders (${names.length} cards: ${names.slice(0, 3).join(', ')}, ...)`);

  // the MQTT device's link: online on its card, offline once its process is killed (no clean
  // disconnect: the broker publishes its will, canaryd pushes the change)
  const mqttPill = '[data-device="mq-0001"] [data-testid=device-link]';
  const pillText = (want) => page.waitForFunction(([sel, w]) => { const e = document.querySelector(sel); return e && !e.hidden && e.textContent === w; }, [mqttPill, want], { timeout: 10000 });
  await pillText('mqtt online');
  check(true, "the MQTT device's card says 'mqtt online'");
  mqttDevice.kill('SIGKILL');
  const killed = Date.now();
  await pillText('mqtt offline');
  check(true, `'mqtt offline' on its card ${Date.now() - killed} ms after its process was killed`);

  // the device filter narrows the list (by name, room or site)
  await page.fill('#device-filter', 'lab-');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-card]:not([hidden])').length === 6, null, { timeout: 3000 });
  await page.fill('#device-filter', 'kitchen');
  await page.waitForFunction(() => { const shown = [...document.querySelectorAll('[data-testid=device-card]:not([hidden])')]; return shown.length >= 2 && shown.length < document.querySelectorAll('[data-testid=device-card]').length && shown.every((c) => /kitchen/i.test(c.textContent)); }, null, { timeout: 3000 });
  check(true, 'the device filter narrows the list: "lab-" shows the 6 HTTP devices, "kitchen" only kitchens');
  await page.fill('#device-filter', '');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-card][hidden]').length === 0, null, { timeout: 3000 });

  // 2. a live value changes within 1 s of a new reading
  await post({ temperature_c: 23.5, gas_ppm: 420 });
  const probeValue = '[data-device="probe-1"] [data-metric="temperature_c"] .v';
  await page.waitForFunction((sel) => { const e = document.querySelector(sel); return e && e.textContent === '23.5'; }, probeValue, { timeout: 5000 });
  const watch = page.waitForFunction((sel) => { const e = document.querySelector(sel); return e && e.textContent === '23.6'; }, probeValue, { timeout: 5000, polling: 'raf' });
  const t0 = Date.now();
  const r = await post({ temperature_c: 23.6, gas_ppm: 425 });
  check(r.status === 200, 'the new reading is accepted');
  await watch;
  const took = Date.now() - t0;
  check(took < 1000, `a live value changed ${took} ms after the reading was posted (under 1 s)`);

  // a network blip: the proxy cuts every connection and refuses new ones for a while; a
  // reading stored meanwhile shows once the stream is back, replayed from Last-Event-ID (the
  // page does not reload its state: no GET /api/v1/latest)
  let reloaded = false;
  page.on('request', (q) => { if (q.url().includes('/api/v1/latest')) reloaded = true; });
  blipping = true;
  await proxy.blip(1500, async () => {
    await page.waitForFunction(() => document.querySelector('#live').dataset.state !== 'live', null, { timeout: 5000 });
    await post({ temperature_c: 23.7, gas_ppm: 430 });
  });
  await page.waitForFunction((sel) => { const e = document.querySelector(sel); return e && e.textContent === '23.7'; }, probeValue, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector('#live').dataset.state === 'live', null, { timeout: 5000 });
  blipping = false;
  check(!reloaded, 'after a network blip the reading sent meanwhile shows, caught up through Last-Event-ID');

  // 3. a gas leak shows the critical banner (gas rising over three seconds)
  await post({ temperature_c: 23.7, gas_ppm: 1800 });
  await sleep(1000);
  await post({ temperature_c: 23.8, gas_ppm: 3900 });
  await sleep(1000);
  await post({ temperature_c: 23.8, gas_ppm: 6000 });
  await page.waitForSelector('#banner:not([hidden])', { timeout: 3000 });
  const banner = await page.textContent('#banner');
  check(/CRITICAL/.test(banner) && /probe-1/.test(banner), 'the critical banner shows: ' + banner.replace(/\s+/g, ' ').trim().slice(0, 120));
  await page.waitForFunction(() => { const c = document.querySelector('[data-device="probe-1"]'); return c && c.dataset.state === 'critical'; }, null, { timeout: 3000 });
  check(true, 'the device card is highlighted as critical');
  // The banner then says what to do: the alert's explanation, as its SMS said it.
  await page.waitForFunction(() => /Ventilate/.test(document.querySelector('#banner-message').textContent), null, { timeout: 3000 });
  check(true, 'the banner carries the explanation: ' + (await page.textContent('#banner-message')).trim().slice(0, 120));
  await sleep(2200); // the maxima table catches up at most every 2 s
  await page.screenshot({ path: path.join(OUT, 'overview.png'), fullPage: true });

  // 4. acknowledging from the banner changes the alert's state in the API
  const alertId = Number(await page.getAttribute('#banner', 'data-alert'));
  await page.click('#banner-ack');
  await page.waitForSelector('#banner', { state: 'hidden', timeout: 3000 });
  const a = await waitFor(async () => { const x = (await api('/api/v1/alerts/' + alertId)).body; return x.state === 'acknowledged' && x; }, 3000, 'the alert to be acknowledged');
  check(a.state === 'acknowledged' && a.acknowledged_by === 'operator', `alert ${alertId} is acknowledged in the API (by ${a.acknowledged_by}) and the banner is gone`);

  // 5. the device page's history chart draws points
  await page.goto(base + '/#/device/probe-1/15m');
  await page.waitForSelector('[data-chart="gas_ppm"] canvas', { timeout: 10000 });
  await page.waitForFunction(() => [...document.querySelectorAll('.chart')].every((c) => Number(c.dataset.points) >= 50), null, { timeout: 10000 });
  const points = await page.$$eval('.chart', (cs) => cs.map((c) => Number(c.dataset.points)));
  // and the line is on the canvas: pixels of the series' colour (the accent blue)
  await sleep(500);
  const drawn = await page.evaluate(() => {
    const cv = document.querySelector('[data-chart="gas_ppm"] canvas');
    const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i + 2] > px[i] + 100 && px[i + 3] > 100) n++;
    return n;
  });
  await page.screenshot({ path: path.join(OUT, 'device.png'), fullPage: true });
  check(points.every((p) => p >= 50) && drawn > 200, `history charts draw points (${points.join(', ')} buckets per chart, ${drawn} pixels of the line in the gas chart)`);
  // the alert is marked and the thresholds are known to the chart
  check(await page.$$eval('[data-device-alerts] .alert-row, #device-alerts .alert-row', (r) => r.length) >= 1, 'the device page lists its alert');

  // 6. the alerts page: the timeline of the acknowledged alert
  await page.goto(base + '/#/alerts/' + alertId);
  await page.waitForSelector(`[data-alert-detail="${alertId}"] .timeline li`, { timeout: 5000 });
  const timeline = await page.$$eval('.timeline li', (ls) => ls.map((l) => l.className));
  check(timeline.includes('opened') && timeline.includes('acknowledged'), 'the alerts page shows the timeline: ' + timeline.join(', '));
  // a comment, then resolving with one: both land in the API and on the timeline
  await page.fill('#alert-comment', 'valve closed, windows open');
  await page.click('#alert-comment-add');
  await page.waitForSelector('.timeline li.commented', { timeout: 5000 });
  await page.fill('#alert-comment', 'leak fixed by the fitter');
  await page.click('#alert-resolve');
  await page.waitForSelector('#alert-state.state-resolved', { timeout: 5000 });
  const done = (await api('/api/v1/alerts/' + alertId)).body;
  const notes = done.events.map((e) => `${e.action}:${e.note}`);
  check(done.state === 'resolved' && notes.includes('commented:valve closed, windows open') && notes.includes('resolved:leak fixed by the fitter'),
    'a comment and resolving with a comment from the alerts page reach the API');
  await page.waitForSelector('#toast', { state: 'hidden', timeout: 6000 });
  await page.screenshot({ path: path.join(OUT, 'alerts.png'), fullPage: true });

  // 7. the security page: a forged reading (alg "none") is refused and shows as an event,
  // the kind filter narrows the list, the counters count it
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const forged = b64u({ alg: 'none', kid: 'probe-1' }) + '.' + b64u({ device: 'probe-1', seq: 999999, ts: Date.now(), values: { gas_ppm: 1 } }) + '.' + 'A'.repeat(43);
  const fr = await fetch(direct + '/api/v1/ingest', { method: 'POST', headers: { 'Content-Type': 'application/jose' }, body: forged });
  check(fr.status === 401 && (await fr.json()).error.code === 'alg_none', 'a forged reading with alg "none" is refused (401 alg_none)');
  await page.goto(base + '/#/security');
  await page.waitForSelector('[data-testid=events] tbody tr');
  await page.fill('input[aria-label=kind]', 'alg_none');
  await page.press('input[aria-label=kind]', 'Enter');
  await page.waitForFunction(() => { const k = [...document.querySelectorAll('[data-testid=events] tbody tr td:nth-child(3)')].map((td) => td.textContent); return k.length >= 1 && k.every((x) => x === 'alg_none'); }, null, { timeout: 5000 });
  const rejected = await page.$eval('#sec-totals', (el) => [...el.querySelectorAll('.total')].find((t) => t.querySelector('.l').textContent === 'rejected').querySelector('.n').textContent);
  check(Number(rejected) >= 1, `the security page lists the alg_none event (kind filter) and counts ${rejected} rejected`);
  await page.screenshot({ path: path.join(OUT, 'security.png'), fullPage: true });

  // a phone, and the dark theme on a wall display
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, colorScheme: 'light', isMobile: true });
  const pp = await phone.newPage();
  pp.on('pageerror', (e) => errors.push(e.message));
  await post({ temperature_c: 23.9, gas_ppm: 6200 }); // still critical, but already acknowledged
  await pp.goto(base + '/');
  await pp.waitForSelector('[data-testid=device-card]');
  await sleep(800);
  await pp.screenshot({ path: path.join(OUT, 'phone.png') });
  await phone.close();
  const wall = await browser.newContext({ viewport: { width: 1920, height: 1080 }, colorScheme: 'dark' });
  const wp = await wall.newPage();
  wp.on('pageerror', (e) => errors.push(e.message));
  await wp.goto(base + '/');
  await wp.waitForSelector('[data-testid=device-card]');
  await sleep(800);
  await wp.screenshot({ path: path.join(OUT, 'wall-dark.png') });
  await wall.close();

  // the scripted device behaved like a real one: its data is not doubted
  const trust = (await api('/api/v1/devices/probe-1')).body.trust || {};
  check(trust.state === 'trusted', `probe-1 stays trusted through history, blip and leak (${trust.state})`);

  // 8. no console errors
  check(errors.length === 0, 'no console errors' + (errors.length ? ': ' + errors.join(' | ') : ''));
  await context.close();
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  if (proxyRef) proxyRef.close();
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
  console.error('[browser]', e.message);
  for (const f of ['canaryd.log', 'simulate.log']) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) console.error(`--- ${f} (last lines)\n` + fs.readFileSync(p, 'utf8').split('\n').slice(-15).join('\n'));
  }
  await cleanup();
  process.exit(1);
});
