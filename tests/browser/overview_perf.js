// overview_perf.js — how the overview copes with a big fleet, in the real browser: the time
// from opening the page to a card for each of 1,000 devices, then the frame rate and the
// longest main-thread task while 1,000 readings a second arrive over the live stream.
// Not a pass/fail test: prints its figures (docs/DASHBOARD.md quotes them). Run from a
// build directory:
//   NODE_PATH=tests/browser/npm/node_modules CANARYD=./canaryd node ../tests/browser/overview_perf.js
'use strict';
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const DEVICES = Number(process.env.DEVICES || 1000);
const RATE = Number(process.env.RATE || 1000); // readings per second during the live phase
const SECONDS = 5;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'canary-perf-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const ready = path.join(dir, 'port');
  const d = spawn(process.env.CANARYD, ['-l', '127.0.0.1:0', '-d', path.join(dir, 'c.db'), '--ready-file', ready,
    '--set', 'devices.max_devices=100000'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 200 && !fs.existsSync(ready); i++) await sleep(50);
    await sleep(100);
    const base = 'http://127.0.0.1:' + fs.readFileSync(ready, 'utf8').trim();
    const seq = new Array(DEVICES).fill(0);
    const id = (i) => 'dev-' + String(i).padStart(4, '0');
    const post = (batch) => fetch(base + '/api/v1/ingest', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(batch) });
    const reading = (i) => ({ device: id(i), seq: ++seq[i], ts: Date.now(), values: { temperature_c: 20 + Math.random() * 5, humidity_pct: 40 + Math.random() * 10, gas_ppm: 400 + Math.round(Math.random() * 50) } });
    for (let start = 0; start < DEVICES; start += 500) {
      const batch = [];
      for (let i = start; i < Math.min(DEVICES, start + 500); i++) batch.push(reading(i));
      await post(batch);
    }
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    const t0 = Date.now();
    await page.goto(base + '/');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=device-card]').length >= n, DEVICES, { timeout: 60000, polling: 'raf' });
    const renderMs = Date.now() - t0;
    // live phase: count frames and long tasks in the page while readings stream in
    await page.evaluate(() => {
      window.__perf = { frames: 0, longest: 0, long: 0 };
      const tick = () => { window.__perf.frames++; requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
      new PerformanceObserver((l) => { for (const e of l.getEntries()) { window.__perf.long++; window.__perf.longest = Math.max(window.__perf.longest, e.duration); } }).observe({ entryTypes: ['longtask'] });
    });
    const tick = 100, per = Math.round(RATE * tick / 1000);
    const end = Date.now() + SECONDS * 1000;
    let sent = 0, k = 0;
    while (Date.now() < end) {
      const t = Date.now();
      const batch = [];
      for (let j = 0; j < per; j++) batch.push(reading(k++ % DEVICES));
      await post(batch);
      sent += batch.length;
      await sleep(Math.max(0, tick - (Date.now() - t)));
    }
    const perf = await page.evaluate(() => window.__perf);
    console.log(`devices=${DEVICES} first_render_ms=${renderMs} live: readings=${sent} in ${SECONDS} s (${Math.round(sent / SECONDS)}/s) ` +
      `frames_per_s=${(perf.frames / SECONDS).toFixed(1)} long_tasks=${perf.long} longest_task_ms=${Math.round(perf.longest)}`);
    // uPlot, as the device page uses it, with 100,000 points: from creating the chart to the
    // frame after it is drawn (the device page itself asks the server for at most 1,000)
    const chartMs = await page.evaluate(async () => {
      const n = 100000, xs = new Float64Array(n), ys = new Float64Array(n);
      for (let i = 0; i < n; i++) { xs[i] = 1.7e9 + i; ys[i] = 400 + 30 * Math.sin(i / 500) + Math.random() * 5; }
      const el = document.createElement('div');
      document.body.append(el);
      const t = performance.now();
      const u = new uPlot({ width: 1200, height: 240, scales: { x: { time: true } }, series: [{}, { stroke: 'blue' }] }, [xs, ys], el);
      await new Promise((r) => requestAnimationFrame(() => r()));
      const ms = performance.now() - t;
      u.destroy();
      el.remove();
      return ms;
    });
    console.log(`chart_100k_points_ms=${Math.round(chartMs)}`);
    await browser.close();
  } finally {
    d.kill('SIGTERM');
    await sleep(300);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
