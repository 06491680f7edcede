// dashboard_perf.js — the dashboard's performance in the real browser, for bench/dashboard.sh.
//
// Starts its own canaryd (CANARYD) with DEVICES devices, opens the overview in headless
// Chromium (/usr/bin/chromium, playwright-core from NODE_PATH) and prints one line of
// key=value figures:
//   first_render_ms   from page.goto() to a card drawn for every device
//   live_*            while RATE readings/s arrive over the live stream for SECONDS seconds
//                     (RATE=0: the same page, idle): frames/s counted with requestAnimationFrame,
//                     the longest gap between two frames, how many gaps exceeded 50 ms (a
//                     visible stutter), the longest main-thread task
//   chart_ms          uPlot as the device page uses it, POINTS points, from creating the chart
//                     to the frame after it is drawn (median of 3)
// Not pass/fail: bench/dashboard.sh runs it with the figures of the issue and with small
// peers (10 devices, no updates, 1,000 points) and prints the table of docs/BENCHMARKS.md.
'use strict';
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const DEVICES = Number(process.env.DEVICES || 1000);
const RATE = Number(process.env.RATE || 1000); // readings per second during the live phase
const SECONDS = Number(process.env.LIVE_SECONDS || 5);
const POINTS = Number(process.env.POINTS || 100000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'canary-perf-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const ready = path.join(dir, 'port');
  const d = spawn(process.env.CANARYD, ['-l', '127.0.0.1:0', '-d', path.join(dir, 'c.db'), '--ready-file', ready,
    '--log-level', 'warn', '--set', 'devices.max_devices=100000', '--set', 'security.unsigned=accept'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 200 && !fs.existsSync(ready); i++) await sleep(50);
    await sleep(100);
    const base = 'http://127.0.0.1:' + fs.readFileSync(ready, 'utf8').trim();
    const seq = new Array(DEVICES).fill(0);
    const id = (i) => 'dev-' + String(i).padStart(4, '0');
    const post = async (batch) => {
      const r = await fetch(base + '/api/v1/ingest', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(batch) });
      if (r.status !== 200) throw new Error('ingest answered ' + r.status + ': ' + (await r.text()));
    };
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
    await sleep(500); // let the first sparklines and the stats poll settle
    await page.evaluate(() => {
      window.__perf = { frames: 0, last: 0, gap: 0, slow: 0, longest: 0, long: 0 };
      const tick = (t) => {
        const p = window.__perf;
        if (p.last) { p.gap = Math.max(p.gap, t - p.last); p.slow += t - p.last > 50; }
        p.last = t;
        p.frames++;
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
      new PerformanceObserver((l) => { for (const e of l.getEntries()) { window.__perf.long++; window.__perf.longest = Math.max(window.__perf.longest, e.duration); } }).observe({ entryTypes: ['longtask'] });
    });
    const tick = 100, per = Math.round(RATE * tick / 1000);
    const end = Date.now() + SECONDS * 1000;
    let sent = 0, k = 0;
    while (Date.now() < end) {
      const t = Date.now();
      if (per > 0) {
        const batch = [];
        for (let j = 0; j < per; j++) batch.push(reading(k++ % DEVICES));
        await post(batch);
        sent += batch.length;
      }
      await sleep(Math.max(0, tick - (Date.now() - t)));
    }
    const perf = await page.evaluate(() => window.__perf);
    const chartMs = [];
    for (let run = 0; run < 3; run++) {
      chartMs.push(await page.evaluate(async (n) => {
        const xs = new Float64Array(n), ys = new Float64Array(n);
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
      }, POINTS));
    }
    chartMs.sort((a, b) => a - b);
    console.log(`devices=${DEVICES} first_render_ms=${renderMs} live_rate=${Math.round(sent / SECONDS)} ` +
      `live_fps=${(perf.frames / SECONDS).toFixed(1)} live_longest_frame_ms=${Math.round(perf.gap)} live_frames_over_50ms=${perf.slow} ` +
      `live_long_tasks=${perf.long} live_longest_task_ms=${Math.round(perf.longest)} points=${POINTS} chart_ms=${chartMs[1].toFixed(1)}`);
    await browser.close();
  } finally {
    d.kill('SIGTERM');
    await sleep(300);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
