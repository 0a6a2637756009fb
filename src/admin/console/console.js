// Switchyard console: reads /status, /metrics, /v1/explain/dns, /v1/events and /v1/drills of
// the admin API it is served from, and sends admin actions with the token kept in
// sessionStorage (as an Authorization header; never in a cookie or URL). No framework, no build.
// Text from the server is only ever set with textContent, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'switchyard.adminToken';
const THEME_KEY = 'switchyard.theme';
const REFRESH_MS = 2000;
const SAMPLES = 150; // 5 minutes at 2 s
const MAX_EVENTS = 200;
// Sample client locations (networks of the public MaxMind test databases the demo world uses).
const LOCATIONS = [
  { label: 'this node', q: 'client=127.0.0.1' },
  { label: 'GB client', q: 'ecs=81.2.69.160/27' },
  { label: 'US client', q: 'ecs=216.160.83.56/29' },
  { label: 'SE client', q: 'ecs=89.160.20.112/28' },
  { label: 'CN client', q: 'ecs=175.16.199.0/24' },
];
const STATES = {
  up: { icon: '✔', text: 'up' },
  down: { icon: '✖', text: 'down' },
  ejected: { icon: '⚠', text: 'ejected' },
  unchecked: { icon: '?', text: 'unchecked' },
  drain: { icon: '‖', text: 'drained' },
  fail: { icon: '⊘', text: 'failed' },
};
const EVENT_ICONS = { health: '♥', admin: '⚙', reload: '↻', config_error: '⚠', drill: '⚑' };

const state = {
  status: null,
  statusText: '',
  lastEventId: 0,
  samples: [], // [{t, series: Map(key -> value)}]
  polling: null,
  refreshTimer: null,
  dnsAt: 0,
};

// ---- small helpers ----------------------------------------------------------------------

function $(sel, root) { return (root || document).querySelector(sel); }

/** Builds an element: attributes (data-*, class, title, on*), then children (strings or nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || (r.status + ' ' + r.statusText));
  return body;
}

let noticeTimer = null;
function notice(text, kind) {
  const n = $('#notice');
  n.replaceChildren(
    h('span', { class: 'notice-icon', 'aria-hidden': 'true' }, kind === 'error' ? '✖' : '✔'),
    h('span', { id: 'notice-text' }, text),
    h('button', { type: 'button', class: 'quiet', 'aria-label': 'Dismiss', onclick: () => { n.hidden = true; } }, '×'),
  );
  n.className = kind === 'error' ? 'error' : 'ok';
  n.dataset.kind = kind;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, kind === 'error' ? 20000 : 6000);
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}

function pct(x) { return x === null || x === undefined ? '–' : Math.round(x * 1000) / 10 + '%'; }

// ---- token, theme -----------------------------------------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function showTokenState() {
  $('#token-state').textContent = token() ? 'kept for this tab' : 'read-only';
  $('#token').value = '';
  $('#token').placeholder = token() ? '•••••••• (kept)' : 'needed for actions';
}

function initToken() {
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('#token').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    showTokenState();
  });
  $('#token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  });
  showTokenState();
}

function initTheme() {
  const saved = localStorage.getItem(THEME_KEY);
  const dark = saved ? saved === 'dark' : window.matchMedia('(prefers-color-scheme: dark)').matches;
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  $('#theme').addEventListener('click', () => {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    document.documentElement.dataset.theme = next;
    localStorage.setItem(THEME_KEY, next);
  });
}

// ---- actions ----------------------------------------------------------------------------

function confirmDialog(text) {
  const d = $('#confirm');
  $('#confirm-text').textContent = text;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
    $('#confirm-ok').focus();
  });
}

/** Asks, then POSTs `path` with the token; shows the outcome (a refusal visibly). */
async function act(path, what) {
  if (!(await confirmDialog(what + '?'))) return;
  const headers = {};
  if (token()) headers.Authorization = 'Bearer ' + token();
  let r;
  try {
    r = await fetch(path, { method: 'POST', headers, cache: 'no-store' });
  } catch (e) {
    notice('Could not reach the admin API: ' + e.message, 'error');
    return;
  }
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) {
    notice('Refused (401): ' + (token() ? 'the admin token is wrong' : 'enter the admin token first') + '. Nothing changed.', 'error');
  } else if (!r.ok) {
    const errs = body.errors ? ': ' + body.errors.join('; ') : '';
    notice('Refused (' + r.status + '): ' + (body.error || 'failed') + errs, 'error');
  } else {
    notice('Done: ' + what + (body.changed === false ? ' (it already was)' : ''), 'ok');
  }
  scheduleRefresh(50);
}

function adminButtons(kind, name, mode) {
  const base = '/v1/' + kind + 's/' + encodeURIComponent(name) + '/';
  const label = kind + ' ' + name;
  const b = (action, text) => h('button', {
    type: 'button', class: 'action small', 'data-action': action,
    onclick: () => act(base + action, capital(text) + ' ' + label),
  }, text);
  return h('span', { class: 'buttons' },
    mode === 'drain' ? b('undrain', 'undrain') : b('drain', 'drain'),
    mode === 'fail' ? b('restore', 'restore') : b('fail', 'fail'));
}

function capital(s) { return s.charAt(0).toUpperCase() + s.slice(1); }

function instanceMenu(inst) {
  const opts = [['', 'actions…']];
  opts.push(inst.admin === 'drain' ? ['undrain', 'undrain'] : ['drain', 'drain']);
  opts.push(inst.admin === 'fail' ? ['restore', 'restore'] : ['fail', 'fail']);
  if (inst.demo !== undefined) opts.push(inst.demo ? ['stop', 'stop the process'] : ['start', 'start the process']);
  const sel = h('select', { class: 'small', 'aria-label': 'Actions for ' + inst.name, 'data-instance-actions': inst.name },
    opts.map(([v, t]) => h('option', { value: v }, t)));
  sel.addEventListener('change', () => {
    const v = sel.value;
    sel.value = '';
    if (!v) return;
    const n = encodeURIComponent(inst.name);
    if (v === 'stop' || v === 'start') act('/v1/demo/instances/' + n + '/' + v, capital(v) + ' demo instance ' + inst.name);
    else act('/v1/instances/' + n + '/' + v, capital(v) + ' instance ' + inst.name);
  });
  return sel;
}

// ---- world ------------------------------------------------------------------------------

/** The state shown for one backend: admin (own, AZ's or region's) first, then health. */
function stateOf(x, inherited) {
  const admin = x.admin || inherited;
  if (admin === 'fail') return 'fail';
  if (admin === 'drain') return 'drain';
  if (x.health === 'down' && x.ejected_for_ms) return 'ejected';
  if (x.health === 'unchecked' || x.active_check === 'unchecked') return x.health === 'down' ? 'down' : 'unchecked';
  return x.health === 'up' ? 'up' : 'down';
}

function instanceRow(x, kind, inherited) {
  const st = stateOf(x, inherited);
  const s = STATES[st];
  const why = [
    x.name + ' — ' + kind + ' ' + (x.addr || x.listen || ''),
    'state: ' + s.text + (x.admin ? ' (admin: ' + x.admin + ')' : inherited ? ' (via ' + inherited + ' of its AZ/region)' : ''),
    'health check: ' + (x.active_check || x.health),
    'reason: ' + (x.reason || '–'),
  ];
  if (x.check_reason && x.check_reason !== x.reason) why.push('check says: ' + x.check_reason);
  if (x.last_check_ms_ago !== undefined && x.last_check_ms_ago !== null) {
    why.push('last check: ' + (x.last_check_ms_ago / 1000).toFixed(1) + ' s ago, ' + (x.last_check_ok ? 'ok' : 'failed'));
  }
  if (x.rise !== undefined && x.rise !== null) {
    // the streak counts results that disagree with the verdict: toward rise when down, fall when up
    const need = x.active_check === 'down' ? 'rise ' + x.check_streak + '/' + x.rise : 'fall ' + x.check_streak + '/' + x.fall;
    why.push('rise/fall: ' + need + ' (rise ' + x.rise + ', fall ' + x.fall + ')');
  }
  if (x.passive_failures !== undefined) {
    why.push('passive: ' + x.passive_failures + ' connect failures in a row, ' + (x.ejections || 0) + ' ejections since the last success');
  }
  if (x.ejected_for_ms) why.push('passively ejected for another ' + (x.ejected_for_ms / 1000).toFixed(1) + ' s');
  if (x.active_connections !== undefined) why.push('connections: ' + x.active_connections + ' open, ' + x.total_connections + ' total');
  if (x.demo_running === false) why.push('demo process stopped');
  const inst = { name: x.name, admin: x.admin, demo: x.demo_running };
  return h('li', { class: 'inst st-' + st, 'data-kind': 'instance', 'data-name': x.name, 'data-state': st, title: why.join('\n') },
    h('span', { class: 'st-icon', 'aria-hidden': 'true' }, s.icon),
    h('span', { class: 'inst-name' }, x.name),
    h('span', { class: 'st-text' }, s.text),
    x.demo_running === false ? h('span', { class: 'st-text stopped' }, '■ process stopped') : null,
    (st === 'down' || st === 'ejected' || st === 'unchecked') && x.reason ? h('span', { class: 'reason' }, x.reason) : null,
    instanceMenu(inst));
}

function group(title, items) {
  if (!items.length) return null;
  return h('div', { class: 'group' }, h('h5', {}, title), h('ul', { class: 'insts' }, items));
}

function renderWorld(s) {
  const world = $('#world');
  // keep an open menu usable: skip a redraw while one has focus
  if (world.contains(document.activeElement) && document.activeElement.tagName === 'SELECT') return;
  const services = (s.services || []).flatMap((svc) => svc.instances.map((i) => Object.assign({ service: svc.name }, i)));
  const regions = (s.regions || []).map((r) => {
    const azs = r.azs.map((az) => {
      const inherited = az.admin || r.admin || null;
      const members = r.pools.flatMap((p) => p.members.filter((m) => m.az === az.name).map((m) => instanceRow(m, 'L4 member of ' + p.name, inherited)));
      const gws = (s.gateway_instances || []).filter((g) => g.region === r.name && g.az === az.name).map((g) => instanceRow(g, 'gateway', inherited));
      const svcs = services.filter((i) => i.region === r.name && i.az === az.name).map((i) => instanceRow(i, 'service ' + i.service, inherited));
      const share = az.share;
      return h('div', { class: 'az' + (az.admin ? ' admin-' + az.admin : ''), 'data-kind': 'az', 'data-name': az.name, 'data-admin': az.admin || 'none' },
        h('div', { class: 'az-head' },
          h('h4', {}, az.name),
          az.admin ? h('span', { class: 'badge st-' + az.admin }, STATES[az.admin].icon + ' ' + STATES[az.admin].text) : null,
          adminButtons('az', az.name, az.admin)),
        h('div', { class: 'share', title: 'Share of this region\'s L4 traffic the selector gives this AZ now (weight ' + az.weight + ')' },
          h('span', { class: 'share-bar' }, h('span', { class: 'share-fill', style: null, 'data-share': share === null ? '' : share })),
          h('span', { class: 'share-text', 'data-share-of': az.name }, 'share ' + pct(share))),
        group('L4 members', members),
        group('Gateways', gws),
        group('Services', svcs));
    });
    return h('article', { class: 'region' + (r.admin ? ' admin-' + r.admin : ''), 'data-kind': 'region', 'data-name': r.name, 'data-admin': r.admin || 'none' },
      h('div', { class: 'region-head' },
        h('h3', {}, r.name),
        h('span', { class: 'muted' }, 'VIP ' + r.vips.join(', ') + (r.runs_here ? '' : ' · not run by this node')),
        r.admin ? h('span', { class: 'badge st-' + r.admin }, STATES[r.admin].icon + ' ' + STATES[r.admin].text) : null,
        adminButtons('region', r.name, r.admin)),
      h('div', { class: 'azs' }, azs));
  });
  world.replaceChildren(...regions);
  // widths are set from the DOM (CSP forbids inline style attributes in markup)
  for (const f of world.querySelectorAll('.share-fill')) {
    const v = parseFloat(f.dataset.share);
    f.style.width = (isNaN(v) ? 0 : Math.max(0, Math.min(1, v)) * 100) + '%';
  }
}

/** One line: how many backends are in each state, as drawn (after renderWorld). */
function renderSummary(s) {
  const count = {};
  const rows = document.querySelectorAll('#world [data-kind=instance]');
  for (const el of rows) count[el.dataset.state] = (count[el.dataset.state] || 0) + 1;
  const parts = ['up', 'down', 'ejected', 'unchecked', 'drain', 'fail']
    .filter((k) => count[k]).map((k) => count[k] + ' ' + STATES[k].text);
  const overrides = (s.admin_overrides || []).length;
  $('#summary').textContent = 'v' + s.version + ' · ' + (s.regions || []).length + ' regions · ' + rows.length + ' backends: ' +
    parts.join(', ') + (overrides ? ' · ' + overrides + ' admin override' + (overrides > 1 ? 's' : '') : '') +
    (s.ready ? '' : ' · starting');
}

async function refreshStatus() {
  try {
    const s = await getJSON('/status');
    const text = JSON.stringify(s);
    state.status = s;
    if (text !== state.statusText) {
      state.statusText = text;
      renderWorld(s);
      renderSummary(s);
    }
    if (Date.now() - state.dnsAt > 10000) refreshDns();
  } catch (e) {
    $('#summary').textContent = 'admin API unreachable: ' + e.message;
  }
}

function scheduleRefresh(ms) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => { refreshStatus(); refreshDns(); }, ms);
}

// ---- DNS --------------------------------------------------------------------------------

function explainCells(ex) {
  const c = ex.client || {};
  const where = [c.country, c.continent].filter(Boolean).join(', ');
  const why = [ex.matched];
  for (const sk of ex.skipped || []) why.push('skipped ' + sk.region + ' (' + (typeof sk.state === 'string' ? sk.state : JSON.stringify(sk.state)) + ')');
  if (ex.all_down) why.push('all down: ' + ex.all_down);
  return {
    client: (c.network || '–') + (where ? ' (' + where + ')' : ''),
    region: (ex.chosen || []).join(', ') || 'none',
    answer: (ex.addresses || []).join(', ') + ' ttl ' + ex.ttl + (ex.ecs_scope ? ' scope /' + ex.ecs_scope : ''),
    why: why.filter(Boolean).join('; '),
  };
}

async function refreshDns() {
  state.dnsAt = Date.now();
  const names = ((state.status && state.status.dns) || []).map((d) => d.name);
  const rows = [];
  for (const name of names) {
    for (const loc of LOCATIONS) {
      try {
        const ex = await getJSON('/v1/explain/dns?name=' + encodeURIComponent(name) + '&' + loc.q);
        const c = explainCells(ex);
        rows.push(h('tr', { 'data-dns-name': name, 'data-location': loc.label },
          h('td', {}, name), h('td', {}, loc.label + ' · ' + c.client), h('td', { class: 'dns-region' }, c.region),
          h('td', {}, c.answer), h('td', { class: 'why' }, c.why)));
      } catch (e) {
        rows.push(h('tr', {}, h('td', {}, name), h('td', {}, loc.label), h('td', { colspan: 3 }, 'error: ' + e.message)));
      }
    }
  }
  if (!names.length) rows.push(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'this node runs no GSLB names')));
  $('#dns-table tbody').replaceChildren(...rows);
}

function initExplain() {
  $('#explain-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = $('#explain-input').value.trim();
    const out = $('#explain-result');
    if (!v) return;
    const names = ((state.status && state.status.dns) || []).map((d) => d.name);
    const q = v.includes('/') ? 'ecs=' + encodeURIComponent(v) : 'client=' + encodeURIComponent(v);
    const parts = [];
    for (const name of names) {
      try {
        const c = explainCells(await getJSON('/v1/explain/dns?name=' + encodeURIComponent(name) + '&' + q));
        parts.push(h('p', { class: 'explained' }, h('strong', {}, name), ' for ' + v + ' (' + c.client + '): ', h('strong', {}, c.region), ' → ' + c.answer + '. ' + c.why));
      } catch (err) {
        parts.push(h('p', { class: 'explained error-text' }, name + ': ' + err.message));
      }
    }
    out.replaceChildren(...parts);
  });
}

// ---- rates ------------------------------------------------------------------------------

/** Parses Prometheus text into [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: parseFloat(m[4]) });
  }
  return out;
}

// name, label keys to group by, 'rate' (per second) or 'gauge', unit, optional label map
const CHARTS = [
  { title: 'DNS answers/s by region', metric: 'switchyard_dns_gslb_answers_total', by: ['region'], kind: 'rate', unit: '/s' },
  { title: 'DNS queries/s', metric: 'switchyard_dns_queries_total', by: [], kind: 'rate', unit: '/s' },
  { title: 'L4 connections/s by listener', metric: 'switchyard_lb_accepted_total', by: ['listener'], kind: 'rate', unit: '/s' },
  { title: 'L4 open connections by backend', metric: 'switchyard_lb_backend_active_connections', by: null, kind: 'gauge', unit: '' },
  { title: 'Gateway requests/s by route and status', metric: 'switchyard_gateway_requests_total', by: ['route', 'status'], kind: 'rate', unit: '/s', statusClass: true },
  { title: 'Gateway latency p50 / p99', metric: 'switchyard_gateway_request_duration_seconds', by: ['route', 'quantile'], kind: 'gauge', unit: ' ms', quantiles: ['0.5', '0.99'], scale: 1000 },
];

function seriesKey(c, labels) {
  if (c.quantiles && !c.quantiles.includes(labels.quantile)) return null;
  if (c.by === null) return Object.values(labels).join(' ') || 'all';
  const vals = c.by.map((k) => {
    let v = labels[k];
    if (v === undefined) return null;
    if (c.statusClass && k === 'status' && /^\d{3}$/.test(v)) v = v[0] + 'xx';
    if (k === 'quantile') v = 'p' + (parseFloat(v) * 100);
    return v;
  }).filter((v) => v !== null);
  return vals.join(' ') || 'all';
}

async function refreshMetrics() {
  let text;
  try {
    const r = await fetch('/metrics', { cache: 'no-store' });
    text = await r.text();
  } catch (e) { return; }
  const t = Date.now();
  const series = new Map();
  for (const m of parseMetrics(text)) {
    CHARTS.forEach((c, i) => {
      if (m.name !== c.metric) return;
      const k = seriesKey(c, m.labels);
      if (k === null) return;
      const key = i + '|' + k;
      series.set(key, (c.kind === 'gauge' && c.quantiles ? 0 : series.get(key) || 0) + m.value * (c.scale || 1));
    });
  }
  state.samples.push({ t, series });
  if (state.samples.length > SAMPLES) state.samples.shift();
  renderRates();
}

function sparkline(points) {
  const W = 160, H = 36;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('aria-hidden', 'true');
  const max = Math.max(1e-9, ...points);
  const n = Math.max(2, points.length);
  const xy = points.map((v, i) => ((i / (n - 1)) * W).toFixed(1) + ',' + (H - 2 - (v / max) * (H - 4)).toFixed(1));
  const pl = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  pl.setAttribute('points', xy.join(' '));
  svg.append(pl);
  return svg;
}

function renderRates() {
  const s = state.samples;
  const cards = [];
  CHARTS.forEach((c, i) => {
    const keys = new Set();
    for (const sm of s) for (const k of sm.series.keys()) if (k.startsWith(i + '|')) keys.add(k);
    const rows = [];
    for (const key of [...keys].sort()) {
      const pts = [];
      for (let j = 1; j < s.length; j++) {
        const a = s[j - 1], b = s[j];
        const vb = b.series.get(key);
        if (vb === undefined) { pts.push(0); continue; }
        if (c.kind === 'rate') {
          const va = a.series.get(key) || 0;
          pts.push(Math.max(0, (vb - va) / ((b.t - a.t) / 1000)));
        } else pts.push(vb);
      }
      if (c.kind === 'gauge' && s.length === 1) pts.push(s[0].series.get(key) || 0);
      const now = pts.length ? pts[pts.length - 1] : 0;
      rows.push(h('div', { class: 'rate-row' },
        h('span', { class: 'rate-key' }, key.slice(key.indexOf('|') + 1)),
        sparkline(pts),
        h('span', { class: 'rate-now' }, (Math.round(now * 10) / 10) + c.unit)));
    }
    cards.push(h('div', { class: 'rate-card' }, h('h4', {}, c.title),
      rows.length ? rows : h('p', { class: 'muted' }, s.length < 2 ? 'collecting…' : 'no traffic yet')));
  });
  $('#rates').replaceChildren(...cards);
}

// ---- events -----------------------------------------------------------------------------

function addEvent(ev) {
  if (ev.id <= state.lastEventId) return;
  state.lastEventId = ev.id;
  const list = $('#events');
  const icon = EVENT_ICONS[ev.kind] || '•';
  list.prepend(h('li', { class: 'ev ev-' + ev.kind + ' ev-state-' + ev.state, 'data-event-id': ev.id },
    h('time', { datetime: new Date(ev.time_ms).toISOString() }, fmtTime(ev.time_ms)),
    h('span', { class: 'ev-icon', 'aria-hidden': 'true' }, icon),
    h('span', { class: 'ev-kind' }, ev.kind.replace('_', ' ')),
    h('span', { class: 'ev-target' }, ev.target),
    h('span', { class: 'ev-state' }, ev.state + (ev.revision ? ' (rev ' + ev.revision + ')' : '')),
    h('span', { class: 'ev-detail' }, ev.detail)));
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  if (ev.kind === 'drill') refreshDrills();
  else scheduleRefresh(100);
}

function setLive(mode) {
  const el = $('#live');
  el.textContent = mode === 'live' ? '● live' : mode === 'polling' ? '↻ polling' : '… ' + mode;
  el.dataset.mode = mode;
  el.className = 'pill live-' + mode;
}

function startPolling() {
  if (state.polling) return;
  setLive('polling');
  state.polling = setInterval(async () => {
    try {
      const r = await getJSON('/v1/events?since=' + state.lastEventId);
      r.events.forEach(addEvent);
    } catch (e) { /* the status line says the API is unreachable */ }
  }, REFRESH_MS);
}

function startEvents() {
  if (!window.EventSource) { startPolling(); return; }
  const es = new EventSource('/v1/events?since=' + state.lastEventId);
  let failures = 0;
  const onEvent = (e) => { try { addEvent(JSON.parse(e.data)); } catch (err) { /* ignore a malformed event */ } };
  for (const k of Object.keys(EVENT_ICONS)) es.addEventListener(k, onEvent);
  es.onopen = () => { failures = 0; setLive('live'); };
  es.onerror = () => {
    failures += 1;
    if (failures >= 3 || es.readyState === 2) { es.close(); startPolling(); } else setLive('reconnecting');
  };
}

// ---- drills -----------------------------------------------------------------------------

async function refreshDrills() {
  let d;
  try { d = await getJSON('/v1/drills'); } catch (e) { return; }
  const sel = $('#drill-scenario');
  if (!sel.options.length) sel.replaceChildren(...d.builtin.map((n) => h('option', { value: n }, n)));
  const rows = d.drills.map((r) => {
    const icon = { running: '⏳', passed: '✔', failed: '✖', error: '⚠' }[r.state] || '•';
    const exp = Array.isArray(r.expectations) ? r.expectations.filter((x) => x.pass).length + '/' + r.expectations.length + ' expectations held' : '';
    return h('li', { class: 'drill drill-' + r.state, 'data-drill': r.id },
      h('span', { class: 'drill-state' }, icon + ' ' + r.state),
      h('strong', {}, '#' + r.id + ' ' + r.scenario),
      h('span', { class: 'muted' }, fmtTime(r.started_ms)),
      r.requests !== null ? h('span', {}, r.requests + ' requests, ' + r.failed + ' failed') : null,
      r.time_to_detect_ms !== null && r.time_to_detect_ms !== undefined ? h('span', {}, 'detected in ' + r.time_to_detect_ms + ' ms') : null,
      exp ? h('span', {}, exp) : null,
      r.timeline ? h('details', {}, h('summary', {}, 'timeline'), h('img', { src: r.timeline, alt: 'timeline of drill ' + r.id, class: 'timeline' })) : null);
  });
  $('#drills').replaceChildren(rows.length ? h('ul', { class: 'drills' }, rows) : h('p', { class: 'muted' }, 'No drill started from this console yet (drills run with the CLI report to their own folder).'));
}

function initDrills() {
  $('#drill-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const s = $('#drill-scenario').value;
    if (s) act('/v1/drills/' + encodeURIComponent(s), 'Start the ' + s + ' drill against this node (it breaks things on purpose for about a minute)');
  });
}

// ---- start ------------------------------------------------------------------------------

async function main() {
  initTheme();
  initToken();
  initExplain();
  initDrills();
  $('#reload').addEventListener('click', () => act('/v1/reload', 'Reload the configuration'));
  await refreshStatus();
  try {
    const r = await getJSON('/v1/events');
    r.events.forEach(addEvent);
  } catch (e) { /* shown by the status line */ }
  startEvents();
  refreshDns();
  refreshDrills();
  refreshMetrics();
  setInterval(refreshStatus, REFRESH_MS);
  setInterval(refreshMetrics, REFRESH_MS);
}

document.addEventListener('DOMContentLoaded', main);
