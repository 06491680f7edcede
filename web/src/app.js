/* app.js — the dashboard: what a control-room operator watches all day.
 *
 * It uses only canaryd's public REST API (docs/API.md) and its live stream (GET
 * /api/v1/stream, Server-Sent Events): the first load reads devices, latest values, alerts,
 * maxima and the metric catalogue; the stream then pushes every committed reading and alert
 * change, and the page applies them once per animation frame (however many arrive). After a
 * network blip EventSource reconnects with Last-Event-ID and canaryd replays what was missed;
 * when it cannot (a `reset` event), the page reloads its state from the REST API.
 *
 * Views (hash routes, so canaryd serves one page): #/ overview, #/device/<id>, #/alerts,
 * #/alerts/<id>, #/security and #/models (ready for those features). No framework: the DOM
 * is built with h() and updated in place. */
(function () {
  'use strict';

  // ---------- small helpers ----------
  const $ = (sel, root) => (root || document).querySelector(sel);
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];
  const sevRank = (s) => SEVERITIES.indexOf(s);
  const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString([], { hour12: false }) : '—');
  const fmtClock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
  function fmtAgo(ms) {
    if (!ms) return 'never';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }
  function fmtValue(v, metric) {
    if (v === null || v === undefined || Number.isNaN(v)) return '—';
    const m = state.metrics.get(metric);
    if (m && m.binary) return v ? 'YES' : 'no';
    const a = Math.abs(v);
    const digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 1 : 2;
    return v.toLocaleString([], { maximumFractionDigits: digits });
  }
  const unitOf = (metric) => (state.metrics.get(metric) || {}).unit || '';
  const labelOf = (metric) => (state.metrics.get(metric) || {}).label || metric;

  function toast(text) {
    const t = $('#toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 3000);
  }

  // ---------- API ----------
  // With access control on (docs/ACCESS.md) the session cookie authenticates every call and a
  // state-changing one carries the session's CSRF token; a 401 shows the login page. Without
  // users (no access control) a state-changing call answered 401 asks for the admin token once
  // (api.admin_token), as before.
  async function api(path, opts) {
    const o = Object.assign({ headers: {} }, opts || {});
    const token = sessionStorage.getItem('canary.token');
    if (token && !session.authRequired) o.headers.Authorization = 'Bearer ' + token;
    if (o.json !== undefined) {
      o.method = o.method || 'POST';
      o.headers['Content-Type'] = 'application/json';
      o.body = JSON.stringify(o.json);
    }
    if (session.csrf && o.method && o.method !== 'GET') o.headers['X-CSRF-Token'] = session.csrf;
    const r = await fetch(path, o);
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (r.status === 401 && session.authRequired) showLogin(body && body.error ? body.error.message : '');
    else if (r.status === 401 && !o.retried) {
      const t = window.prompt('canaryd needs the admin token for this action:');
      if (t) {
        sessionStorage.setItem('canary.token', t);
        return api(path, Object.assign({}, opts, { retried: true }));
      }
    }
    if (!r.ok) {
      const msg = body && body.error ? body.error.message : 'HTTP ' + r.status;
      const err = new Error(msg);
      err.status = r.status;
      err.body = body;
      throw err;
    }
    return body;
  }
  async function apiAll(path, key, nextKey, param) {
    let out = [];
    let next = null;
    for (let i = 0; i < 50; i++) {
      const sep = path.includes('?') ? '&' : '?';
      const body = await api(next === null ? path : path + sep + param + '=' + encodeURIComponent(next));
      out = out.concat(body[key] || []);
      next = body[nextKey];
      if (next === null || next === undefined) break;
    }
    return out;
  }

  // ---------- access: who is logged in (GET /api/v1/session), login, logout ----------
  // The role decides which controls show (style.css hides operator controls from viewers
  // through body[data-role]); canaryd checks every call anyway.
  const session = { user: null, role: null, csrf: null, authRequired: false };
  async function loadSession() {
    const r = await fetch('/api/v1/session', { headers: {} });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (r.status === 401) {
      session.authRequired = true;
      showLogin('');
      return false;
    }
    if (!r.ok || !body) throw new Error(body && body.error ? body.error.message : 'HTTP ' + r.status);
    Object.assign(session, { user: body.user, role: body.role, csrf: body.csrf_token || null, authRequired: body.auth_required });
    renderWho();
    return true;
  }
  function renderWho() {
    const who = $('#who');
    document.body.dataset.role = session.role || (session.authRequired ? 'none' : 'open');
    if (!session.user) { who.hidden = true; return; }
    who.hidden = false;
    $('#who-name').textContent = session.user;
    $('#who-role').textContent = session.role;
    $('#logout').hidden = !session.csrf; // a session, not a token
  }
  function showLogin(message) {
    if (document.body.dataset.login === 'shown') {
      if (message) $('#login-error').textContent = message;
      return;
    }
    document.body.dataset.login = 'shown';
    if (source) source.close();
    $('#banner').hidden = true;
    const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
    const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const error = h('p', { id: 'login-error', class: 'login-error', role: 'alert', text: message || '' });
    const submit = h('button', { class: 'btn', type: 'submit', id: 'login-submit', text: 'Log in' });
    const form = h('form', { class: 'panel login', id: 'login-form' },
      h('h1', { text: 'Log in to canary' }),
      h('label', { text: 'User' }, user), h('label', { text: 'Password' }, pass), error, submit);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      error.textContent = '';
      try {
        let r = null;
        for (let i = 0; i < 4; i++) { // 503 login_busy: other logins are being hashed right now
          if (i > 0) await new Promise((res) => setTimeout(res, 1000));
          r = await fetch('/api/v1/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: user.value, password: pass.value }) });
          if (r.status !== 503) break;
        }
        let body = null;
        try { body = await r.json(); } catch (e) { body = null; }
        if (r.ok) { pass.value = ''; location.reload(); return; }
        error.textContent = body && body.error ? body.error.message : 'HTTP ' + r.status;
        if (r.status === 429) error.textContent += ` (Retry-After: ${r.headers.get('Retry-After')} s)`;
      } catch (e) { error.textContent = 'Cannot reach canaryd: ' + e.message; }
      pass.value = '';
      submit.disabled = false;
      pass.focus();
    });
    $('#view').replaceChildren(form);
    user.focus();
  }
  async function logout() {
    try { await api('/api/v1/session', { method: 'DELETE' }); } catch (e) { /* the cookie is gone anyway */ }
    location.reload();
  }
  $('#logout').addEventListener('click', logout);

  // ---------- state ----------
  const SPARK_POINTS = 60;
  const state = {
    metrics: new Map(), // name -> catalogue entry (label, unit, limits, binary)
    devices: new Map(), // id -> {info, latest: {metric: {value, ts_ms, score, flags}}, spark: {metric: []}, lastSeen}
    alerts: new Map(), // id -> alert (open and acknowledged, plus those seen live)
    maxima: new Map(), // device + NUL + metric -> {max, max_ts_ms, min, ...}
    stats: null,
    staleAfterS: 60,
    offlineAfterS: 300,
    serverOffsetMs: 0,
    dirty: new Set(), // device ids whose card needs an update
    alertsDirty: false,
    route: null,
    filter: { text: '', status: '' }, // the overview's device filter
    ackedBanner: new Set(),
  };
  const operator = () => session.user || localStorage.getItem('canary.operator') || 'operator'; // canaryd signs with the logged-in user

  function device(id) {
    let d = state.devices.get(id);
    if (!d) {
      d = { info: { id, name: '', location: '', kind: '', status: 'never', last_seen_ms: 0 },
            latest: {}, spark: {}, lastSeen: 0 };
      state.devices.set(id, d);
    }
    return d;
  }

  // As GET /api/v1/devices: a device whose MQTT status says offline or sleeping is offline.
  function deviceStatus(d) {
    if (d.info.connection === 'offline' || d.info.connection === 'sleeping') return 'offline';
    if (!d.lastSeen) return 'never';
    const age = (Date.now() + state.serverOffsetMs - d.lastSeen) / 1000;
    if (age >= state.offlineAfterS) return 'offline';
    if (age >= state.staleAfterS) return 'stale';
    return 'online';
  }

  // normal / anomaly / the severity of its worst unresolved alert
  function deviceState(d) {
    let worst = -1;
    for (const a of state.alerts.values()) {
      if (a.device === d.info.id && a.state !== 'resolved') worst = Math.max(worst, sevRank(a.severity));
    }
    if (worst >= 0) return SEVERITIES[worst];
    for (const v of Object.values(d.latest)) {
      if (v.flags && (v.flags.includes('anomaly') || v.flags.includes('model') || v.flags.includes('warn') || v.flags.includes('critical'))) return 'anomaly';
    }
    return 'normal';
  }

  function applyReading(r) {
    const d = device(r.device);
    for (const [m, v] of Object.entries(r.values)) {
      const prev = d.latest[m];
      if (prev && prev.ts_ms > r.ts_ms) continue;
      d.latest[m] = { value: v.value, ts_ms: r.ts_ms, score: v.score, flags: v.flags || [] };
      const mk = r.device + '\u0000' + m;
      const mx = state.maxima.get(mk);
      if (mx && v.value > mx.max) { mx.max = v.value; mx.max_ts_ms = r.ts_ms; state.maximaDirty = true; }
      if (mx && v.value < mx.min) { mx.min = v.value; mx.min_ts_ms = r.ts_ms; state.maximaDirty = true; }
      if (!mx) { state.maxima.set(mk, { device: r.device, metric: m, unit: unitOf(m), max: v.value, max_ts_ms: r.ts_ms, min: v.value, min_ts_ms: r.ts_ms, count: 1 }); state.maximaDirty = true; }
      const s = d.spark[m] || (d.spark[m] = []);
      s.push(v.value);
      if (s.length > SPARK_POINTS) s.shift();
    }
    d.lastSeen = Math.max(d.lastSeen, r.recv_ms || r.ts_ms);
    if (!d.info.created_ms && !d.fetching) { // a device the page has not seen: its name, location
      d.fetching = true;
      api('/api/v1/devices/' + encodeURIComponent(r.device)).then((info) => {
        d.info = Object.assign(info, { readings: d.info.readings });
        state.dirty.add(r.device);
        schedule();
      }).catch(() => { d.fetching = false; });
    }
    d.info.readings = (d.info.readings || 0) + 1;
    state.dirty.add(r.device);
  }

  function applyAlert(a) {
    state.alerts.set(a.id, a);
    state.alertsDirty = true;
    state.dirty.add(a.device);
  }

  // ---------- loading ----------
  async function loadAll() {
    const [metrics, devices, latest, open, acked] = await Promise.all([
      api('/api/v1/metrics'),
      apiAll('/api/v1/devices?limit=1000', 'devices', 'next', 'after'),
      api('/api/v1/latest'),
      api('/api/v1/alerts?state=open&limit=500'),
      api('/api/v1/alerts?state=acknowledged&limit=500'),
    ]);
    for (const m of metrics.metrics) state.metrics.set(m.name, m);
    for (const info of devices) {
      const d = device(info.id);
      d.info = info;
      d.lastSeen = Math.max(d.lastSeen, info.last_seen_ms || 0);
    }
    for (const l of latest.latest || latest.devices || []) {
      const d = device(l.device);
      for (const [m, v] of Object.entries(l.metrics || {})) {
        if (!d.latest[m] || d.latest[m].ts_ms <= v.ts_ms) d.latest[m] = { value: v.value, ts_ms: v.ts_ms, score: v.score, flags: v.flags || [] };
      }
    }
    state.alerts.clear();
    for (const a of open.alerts.concat(acked.alerts)) state.alerts.set(a.id, a);
    for (const id of state.devices.keys()) state.dirty.add(id);
    state.alertsDirty = true;
    loadMaxima();
    loadStats();
    loadSparks();
  }
  async function loadMaxima() {
    try {
      const list = (await api('/api/v1/maxima')).maxima || [];
      state.maxima = new Map(list.map((m) => [m.device + '\u0000' + m.metric, m]));
    } catch (e) { /* keep what we have */ }
    if (state.route && state.route.name === 'overview') renderMaxima();
  }
  async function loadStats() {
    try { state.stats = await api('/api/v1/stats'); } catch (e) { /* shown as unknown */ }
    if (state.route && state.route.name === 'overview') renderTotals();
  }
  // Sparklines start with the last 15 minutes of each device's metrics (downsampled on the
  // server), for the first 60 devices; the others fill from the live stream.
  async function loadSparks() {
    const ids = [...state.devices.keys()].slice(0, 60);
    await Promise.all(ids.map(async (id) => {
      const d = state.devices.get(id);
      await Promise.all(Object.keys(d.latest).map(async (m) => {
        try {
          const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/readings?metric=${m}&from=-15m&points=${SPARK_POINTS}`);
          const live = d.spark[m] || [];
          d.spark[m] = r.points.filter((p) => p.avg !== null).map((p) => p.avg).concat(live).slice(-SPARK_POINTS);
          state.dirty.add(id);
        } catch (e) { /* the live stream fills it */ }
      }));
    }));
    schedule();
  }

  // ---------- live stream ----------
  let source = null;
  let reloadOnHello = false; // a new EventSource has no Last-Event-ID: reload what it missed
  function connect() {
    const live = $('#live');
    source = new EventSource('/api/v1/stream');
    source.addEventListener('open', () => { live.dataset.state = 'live'; live.textContent = 'live'; });
    source.addEventListener('error', () => {
      live.dataset.state = source.readyState === EventSource.CLOSED ? 'offline' : 'connecting';
      live.textContent = source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting';
      if (source.readyState === EventSource.CLOSED) {
        if (session.authRequired) loadSession().catch(() => {}); // ended session: the login page
        reloadOnHello = true;
        setTimeout(connect, 3000);
      }
    });
    source.addEventListener('hello', (e) => {
      const m = JSON.parse(e.data);
      state.staleAfterS = m.stale_after_s;
      state.offlineAfterS = m.offline_after_s;
      state.serverOffsetMs = m.server_ms - Date.now();
      if (reloadOnHello) {
        reloadOnHello = false;
        loadAll().then(schedule);
      }
    });
    source.addEventListener('readings', (e) => {
      for (const r of JSON.parse(e.data).readings) applyReading(r);
      schedule();
    });
    source.addEventListener('alert', (e) => {
      const m = JSON.parse(e.data);
      applyAlert(m.alert);
      if (state.route && state.route.name === 'alerts' && state.route.id === m.alert.id) loadAlertDetail(m.alert.id);
      schedule();
    });
    source.addEventListener('devices', (e) => { // status changes (online, stale, offline) and MQTT link changes
      for (const x of JSON.parse(e.data).devices) {
        const d = device(x.device);
        if (x.connection) {
          d.info.connection = x.connection;
          d.info.connection_since_ms = x.connection_since_ms;
        }
        if (x.last_seen_ms) d.lastSeen = Math.max(d.lastSeen, x.last_seen_ms);
        state.dirty.add(x.device);
      }
      if (state.route && state.route.name === 'overview') renderTotals();
      schedule();
    });
    source.addEventListener('reset', () => { loadAll().then(schedule); });
    // The credential the stream was opened with ended (logout elsewhere, expiry, revocation,
    // a first user created): ask who we are now — the login page if nobody.
    source.addEventListener('ended', () => {
      source.close();
      live.dataset.state = 'offline';
      live.textContent = 'offline';
      loadSession()
        .then((ok) => { if (ok) { reloadOnHello = true; setTimeout(connect, 1000); } })
        .catch(() => setTimeout(connect, 3000));
    });
  }

  let frame = 0;
  function schedule() {
    if (!frame) frame = requestAnimationFrame(flush);
  }
  function flush() {
    frame = 0;
    if (state.alertsDirty) {
      state.alertsDirty = false;
      renderBanner();
      renderNavCount();
      if (state.route.name === 'overview') { renderOpenAlerts(); renderTotals(); }
      if (state.route.name === 'alerts') renderAlertList();
    }
    if (state.route.name === 'overview') {
      const flash = state.dirty.size <= 40; // a few changes flash; a storm of them would only blur
      for (const id of state.dirty) updateCard(id, flash);
      if (state.maximaDirty) { // a table: at most every 2 s
        const wait = 2000 - (Date.now() - (flush.maximaAt || 0));
        if (wait <= 0) {
          flush.maximaAt = Date.now();
          state.maximaDirty = false;
          renderMaxima();
        } else if (!flush.maximaTimer) {
          flush.maximaTimer = setTimeout(() => { flush.maximaTimer = 0; schedule(); }, wait);
        }
      }
    } else if (state.route.name === 'device' && state.dirty.has(state.route.id)) {
      updateDeviceLive();
    }
    state.dirty.clear();
    drawSparks();
  }

  // ---------- the critical banner ----------
  function criticalOpen() {
    return [...state.alerts.values()]
      .filter((a) => a.state === 'open' && a.severity === 'critical')
      .sort((a, b) => b.opened_ms - a.opened_ms);
  }
  function renderBanner() {
    const list = criticalOpen();
    const b = $('#banner');
    if (list.length === 0) {
      b.hidden = true;
      stopAlarm();
      return;
    }
    const a = list[0];
    b.hidden = false;
    b.dataset.alert = a.id;
    $('#banner-title').textContent = 'CRITICAL · ' + a.kind.replace('_', ' ').toUpperCase() + ' · ' + a.device;
    $('#banner-message').textContent = bannerText(a);
    $('#banner-more').textContent = list.length > 1 ? `(+${list.length - 1} more critical)` : '';
    $('#banner-view').href = '#/alerts/' + a.id;
    startAlarm();
  }
  // The banner says what is happening and what to do: the alert's explanation (the same text
  // its SMS carried, from GET /api/v1/alerts/<id>), fetched once per alert; its one-line
  // message until then, or if the fetch fails.
  const explanations = new Map();
  function bannerText(a) {
    const known = explanations.get(a.id);
    if (known) return known;
    if (!explanations.has(a.id)) {
      explanations.set(a.id, null);
      api(`/api/v1/alerts/${a.id}`)
        .then((full) => {
          const e = full && full.explanation;
          if (e && e.short) {
            explanations.set(a.id, e.short);
            renderBanner();
          }
        })
        .catch(() => {});
    }
    return a.message;
  }
  async function acknowledge(id, comment) {
    const a = await api(`/api/v1/alerts/${id}/ack`, { json: { by: operator(), comment: comment || 'acknowledged from the dashboard' } });
    applyAlert(a);
    schedule();
    return a;
  }

  // An optional alarm tone (WebAudio, no file) while a critical alert is open, once the
  // operator turned it on (browsers allow sound only after a click anyway).
  let audio = null;
  let alarmTimer = 0;
  function startAlarm() {
    if (localStorage.getItem('canary.sound') !== 'on' || alarmTimer) return;
    const beep = () => {
      try {
        audio = audio || new AudioContext();
        const o = audio.createOscillator();
        const g = audio.createGain();
        o.frequency.value = 880;
        g.gain.value = 0.08;
        o.connect(g).connect(audio.destination);
        o.start();
        o.stop(audio.currentTime + 0.25);
      } catch (e) { /* no audio */ }
    };
    beep();
    alarmTimer = setInterval(beep, 2000);
  }
  function stopAlarm() {
    clearInterval(alarmTimer);
    alarmTimer = 0;
  }

  function renderNavCount() {
    const n = [...state.alerts.values()].filter((a) => a.state === 'open').length;
    const c = $('#nav-alert-count');
    c.hidden = n === 0;
    c.textContent = n;
  }

  // ---------- sparklines ----------
  // Sparklines are drawn after the frame's DOM changes, with one size measured once: reading a
  // canvas's size after each change would lay the page out again for every card.
  const sparkQueue = [];
  function queueSpark(canvas, values, color) { sparkQueue.push([canvas, values, color]); }
  function drawSparks() {
    if (!sparkQueue.length) return;
    const rem = parseFloat(themeColor('font-size')) || 16; // the canvas is 4.5rem x 1.4rem (style.css)
    const w = Math.round(4.5 * rem), hgt = Math.round(1.4 * rem);
    for (const [canvas, values, color] of sparkQueue.splice(0)) drawSpark(canvas, values, color, w, hgt);
  }
  function drawSpark(canvas, values, color, w, hgt) {
    if (!w || !hgt) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr); }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    if (!values || values.length < 2) return;
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (hi === lo) { hi += 1; lo -= 1; }
    ctx.beginPath();
    const n = Math.max(values.length, 10); // a short history fills the width, not a corner
    values.forEach((v, i) => {
      const x = ((i + n - values.length) / (n - 1)) * w;
      const y = hgt - 2 - ((v - lo) / (hi - lo)) * (hgt - 4);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
  const cssVar = (name) => themeColor(name);

  // ---------- overview ----------
  function viewOverview(root) {
    root.append(
      h('div', { id: 'totals', class: 'totals' }),
      h('section', { id: 'open-alerts-section' }, h('h2', { text: 'Open alerts' }), h('div', { id: 'open-alerts', class: 'alerts-list' })),
      h('div', { class: 'row' }, h('h2', { text: 'Devices' }), h('span', { class: 'spacer' }),
        h('input', { type: 'search', id: 'device-filter', placeholder: 'Find a device, room or site', value: state.filter.text, 'aria-label': 'find devices',
          oninput: (e) => { state.filter.text = e.target.value; applyFilter(); } }),
        h('select', { id: 'status-filter', 'aria-label': 'show', onchange: (e) => { state.filter.status = e.target.value; applyFilter(); } },
          [['', 'all devices'], ['problems', 'alerts and anomalies'], ['online', 'online'], ['stale', 'stale'], ['offline', 'offline']].map(([v, t]) => h('option', { value: v, selected: state.filter.status === v, text: t })))),
      h('div', { id: 'devices', class: 'grid', 'data-testid': 'device-list' }),
      h('h2', { text: 'Highest readings recorded' }),
      h('div', { id: 'maxima', class: 'panel table-wrap' }));
    renderTotals();
    renderOpenAlerts();
    for (const id of [...state.devices.keys()].sort()) updateCard(id);
    drawSparks();
    renderMaxima();
  }

  function cardShown(d, status, st) {
    const f = state.filter;
    if (f.status === 'problems' && st === 'normal') return false;
    if (f.status && f.status !== 'problems' && f.status !== status && !(f.status === 'offline' && status === 'never')) return false;
    if (!f.text) return true;
    const q = f.text.toLowerCase();
    return [d.info.id, d.info.name, d.info.location, d.info.kind].some((x) => x && x.toLowerCase().includes(q));
  }
  function applyFilter() {
    for (const id of state.devices.keys()) state.dirty.add(id);
    schedule();
  }

  function renderTotals() {
    const el = $('#totals');
    if (!el) return;
    const counts = { online: 0, stale: 0, offline: 0, never: 0 };
    for (const d of state.devices.values()) counts[deviceStatus(d)]++;
    const open = [...state.alerts.values()].filter((a) => a.state === 'open');
    const crit = open.filter((a) => sevRank(a.severity) >= sevRank('high')).length;
    const s = state.stats;
    const tile = (n, l, cls) => h('div', { class: 'total ' + (cls || '') }, h('div', { class: 'n', text: n }), h('div', { class: 'l', text: l }));
    el.replaceChildren(
      tile(state.devices.size, 'devices'),
      tile(counts.online, 'online', 'ok'),
      tile(counts.stale, 'stale', counts.stale ? 'warn' : ''),
      tile(counts.offline + counts.never, 'offline', counts.offline ? 'bad' : ''),
      tile(open.length, 'open alerts', open.length ? 'bad' : 'ok'),
      tile(crit, 'high / critical', crit ? 'bad' : ''),
      tile(s ? Math.round(s.ingest_per_s * 10) / 10 : '—', 'readings / s'),
      tile(s ? s.anomalies_last_hour : '—', 'anomalies, last hour'));
  }

  function alertRow(a, onclick) {
    return h('a', { class: `alert-row sev-${a.severity}`, href: '#/alerts/' + a.id, 'data-alert': a.id, onclick },
      h('span', { class: 'pills' }, h('span', { class: 'pill sev-' + a.severity, text: a.severity }), h('span', { class: 'pill state-' + a.state, text: a.state })),
      h('span', { class: 'msg' }, h('strong', { text: a.device + ' ' }), a.message),
      h('span', { class: 'when', text: fmtAgo(a.opened_ms) }));
  }
  function renderOpenAlerts() {
    const el = $('#open-alerts');
    if (!el) return;
    const list = [...state.alerts.values()].filter((a) => a.state !== 'resolved')
      .sort((a, b) => (a.state === 'open') - (b.state === 'open') || sevRank(a.severity) - sevRank(b.severity) || a.opened_ms - b.opened_ms)
      .reverse();
    el.replaceChildren(...(list.length ? list.slice(0, 20).map((a) => alertRow(a)) : [h('div', { class: 'panel muted', text: 'No open alerts.' })]));
  }

  // The overview's cards, by device id, with their parts (no DOM queries per update: the
  // overview must stay smooth with a thousand devices and as many readings a second).
  const cards = new Map();
  let colors = null; // theme colours, read once per render
  function themeColor(name) {
    if (!colors) colors = new Map();
    if (!colors.has(name)) colors.set(name, getComputedStyle(document.documentElement).getPropertyValue(name).trim());
    return colors.get(name);
  }

  // Only cards on screen draw sparklines and flash; one that scrolls into view catches up.
  const onScreen = new Set();
  const seer = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const id = e.target.dataset.device;
      if (e.isIntersecting) {
        onScreen.add(id);
        const c = cards.get(id);
        if (c) for (const row of c.metrics.values()) row.drawn = null;
        state.dirty.add(id);
        schedule();
      } else {
        onScreen.delete(id);
      }
    }
  });

  function makeCard(id) {
    const c = { metrics: new Map() };
    c.name = h('span', { class: 'name', title: id });
    c.status = h('span', { class: 'pill status' });
    c.state = h('span', { class: 'pill state' });
    c.link = h('span', { class: 'pill link', 'data-testid': 'device-link', hidden: true });
    c.trust = h('span', { class: 'pill trust', 'data-testid': 'device-trust', hidden: true });
    c.where = h('div', { class: 'where' });
    c.box = h('div', { class: 'metrics' });
    c.seen = h('div', { class: 'seen' });
    c.el = h('a', { class: 'card', href: '#/device/' + encodeURIComponent(id), 'data-device': id, 'data-testid': 'device-card' },
      h('div', { class: 'head' }, c.name, h('span', { class: 'pills' }, c.status, c.link, c.trust, c.state)), c.where, c.box, c.seen);
    return c;
  }

  function updateCard(id, flash) {
    const grid = $('#devices');
    if (!grid) return;
    const d = state.devices.get(id);
    let c = cards.get(id);
    if (!c) {
      c = makeCard(id);
      cards.set(id, c);
      // keep the grid sorted by id (cards made in order are appended)
      const last = grid.lastElementChild;
      const after = last && last.dataset.device > id ? [...grid.children].find((x) => x.dataset.device > id) : null;
      grid.insertBefore(c.el, after);
      seer.observe(c.el);
    }
    const visible = onScreen.has(id);
    const status = deviceStatus(d);
    const st = deviceState(d);
    const shown = cardShown(d, status, st);
    if (c.el.hidden === shown) c.el.hidden = !shown;
    if (c.el.dataset.status !== status) {
      c.el.dataset.status = status;
      c.status.className = 'pill status ' + status;
      c.status.textContent = status;
    }
    // the device's own word on its MQTT connection, when it has one (its retained status topic)
    const link = d.info.connection && d.info.connection !== 'unknown' ? d.info.connection : '';
    if (c.el.dataset.link !== link) {
      c.el.dataset.link = link;
      c.link.hidden = !link;
      c.link.className = 'pill link ' + link;
      c.link.textContent = link === 'sleeping' ? 'sleeping' : 'mqtt ' + link;
      c.link.title = link ? 'MQTT status ' + link + (d.info.connection_since_ms ? ' since ' + new Date(d.info.connection_since_ms).toLocaleString() : '') : '';
    }
    // a device the tamper checks doubt (suspect) or quarantined: its values are not to be trusted
    const trust = d.info.trust && d.info.trust.state !== 'trusted' ? d.info.trust.state : '';
    if (c.el.dataset.trust !== trust) {
      c.el.dataset.trust = trust;
      c.trust.hidden = !trust;
      c.trust.className = 'pill trust ' + trust;
      c.trust.textContent = trust;
      c.trust.title = trust ? (d.info.trust.reasons || []).map((r) => r.detail).join('\n') : '';
    }
    if (c.el.dataset.state !== st) {
      c.el.dataset.state = st;
      c.state.className = 'pill state ' + (st === 'normal' || st === 'anomaly' ? st : 'sev-' + st);
      c.state.textContent = st;
    }
    const name = d.info.name || id;
    if (c.name.textContent !== name) c.name.textContent = name;
    const where = [d.info.location, d.info.name ? id : ''].filter(Boolean).join(' · ') || d.info.kind || ' ';
    if (c.where.textContent !== where) c.where.textContent = where;
    const names = Object.keys(d.latest);
    if (names.length !== c.metrics.size) { // a metric appeared: rebuild the rows in name order
      for (const m of names.sort()) {
        let row = c.metrics.get(m);
        if (!row) {
          row = { v: h('span', { class: 'v' }), unit: h('span', { class: 'unit' }), spark: h('canvas', { class: 'spark', 'data-spark': m }) };
          row.el = h('div', { class: 'metric-value', 'data-metric': m }, row.v, row.unit);
          row.label = h('span', { class: 'metric-label', text: labelOf(m) });
          c.metrics.set(m, row);
        }
        c.box.append(row.label, row.spark, row.el);
      }
    }
    for (const [m, row] of c.metrics) {
      const v = d.latest[m];
      const text = fmtValue(v.value, m);
      if (row.v.textContent !== text) {
        const first = row.v.textContent === '';
        row.v.textContent = text;
        if (flash && visible && !first && row.el.animate) row.el.animate([{ backgroundColor: themeColor('--flash') }, { backgroundColor: 'transparent' }], { duration: 800 });
      }
      const unit = state.metrics.get(m) && state.metrics.get(m).binary ? '' : unitOf(m);
      if (row.unit.textContent !== unit) row.unit.textContent = unit;
      const crit = v.flags.includes('critical');
      row.el.classList.toggle('critical', crit);
      row.el.classList.toggle('warn', !crit && (v.flags.includes('warn') || v.flags.includes('anomaly')));
      row.el.title = `score ${v.score ?? '—'} ${v.flags.join(' ')}`;
      const key = v.ts_ms + ':' + (d.spark[m] ? d.spark[m].length : 0);
      if (visible && row.drawn !== key) {
        row.drawn = key;
        queueSpark(row.spark, d.spark[m], crit ? themeColor('--bad') : themeColor('--accent'));
      }
    }
    c.seen.textContent = 'last reading ' + fmtAgo(d.lastSeen);
  }

  function renderMaxima() {
    const el = $('#maxima');
    if (!el) return;
    if (!state.maxima.size) { el.replaceChildren(h('div', { class: 'muted', text: 'Nothing recorded yet.' })); return; }
    // The highest value per metric across the fleet first, then every device's.
    const best = new Map();
    for (const m of state.maxima.values()) if (!best.has(m.metric) || best.get(m.metric).max < m.max) best.set(m.metric, m);
    el.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, ['metric', 'highest', 'device', 'when', 'lowest'].map((t) => h('th', { text: t })))),
      h('tbody', {}, [...best.values()].sort((a, b) => a.metric.localeCompare(b.metric)).map((m) =>
        h('tr', {}, h('td', { text: labelOf(m.metric) }),
          h('td', { class: 'num', text: fmtValue(m.max, m.metric) + ' ' + (m.unit || '') }),
          h('td', {}, h('a', { href: '#/device/' + encodeURIComponent(m.device), text: m.device })),
          h('td', { text: fmtTime(m.max_ts_ms) }),
          h('td', { class: 'num', text: fmtValue(m.min, m.metric) + ' ' + (m.unit || '') }))))));
  }

  // ---------- device page ----------
  const RANGES = { '15m': 900e3, '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
  let charts = [];
  function destroyCharts() { charts.forEach((c) => c.plot && c.plot.destroy()); charts = []; }

  function viewDevice(root, id) {
    const d = device(id);
    const range = state.route.range || '1h';
    root.append(
      h('div', { class: 'row' },
        h('h1', {}, d.info.name || id, ' ', h('span', { class: 'muted small', text: d.info.name ? id : '' })),
        h('span', { class: 'pills', id: 'device-pills' }),
        h('span', { class: 'spacer' }),
        h('span', { class: 'seg', id: 'ranges' }, Object.keys(RANGES).map((r) =>
          h('button', { type: 'button', class: r === range ? 'on' : '', 'data-range': r, text: r,
            onclick: () => { location.hash = `#/device/${encodeURIComponent(id)}/${r}`; } })),
          h('button', { type: 'button', class: range === 'custom' ? 'on' : '', text: 'custom', onclick: () => { $('#custom-range').hidden = false; } }))),
      customRange(id, range),
      h('div', { class: 'muted', id: 'device-where' }),
      h('h2', { text: 'History' }),
      h('div', { class: 'charts', id: 'charts' }),
      h('div', { class: 'split' },
        h('section', {}, h('h2', { text: 'Alerts' }), h('div', { class: 'alerts-list', id: 'device-alerts' })),
        h('section', {}, h('h2', { text: 'Commands' }), commandsPanel(id))),
      h('h2', { text: 'Latest readings' }), h('div', { class: 'panel table-wrap', id: 'readings' }));
    updateDeviceLive();
    loadDeviceHistory(id, range);
  }

  // From/to pickers for any range (#/device/<id>/<from_ms>-<to_ms>), in local time.
  function customRange(id, range) {
    const local = (ms) => { const t = new Date(ms - new Date(ms).getTimezoneOffset() * 60000); return t.toISOString().slice(0, 16); };
    const now = Date.now();
    const from = h('input', { type: 'datetime-local', value: local(range === 'custom' ? state.route.from : now - 3600e3), 'aria-label': 'from' });
    const to = h('input', { type: 'datetime-local', value: local(range === 'custom' ? state.route.to : now), 'aria-label': 'to' });
    return h('div', { class: 'row filters', id: 'custom-range', hidden: range !== 'custom' },
      h('label', {}, 'from', from), h('label', {}, 'to', to),
      h('button', { type: 'button', class: 'btn', text: 'Show', onclick: () => {
        const f = new Date(from.value).getTime(), t = new Date(to.value).getTime();
        if (!(t > f)) { toast('"to" must come after "from".'); return; }
        location.hash = `#/device/${encodeURIComponent(id)}/${f}-${t}`;
      } }));
  }

  function updateDeviceLive() {
    const id = state.route.id;
    const d = state.devices.get(id);
    if (!d || !$('#device-pills')) return;
    const status = deviceStatus(d), st = deviceState(d);
    $('#device-pills').replaceChildren(h('span', { class: 'pill ' + status, text: status }),
      h('span', { class: 'pill ' + (st === 'normal' || st === 'anomaly' ? st : 'sev-' + st), text: st }));
    $('#device-where').textContent = [d.info.location, d.info.kind, 'last reading ' + fmtAgo(d.lastSeen)].filter(Boolean).join(' · ');
    for (const c of charts) {
      const v = d.latest[c.metric];
      if (c.valueEl && v) c.valueEl.textContent = fmtValue(v.value, c.metric) + ' ' + unitOf(c.metric);
    }
    const now = Date.now();
    if (!updateDeviceLive.last || now - updateDeviceLive.last > 5000) { // refresh charts at most every 5 s
      updateDeviceLive.last = now;
      if (updateDeviceLive.armed) loadDeviceHistory(id, state.route.range || '1h', true);
    }
    updateDeviceLive.armed = true;
  }

  async function loadDeviceHistory(id, range, refresh) {
    const custom = range === 'custom';
    const to = custom ? state.route.to : Date.now() + state.serverOffsetMs;
    const from = custom ? state.route.from : to - RANGES[range];
    const d = device(id);
    const box = $('#charts');
    if (!box) return;
    let alerts = [];
    try { alerts = (await api(`/api/v1/alerts?device=${encodeURIComponent(id)}&limit=200`)).alerts; } catch (e) { /* none shown */ }
    if (!refresh) renderDeviceAlerts(alerts);
    const metrics = Object.keys(d.latest).sort();
    if (!metrics.length && !refresh) box.replaceChildren(h('div', { class: 'panel muted', text: 'No readings yet.' }));
    const width = Math.max(200, Math.min(1200, Math.floor((box.clientWidth || 800) / (box.clientWidth > 1100 ? 2 : 1))));
    const points = Math.min(1000, Math.max(60, Math.floor(width / 2)));
    await Promise.all(metrics.map(async (m) => {
      const fetchPoints = (n) => api(`/api/v1/devices/${encodeURIComponent(id)}/readings?metric=${m}&from=${Math.round(from)}&to=${Math.round(to)}&points=${n}`);
      let r;
      try {
        r = await fetchPoints(points);
        // Buckets finer than the device's reporting interval leave every other one empty and
        // the line in pieces: ask again with buckets about as long as that interval.
        const idx = r.points.map((p, i) => (p.count > 0 ? i : -1)).filter((i) => i >= 0);
        if (idx.length > 1) {
          const fill = idx.length / (idx[idx.length - 1] - idx[0] + 1);
          if (fill < 0.8) r = await fetchPoints(Math.max(10, Math.floor(points * fill * 0.9)));
        }
      } catch (e) { return; }
      if (!state.route || state.route.id !== id) return;
      drawChart(box, m, r, alerts.filter((a) => a.metric === m || a.metric === 'device' || a.metric.startsWith('model:')), from, to);
    }));
    if (!refresh) loadReadingsTable(id);
  }

  function drawChart(box, metric, r, alerts, from, to) {
    let c = charts.find((x) => x.metric === metric);
    if (!c) {
      const valueEl = h('span', { class: 'muted' });
      const plotEl = h('div', { class: 'plot' });
      const el = h('div', { class: 'panel chart', 'data-chart': metric }, h('h3', {}, h('span', { text: labelOf(metric) + ((r.unit || unitOf(metric)) ? ` (${r.unit || unitOf(metric)})` : '') }), valueEl), plotEl);
      const after = [...box.children].find((x) => x.dataset.chart > metric); // in name order
      box.insertBefore(el, after || null);
      c = { metric, el, plotEl, valueEl, plot: null };
      charts.push(c);
    }
    const xs = [], avg = [], lo = [], hi = [], anom = [];
    for (const p of r.points) {
      xs.push((p.from_ms + p.to_ms) / 2000);
      avg.push(p.avg);
      lo.push(p.min);
      hi.push(p.max);
      anom.push(p.anomalies > 0 ? p.max : null);
    }
    const lim = r.limits || {};
    const lines = [['crit_high', '--bad'], ['warn_high', '--warn'], ['warn_low', '--warn'], ['crit_low', '--bad']].filter(([k]) => lim[k] !== null && lim[k] !== undefined);
    const data = [xs, avg, lo, hi, anom];
    const ink = cssVar('--ink'), grid = cssVar('--line'), accent = cssVar('--accent'), bad = cssVar('--bad');
    const marks = alerts.filter((a) => a.opened_ms >= from && a.opened_ms <= to);
    const filled = avg.filter((v) => v !== null).length;
    const pad2 = (n) => String(n).padStart(2, '0');
    let withSeconds = false; // only when the ticks fall between whole minutes
    const tick = (s) => {
      const t = new Date(s * 1000);
      const hm = pad2(t.getHours()) + ':' + pad2(t.getMinutes()) + (withSeconds ? ':' + pad2(t.getSeconds()) : '');
      return to - from > 86400e3 ? `${t.toLocaleDateString([], { weekday: 'short' })} ${hm}` : hm;
    };
    const opts = {
      width: Math.max(200, c.plotEl.clientWidth || 600),
      height: 220,
      scales: { x: { time: true, range: [from / 1000, to / 1000] },
        y: { range: (u, mn, mx) => {
          const vals = [mn, mx, ...lines.map(([k]) => lim[k])].filter((v) => v !== null && Number.isFinite(v));
          let a = Math.min(...vals), b = Math.max(...vals);
          if (a === b) { a -= 1; b += 1; }
          const pad = (b - a) * 0.08;
          return [a - pad, b + pad];
        } } },
      axes: [{ stroke: ink, grid: { stroke: grid }, values: (u, splits) => { withSeconds = splits.some((x) => x % 60 !== 0); return splits.map(tick); } },
        { stroke: ink, grid: { stroke: grid }, size: 60 }],
      series: [{},
        { label: 'avg', stroke: accent, width: 1.5, spanGaps: false, points: { show: filled < 80, size: 4, fill: accent } },
        { label: 'min', stroke: 'transparent', points: { show: false } },
        { label: 'max', stroke: 'transparent', points: { show: false } },
        { label: 'anomaly', stroke: bad, width: 0, paths: () => null, points: { show: true, size: 7, fill: bad, stroke: bad } }],
      bands: [{ series: [3, 2], fill: accent + '26' }],
      legend: { show: true, live: true },
      cursor: { points: { show: false } },
      hooks: { draw: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        const { left, top, width, height } = u.bbox;
        ctx.beginPath(); ctx.rect(left, top, width, height); ctx.clip();
        for (const [k, color] of lines) { // thresholds
          const y = u.valToPos(lim[k], 'y', true);
          ctx.strokeStyle = cssVar(color);
          ctx.setLineDash([6, 4]);
          ctx.lineWidth = 1.5;
          ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = cssVar(color);
          ctx.font = `${11 * devicePixelRatio}px sans-serif`;
          ctx.textAlign = 'left';
          ctx.textBaseline = 'bottom';
          ctx.fillText(k.replace('_', ' ') + ' ' + lim[k], left + 4, y - 14 * devicePixelRatio < top ? y + 14 * devicePixelRatio : y - 4);
        }
        for (const a of marks) { // alerts on the time axis
          const x = u.valToPos(a.opened_ms / 1000, 'x', true);
          ctx.strokeStyle = cssVar('--sev-' + a.severity) || bad;
          ctx.lineWidth = 2;
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
          ctx.fillStyle = ctx.strokeStyle;
          ctx.beginPath(); ctx.moveTo(x - 5, top); ctx.lineTo(x + 5, top); ctx.lineTo(x, top + 8); ctx.fill();
        }
        ctx.restore();
      }] },
    };
    if (c.plot) c.plot.destroy();
    c.plotEl.replaceChildren();
    c.plot = new uPlot(opts, data, c.plotEl);
    c.el.dataset.points = xs.filter((_, i) => avg[i] !== null).length;
    const v = device(state.route.id).latest[metric];
    if (v) c.valueEl.textContent = fmtValue(v.value, metric) + ' ' + unitOf(metric);
  }

  function renderDeviceAlerts(alerts) {
    const el = $('#device-alerts');
    if (!el) return;
    el.replaceChildren(...(alerts.length ? alerts.slice(0, 10).map((a) => alertRow(a)) : [h('div', { class: 'panel muted', text: 'No alerts for this device.' })]));
  }

  async function loadReadingsTable(id) {
    const el = $('#readings');
    if (!el) return;
    let r;
    try { r = await api(`/api/v1/devices/${encodeURIComponent(id)}/readings?limit=20`); } catch (e) { el.textContent = e.message; return; }
    // one row per reading, one column per metric: value, with its score and flags
    const metrics = [...new Set(r.readings.flatMap((rd) => Object.keys(rd.values)))].sort();
    const rows = r.readings.map((rd) => h('tr', {}, h('td', { text: fmtClock(rd.ts_ms) }), metrics.map((m) => {
      const v = rd.values[m];
      if (!v) return h('td', {});
      const flags = (v.flags || []).filter((f) => f !== 'warmup');
      return h('td', { class: 'num', title: `score ${v.score === null ? '—' : v.score.toFixed(3)}` + (v.flags.length ? ' · ' + v.flags.join(', ') : '') },
        fmtValue(v.value, m), flags.map((f) => h('span', { class: 'flag ' + f, text: f })));
    })));
    el.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', { text: 'time' }), metrics.map((m) => h('th', { class: 'num', text: labelOf(m) + (unitOf(m) ? ` (${unitOf(m)})` : '') })))),
      h('tbody', {}, rows)), h('p', { class: 'muted small', text: 'Hover a value for its anomaly score and flags.' }));
  }

  // Buzzer and valve commands (sent over MQTT), the device's recent commands and their state.
  function commandsPanel(id) {
    const note = h('span', { class: 'muted small', text: 'Sent to the device over MQTT.' });
    const recent = h('div', { class: 'table-wrap' });
    const list = async () => {
      try {
        const r = await api(`/api/v1/devices/${encodeURIComponent(id)}/commands?limit=5`);
        recent.replaceChildren(r.commands.length ? h('table', {}, h('tbody', {}, r.commands.map((c) => h('tr', {},
          h('td', { text: fmtTime(c.created_ms) }), h('td', { text: `${c.command} ${c.state || c.value || ''}` }),
          h('td', { text: c.status + (c.error ? ': ' + c.error : '') }), h('td', { class: 'muted', text: c.alert_id ? 'automatic, alert ' + c.alert_id : c.by }))))) : '');
      } catch (e) { recent.replaceChildren(); }
    };
    const send = async (command, st) => {
      try {
        const c = await api(`/api/v1/devices/${encodeURIComponent(id)}/commands`, { json: { command, state: st, by: operator() } });
        toast(`${command} ${st}: ${c.status}`);
      } catch (e) { toast(`${command} ${st}: ${e.message}`); }
      list();
    };
    const b = (label, command, st) => h('button', { type: 'button', class: 'btn ghost', 'data-command': command + '-' + st, text: label, onclick: () => { if (confirm(`Send "${command} ${st}" to ${id}?`)) send(command, st); } });
    const buttons = [b('Buzzer on', 'buzzer', 'on'), b('Buzzer off', 'buzzer', 'off'), b('Close valve', 'valve', 'close'), b('Open valve', 'valve', 'open')];
    api('/healthz').then((hz) => {
      if (hz.mqtt && hz.mqtt.state === 'disabled') {
        buttons.forEach((x) => { x.disabled = true; });
        note.textContent = 'MQTT is off in this canaryd (mqtt.enabled = false): no commands can be sent.';
      } else if (hz.mqtt && hz.mqtt.state !== 'connected') {
        note.textContent = `canaryd is not connected to the MQTT broker (${hz.mqtt.state}): commands will be refused.`;
      }
    }).catch(() => {});
    list();
    return h('div', { class: 'panel' }, h('div', { class: 'row' }, buttons, note), recent);
  }

  // ---------- alerts page ----------
  const alertFilters = { state: '', severity: '', device: '', range: '7d' };
  let alertList = [];
  let alertNext = null; // next_before of the last page
  function viewAlerts(root, id) {
    const sel = (name, options) => h('label', {}, name, h('select', { 'data-filter': name, onchange: (e) => { alertFilters[name] = e.target.value; loadAlertList(); } },
      options.map(([v, t]) => h('option', { value: v, selected: alertFilters[name] === v, text: t }))));
    root.append(
      h('h1', { text: 'Alerts' }),
      h('div', { class: 'filters' },
        sel('state', [['', 'any'], ['open', 'open'], ['acknowledged', 'acknowledged'], ['resolved', 'resolved']]),
        sel('severity', [['', 'any'], ...SEVERITIES.slice().reverse().map((s) => [s, s + (s === 'critical' ? '' : ' and above')])]),
        sel('device', [['', 'any'], ...[...state.devices.keys()].sort().map((d) => [d, d])]),
        sel('range', [['1h', 'last hour'], ['24h', 'last 24 h'], ['7d', 'last 7 days'], ['', 'all time']])),
      h('div', { class: 'split' }, h('div', { id: 'alert-list', class: 'alerts-list' }), h('div', { id: 'alert-detail' })));
    loadAlertList();
    if (id) loadAlertDetail(id);
    else $('#alert-detail').append(h('div', { class: 'panel muted', text: 'Pick an alert to see its timeline and act on it.' }));
  }
  async function loadAlertList() {
    const q = new URLSearchParams({ limit: '200' });
    for (const k of ['state', 'severity', 'device']) if (alertFilters[k]) q.set(k, alertFilters[k]);
    if (alertFilters.range) q.set('from', '-' + alertFilters.range);
    try {
      const r = await api('/api/v1/alerts?' + q);
      alertList = r.alerts;
      alertNext = r.next_before;
    } catch (e) { toast(e.message); alertList = []; alertNext = null; }
    renderAlertList();
  }
  async function loadOlderAlerts() {
    const q = new URLSearchParams({ limit: '200', before: String(alertNext) });
    for (const k of ['state', 'severity', 'device']) if (alertFilters[k]) q.set(k, alertFilters[k]);
    if (alertFilters.range) q.set('from', '-' + alertFilters.range);
    try {
      const r = await api('/api/v1/alerts?' + q);
      alertList = alertList.concat(r.alerts);
      alertNext = r.next_before;
    } catch (e) { toast(e.message); }
    renderAlertList();
  }
  function renderAlertList() {
    const el = $('#alert-list');
    if (!el) return;
    // live changes of listed alerts show at once; new ones appear on the next load
    const list = alertList.map((a) => state.alerts.get(a.id) || a);
    for (const a of state.alerts.values()) if (!list.find((x) => x.id === a.id) && matchesFilters(a)) list.unshift(a);
    list.sort((a, b) => b.id - a.id);
    el.replaceChildren(...(list.length ? list.map((a) => {
      const row = alertRow(a);
      if (state.route.id === a.id) row.classList.add('selected');
      return row;
    }) : [h('div', { class: 'panel muted', text: 'No alerts match.' })]),
    alertNext !== null && alertNext !== undefined ? h('button', { type: 'button', class: 'btn ghost', text: 'Load older alerts', onclick: loadOlderAlerts }) : '');
  }
  function matchesFilters(a) {
    if (alertFilters.state && a.state !== alertFilters.state) return false;
    if (alertFilters.severity && sevRank(a.severity) < sevRank(alertFilters.severity)) return false;
    if (alertFilters.device && a.device !== alertFilters.device) return false;
    if (alertFilters.range && a.opened_ms < Date.now() - RANGES[alertFilters.range]) return false;
    return true;
  }

  async function loadAlertDetail(id) {
    const el = $('#alert-detail');
    if (!el) return;
    let a, notes = [];
    try {
      [a, notes] = await Promise.all([api('/api/v1/alerts/' + id),
        api('/api/v1/notifications?alert=' + id + '&limit=200').then((r) => r.notifications).catch(() => [])]);
    } catch (e) { el.replaceChildren(h('div', { class: 'panel', text: e.message })); return; }
    if (state.alerts.has(a.id) || a.state !== 'resolved') applyAlert(Object.assign({}, a, { events: undefined }));
    const items = (a.events || []).map((e) => ({ ts: e.ts_ms, cls: e.action, title: `${e.action} by ${e.actor}`, note: e.note }))
      .concat(notes.map((n) => ({ ts: n.created_ms, cls: 'notification',
        title: `${n.kind === 'all_clear' ? 'all-clear' : 'notified'} ${n.recipient} by ${n.channel} (${n.address}) — ${n.status}${n.attempts > 1 ? `, ${n.attempts} attempts` : ''}`,
        note: n.last_error || '' })))
      .concat((a.actions || []).map((c) => ({ ts: c.created_ms, cls: 'notification',
        title: `automatic command: ${c.command} ${c.state || c.value || ''} — ${c.status}`, note: c.error || '' })))
      .sort((x, y) => x.ts - y.ts);
    const comment = h('textarea', { rows: 2, placeholder: 'Comment (what you did, who is on the way)', id: 'alert-comment', style: null });
    const by = h('input', { value: operator(), id: 'alert-by', size: 12, 'aria-label': 'your name' });
    const act = async (action) => {
      localStorage.setItem('canary.operator', by.value || 'operator');
      try {
        const r = await api(`/api/v1/alerts/${a.id}/${action}`, { json: { by: by.value || 'operator', comment: comment.value || undefined } });
        applyAlert(r);
        schedule();
        toast(`Alert ${a.id} ${r.state}.`);
        loadAlertDetail(a.id);
      } catch (e) { toast(e.message); }
    };
    const addComment = async () => {
      if (!comment.value.trim()) { toast('Write the comment first.'); return; }
      localStorage.setItem('canary.operator', by.value || 'operator');
      try {
        await api(`/api/v1/alerts/${a.id}/comments`, { json: { by: by.value || 'operator', text: comment.value } });
        loadAlertDetail(a.id);
      } catch (e) { toast(e.message); }
    };
    el.replaceChildren(h('div', { class: 'panel', 'data-alert-detail': a.id },
      h('div', { class: 'row' }, h('span', { class: 'pill sev-' + a.severity, text: a.severity }), h('span', { class: 'pill state-' + a.state, id: 'alert-state', text: a.state }),
        h('strong', { text: `#${a.id} ${a.kind.replace('_', ' ')}` }), h('a', { href: '#/device/' + encodeURIComponent(a.device), text: a.device })),
      h('p', { text: a.message }),
      a.explanation && a.explanation.description ? h('p', { class: 'explain', text: a.explanation.description }) : null,
      a.explanation && a.explanation.action ? h('p', { class: 'explain action' }, h('strong', { text: 'What to do: ' }), a.explanation.action) : null,
      h('p', { class: 'muted small', text: `value ${fmtValue(a.value, a.metric)} · peak ${fmtValue(a.peak, a.metric)} · limit ${fmtValue(a.limit, a.metric)} ${unitOf(a.metric)} · opened ${fmtTime(a.opened_ms)}` }),
      h('div', { class: 'act' }, comment, h('div', { class: 'row' }, h('label', { class: 'muted small', for: 'alert-by', text: 'as' }), by,
        a.state === 'resolved' ? null : h('button', { class: 'btn', type: 'button', id: 'alert-ack', disabled: a.state !== 'open', text: 'Acknowledge', onclick: () => act('ack') }),
        a.state === 'resolved' ? null : h('button', { class: 'btn ghost', type: 'button', id: 'alert-resolve', text: 'Resolve', onclick: () => act('resolve') }),
        h('button', { class: 'btn ghost', type: 'button', id: 'alert-comment-add', text: 'Add comment', onclick: addComment }))),
      h('h2', { text: 'Timeline' }),
      h('ul', { class: 'timeline' }, items.map((i) => h('li', { class: i.cls }, h('div', { class: 't', text: fmtTime(i.ts) }), h('div', { text: i.title }), i.note ? h('div', { class: 'muted small', text: i.note }) : null)))));
    renderAlertList();
  }

  // ---------- pages still to come ----------
  function viewPlaceholder(root, title, text, link) {
    root.append(h('h1', { text: title }), h('div', { class: 'panel placeholder' }, h('p', { text }), link ? h('p', {}, h('a', { href: link[0], text: link[1] })) : null));
  }
  // The models page: each live model (GET /api/v1/models) as a panel — what it is and what it
  // applies to, how it was trained and evaluated, what it does live — and the reload state,
  // with a Reload button (POST /api/v1/models/reload: re-reads the files after a retrain).
  async function viewModels(root) {
    const head = h('div', { class: 'row-head' }, h('h1', { text: 'Models' }));
    const status = h('p', { class: 'muted' });
    const list = h('div', { class: 'models', 'data-testid': 'models' }, 'Loading…');
    const reload = h('button', { class: 'btn ghost', type: 'button', text: 'Reload models' });
    head.append(reload);
    root.append(head, status, list);
    const pct = (x) => (x === null || x === undefined ? '—' : (100 * x).toFixed(2) + ' %');
    const num = (x, d) => (x === null || x === undefined ? '—' : Number(x).toFixed(d));
    const kv = (pairs) => h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
      .map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]).flat());
    function panel(m) {
      const gas = m.type === 'gas';
      const tr = m.training || {};
      const ev = m.evaluation;
      const live = m.live || {};
      const applies = m.applies_to ? (m.applies_to.devices || '') + (m.applies_to.kind ? ' kind ' + m.applies_to.kind : '') : '';
      return h('section', { class: 'panel model', 'data-model': m.name },
        h('h2', {}, m.name + ' ', h('span', { class: 'pill', text: gas ? 'gas classifier' : m.type === 'iforest' ? 'isolation forest' : m.type })),
        h('div', { class: 'model-cols' },
          kv([['applies to', applies || 'every device'],
            ['inputs', (m.inputs || m.metrics || []).join(', ')],
            gas ? ['classes', (m.classes || []).join(', ')] : ['features', m.features ? m.features.length + ' (' + (m.features_kind || '') + (m.window ? ', window ' + m.window : '') + ')' : null],
            gas ? ['dangerous', (m.dangerous || []).map(c => `${c} → ${(m.alert_kinds || {})[c] || m.alert_kind}`).join(', ') + ` at p ≥ ${m.probability}, ${m.consecutive} in a row`]
              : ['threshold', `${num(m.threshold, 4)}${m.consecutive ? `, ${m.consecutive} in a row` : ''}`]]),
          kv([['trained on', tr.source ? `${tr.source} (${tr.rows} rows)` : null],
            ['trained', tr.created_ms ? fmtTime(tr.created_ms) : null],
            ['fit time', tr.fit_s ? tr.fit_s.toFixed(1) + ' s' : null],
            ['evaluation', ev ? (gas ? `${ev.split || ''} split, ${ev.rows} rows: accuracy ${pct(ev.accuracy)}, macro F1 ${pct(ev.macro_f1)}`
              : `${ev.rows} rows (${ev.source || ''}): ROC AUC ${num(ev.roc_auc, 3)}, PR AUC ${num(ev.pr_auc, 3)}`) : 'not recorded (canary eval --record)']]),
          kv([['devices scored', live.devices],
            ['readings scored', live.readings_scored],
            [gas ? 'dangerous readings' : 'above threshold', live.readings_above_threshold],
            ['file', m.path ? `${m.path} (${Math.round((m.file_bytes || 0) / 1024)} KB, ${fmtTime(m.file_modified_ms)})` : null]])));
    }
    async function load() {
      const r = await api('/api/v1/models');
      const rl = r.reloads || {};
      status.textContent = `Generation ${r.generation ?? '—'}, loaded ${fmtTime(r.loaded_ms)}; ${rl.total || 0} reloads, ${rl.failed || 0} failed` +
        (rl.last_error ? ` — last error: ${rl.last_error}` : '') + '.';
      list.replaceChildren(...(r.models.length ? r.models.map(panel)
        : [h('p', { class: 'panel muted', text: 'No live models. `canary train` builds one; a [model.<name>] section makes canaryd score with it (docs/MODELS.md, docs/GAS.md).' })]));
    }
    reload.addEventListener('click', async () => {
      reload.disabled = true;
      try { await api('/api/v1/models/reload', { json: {} }); toast('Models reloaded.'); await load(); } catch (e) { toast(e.message); }
      reload.disabled = false;
    });
    try { await load(); } catch (e) { list.textContent = e.message; }
  }
  // The security page: how canaryd judges what arrives (counters of /api/v1/stats), the
  // devices whose data the tamper checks doubt (trust of /api/v1/devices, with release), and
  // the recorded events, filtered and paged (/api/v1/events). Refreshed every 10 s while open.
  async function viewSecurity(root) {
    const tiles = h('div', { class: 'totals', id: 'sec-totals' });
    const trustBox = h('div', { class: 'panel table-wrap', 'data-testid': 'trust' }, 'Loading…');
    const f = { category: '', kind: '', device: '' };
    const sel = h('select', { 'aria-label': 'category', onchange: () => { f.category = sel.value; paged = false; loadEvents(); } },
      ['', 'security', 'ingest'].map((c) => h('option', { value: c, text: c || 'all categories' })));
    const kind = h('input', { type: 'search', placeholder: 'kind (e.g. bad_signature)', 'aria-label': 'kind',
      onchange: () => { f.kind = kind.value.trim(); paged = false; loadEvents(); } });
    const dev = h('input', { type: 'search', placeholder: 'device', 'aria-label': 'device',
      onchange: () => { f.device = dev.value.trim(); paged = false; loadEvents(); } });
    const evBox = h('div', { class: 'table-wrap', 'data-testid': 'events' }, 'Loading…');
    const more = h('button', { class: 'btn ghost', type: 'button', hidden: true, text: 'Older events' });
    root.append(h('h1', { text: 'Security' }), tiles,
      h('h2', { text: 'Device trust' }), trustBox,
      h('h2', { text: 'Events' }),
      h('div', { class: 'panel' }, h('div', { class: 'filters' }, sel, kind, dev), evBox, more));

    const tile = (n, l, cls, title) => h('div', { class: 'total ' + (cls || ''), title }, h('div', { class: 'n', text: n }), h('div', { class: 'l', text: l }));
    async function loadTiles(devs) {
      const s = await api('/api/v1/stats');
      const sec = s.security || {};
      const q = devs.filter((d) => d.trust && d.trust.state === 'quarantined').length;
      const sus = devs.filter((d) => d.trust && d.trust.state === 'suspect').length;
      tiles.replaceChildren(
        tile(sec.unsigned_policy || '—', 'unsigned readings', sec.unsigned_policy === 'reject' ? 'ok' : 'warn',
          'security.unsigned: what canaryd does with a reading that carries no signature or token'),
        tile(sec.signed_accepted ?? '—', 'signed accepted'),
        tile(sec.bearer_accepted ?? '—', 'token accepted'),
        tile(sec.rejected ?? '—', 'rejected', sec.rejected ? 'bad' : 'ok'),
        tile(sec.unsigned_flagged ?? '—', 'unsigned, flagged', sec.unsigned_flagged ? 'warn' : ''),
        tile(sec.devices_with_credentials ?? '—', 'devices with keys'),
        tile(q, 'quarantined', q ? 'bad' : 'ok'),
        tile(sus, 'suspect', sus ? 'warn' : ''));
    }
    function renderTrust(devs) {
      const doubted = devs.filter((d) => d.trust && d.trust.state !== 'trusted')
        .sort((a, b) => (a.trust.state === b.trust.state ? a.trust.score - b.trust.score : a.trust.state === 'quarantined' ? -1 : 1));
      if (!doubted.length) {
        trustBox.replaceChildren(h('p', { class: 'muted', text: devs.some((d) => d.trust)
          ? 'Every device is trusted: the tamper checks doubt no one.'
          : 'No trust information: this canaryd runs no tamper checks.' }));
        return;
      }
      const release = async (id, btn) => {
        btn.disabled = true;
        try {
          await api(`/api/v1/devices/${encodeURIComponent(id)}/release`, { json: { by: operator(), comment: 'released from the dashboard' } });
          toast(`${id} released.`);
          refresh();
        } catch (e) { toast(e.message); btn.disabled = false; }
      };
      trustBox.replaceChildren(h('table', {},
        h('thead', {}, h('tr', {}, ['device', 'location', 'state', 'score', 'since', 'why', ''].map((t) => h('th', { text: t })))),
        h('tbody', {}, doubted.map((d) => {
          const btn = h('button', { class: 'btn', type: 'button', text: 'Release', 'data-release': d.id });
          btn.addEventListener('click', () => release(d.id, btn));
          return h('tr', { 'data-device': d.id },
            h('td', {}, h('a', { href: '#/device/' + encodeURIComponent(d.id), text: d.name || d.id })),
            h('td', { text: d.location || '' }),
            h('td', {}, h('span', { class: 'pill trust ' + d.trust.state, text: d.trust.state })),
            h('td', { class: 'num', text: Number(d.trust.score).toFixed(2) }),
            h('td', { text: fmtAgo(d.trust.since_ms), title: fmtTime(d.trust.since_ms) }),
            h('td', {}, h('ul', { class: 'reasons' }, (d.trust.reasons || []).slice(0, 4).map((r) =>
              h('li', {}, h('strong', { text: r.check + (r.metric ? ' · ' + labelOf(r.metric) : '') + ': ' }), r.detail || '')))),
            h('td', {}, btn));
        }))));
    }
    let before = null;
    let paged = false; // the operator paged back: the 10-s refresh leaves the list alone
    async function loadEvents(append) {
      const q = new URLSearchParams({ limit: '100' });
      for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
      if (append && before !== null) q.set('before', before);
      const r = await api('/api/v1/events?' + q);
      before = r.next_before;
      more.hidden = before === null || before === undefined;
      const rows = r.events.map((e) => h('tr', { class: e.category === 'security' ? 'sec' : '' },
        h('td', { text: fmtTime(e.ts_ms) }), h('td', { text: e.category }), h('td', {}, h('code', { text: e.kind })),
        h('td', {}, e.device ? h('a', { href: '#/device/' + encodeURIComponent(e.device), text: e.device }) : ''),
        h('td', { text: e.source || '' }), h('td', { text: e.detail || '' }), h('td', { class: 'num', text: e.count })));
      const tbody = append && evBox.querySelector('tbody');
      if (tbody) { tbody.append(...rows); return; }
      evBox.replaceChildren(rows.length ? h('table', {},
        h('thead', {}, h('tr', {}, ['time', 'category', 'kind', 'device', 'source', 'detail', 'count'].map((t) => h('th', { text: t })))),
        h('tbody', {}, rows))
        : h('p', { class: 'muted', text: Object.values(f).some(Boolean) ? 'No events match.' : 'No security or ingest events recorded.' }));
    }
    more.addEventListener('click', () => { paged = true; loadEvents(true).catch((e) => toast(e.message)); });
    async function refresh() {
      if (!root.isConnected) { clearInterval(timer); return; }
      try {
        const devs = await apiAll('/api/v1/devices?limit=1000', 'devices', 'next', 'after');
        renderTrust(devs);
        await loadTiles(devs);
      } catch (e) { trustBox.textContent = e.message; }
    }
    const timer = setInterval(() => { refresh(); if (!paged) loadEvents().catch(() => {}); }, 10000);
    await Promise.all([refresh(), loadEvents().catch((e) => { evBox.textContent = e.message; })]);
  }

  // ---------- router ----------
  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    if (parts[0] === 'device' && parts[1]) {
      const custom = /^(\d+)-(\d+)$/.exec(parts[2] || '');
      if (custom && Number(custom[2]) > Number(custom[1])) return { name: 'device', id: parts[1], range: 'custom', from: Number(custom[1]), to: Number(custom[2]) };
      return { name: 'device', id: parts[1], range: RANGES[parts[2]] ? parts[2] : '1h' };
    }
    if (parts[0] === 'alerts') return { name: 'alerts', id: parts[1] ? Number(parts[1]) : null };
    if (parts[0] === 'security') return { name: 'security' };
    if (parts[0] === 'models') return { name: 'models' };
    return { name: 'overview' };
  }
  function render() {
    state.route = parseRoute();
    cards.clear();
    onScreen.clear();
    seer.disconnect();
    colors = null;
    $('#toast').hidden = true;
    destroyCharts();
    updateDeviceLive.armed = false;
    const root = $('#view');
    root.replaceChildren();
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.nav === (state.route.name === 'device' ? 'overview' : state.route.name));
    const r = state.route;
    if (r.name === 'device') viewDevice(root, r.id);
    else if (r.name === 'alerts') viewAlerts(root, r.id);
    else if (r.name === 'security') viewSecurity(root);
    else if (r.name === 'models') viewModels(root);
    else viewOverview(root);
    document.title = 'canary · ' + (r.name === 'device' ? r.id : r.name);
  }

  // ---------- theme, sound ----------
  function applyTheme() {
    const t = localStorage.getItem('canary.theme') || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
    document.documentElement.dataset.theme = t;
    $('#theme').textContent = t === 'dark' ? 'light' : 'dark';
  }
  $('#theme').addEventListener('click', () => {
    localStorage.setItem('canary.theme', document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark');
    applyTheme();
    render();
  });
  const soundBtn = $('#sound');
  const showSound = () => {
    const on = localStorage.getItem('canary.sound') === 'on';
    soundBtn.textContent = on ? 'sound on' : 'sound off';
    soundBtn.setAttribute('aria-pressed', on);
  };
  soundBtn.addEventListener('click', () => {
    localStorage.setItem('canary.sound', localStorage.getItem('canary.sound') === 'on' ? 'off' : 'on');
    showSound();
    stopAlarm();
    renderBanner();
  });
  $('#banner-ack').addEventListener('click', async () => {
    const id = Number($('#banner').dataset.alert);
    const btn = $('#banner-ack');
    btn.disabled = true;
    try { await acknowledge(id); toast(`Alert ${id} acknowledged by ${operator()}.`); } catch (e) { toast(e.message); }
    btn.disabled = false;
  });

  // Statuses age without new data (online → stale → offline): re-evaluate them every 5 s.
  // Only the cards on screen (their "last reading" text) and those whose status changed are
  // redrawn: redrawing all 1,000 of a big fleet took a 120 ms frame every 5 s
  // (make bench-dashboard); a card scrolled into view is redrawn anyway.
  setInterval(() => {
    if (state.route.name !== 'overview') return;
    for (const [id, d] of state.devices) {
      const c = cards.get(id);
      if (onScreen.has(id) || !c || c.el.dataset.status !== deviceStatus(d)) state.dirty.add(id);
    }
    renderTotals();
    schedule();
  }, 5000);
  setInterval(loadStats, 10000);
  setInterval(loadMaxima, 60000);

  applyTheme();
  showSound();
  window.addEventListener('hashchange', render);
  state.route = parseRoute();
  loadSession().then((ok) => { // who is here first: the login page when canaryd asks for one
    if (!ok) return;
    connect(); // first, so nothing committed while the page loads is missed
    return loadAll().then(() => { render(); renderBanner(); renderNavCount(); });
  }).catch((e) => { $('#view').replaceChildren(h('div', { class: 'panel', text: 'Cannot reach canaryd: ' + e.message })); setTimeout(() => location.reload(), 5000); });
})();
