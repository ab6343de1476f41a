/* console.js -- rewind's web console: plain JavaScript over the HTTP API of
 * the rewindd that serves it (man/rewindd.8, WEB CONSOLE). No framework, no
 * build step; Chart.js (Debian's libjs-chart.js) draws the timeline. The
 * page asks nothing of any other host (the server's Content-Security-Policy
 * would refuse it anyway). */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const NS = 1e6; // milliseconds -> nanoseconds, for display only

  const st = {
    token: sessionStorage.getItem('rewind.token') || '',
    open: false,       // the API answers without a token
    caps: {},          // route -> 'yes' | 'no' (403) | 'absent' (404)
    status: null,      // /api/v1/status
    view: { from: '', to: '' }, // the timeline's window (RFC 3339, '' = open end)
    sel: null,         // { from, to } selected by dragging (ms)
    filter: '',        // the filter applied (checked by the server)
    metric: 'bytes',
    tab: '',
    chart: null,
    tl: null,          // the last /api/v1/timeline answer
    flows: [],
    sort: { k: 'bytes', dir: -1 },
    gen: 0,            // bumps on every change of window/filter: late answers are dropped
  };
  window.rewindConsole = st; // for the tests and the curious

  /* ---------------------------------------------------------------- API */

  function url(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {}))
      if (v !== undefined && v !== null && v !== '') q.append(k, v);
    const s = q.toString();
    return path + (s ? '?' + s : '');
  }

  async function api(path, params, method) {
    const h = {};
    if (st.token) h.Authorization = 'Bearer ' + st.token;
    let r;
    try {
      r = await fetch(url(path, params), { method: method || 'GET', headers: h, cache: 'no-store' });
    } catch (e) {
      return { status: 0, ok: false, message: 'the server did not answer (' + e.message + ')' };
    }
    const out = { status: r.status, ok: r.ok, headers: r.headers, body: null, message: '' };
    if (method === 'HEAD') return out;
    const ct = r.headers.get('Content-Type') || '';
    if (ct.startsWith('application/json')) {
      try { out.body = await r.json(); } catch (e) { out.body = null; }
    } else {
      out.body = await r.blob();
    }
    if (!r.ok) {
      const e = out.body && out.body.error;
      out.message = e ? e.message : 'HTTP ' + r.status;
    }
    return out;
  }

  /* What the token may do, asked of the server itself: each route with an
   * empty window, as HEAD. 403 means the role may not; 404 that this server
   * has no such route. */
  async function probe() {
    const w = { from: '0', to: '1' };
    const asks = {
      status: ['/api/v1/status', {}],
      flows: ['/api/v1/flows', Object.assign({ limit: '1' }, w)],
      packets: ['/api/v1/packets', Object.assign({ payload: 'headers' }, w)],
      payload: ['/api/v1/packets', Object.assign({ payload: 'full' }, w)],
      holds: ['/api/v1/holds', {}],
      segments: ['/api/v1/segments', w],
      smtp: ['/api/v1/smtp', Object.assign({ limit: '1' }, w)],
      voip: ['/api/v1/voip/calls', Object.assign({ limit: '1' }, w)],
      cases: ['/api/v1/cases', {}],
    };
    const names = Object.keys(asks);
    const rs = await Promise.all(names.map((n) => api(asks[n][0], asks[n][1], 'HEAD')));
    names.forEach((n, i) => {
      const s = rs[i].status;
      st.caps[n] = s >= 200 && s < 300 ? 'yes' : s === 404 ? 'absent' : s === 401 ? 'login' : 'no';
    });
    return st.caps;
  }

  /* ------------------------------------------------------------ helpers */

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  function fmtNum(n) { return n === undefined || n === null ? '' : Number(n).toLocaleString('en'); }
  function fmtBytes(n) {
    if (n === undefined || n === null) return '';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0, v = Number(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : v) + ' ' + u[i];
  }
  function iso(ms) { return new Date(ms).toISOString(); }
  function ms(t) { return t ? Date.parse(t) : NaN; }
  function short(t) { return t ? t.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : ''; }
  function setText(id, s, cls) {
    const e = $(id);
    e.textContent = s || '';
    if (cls !== undefined) e.className = cls;
  }
  function fillTable(tbody, rows) {
    tbody.replaceChildren(...rows);
  }
  function genericTable(table, rows) {
    const keys = rows.length ? Object.keys(rows[0]).filter((k) => typeof rows[0][k] !== 'object') : [];
    table.tHead.replaceChildren(el('tr', {}, ...keys.map((k) => el('th', {}, k))));
    fillTable(table.tBodies[0], rows.map((r) => el('tr', {}, ...keys.map((k) => el('td', {}, r[k])))));
  }

  /* Save a download: a plain link when the API is open (the browser
   * streams it), else fetched with the token (never in the URL) and saved
   * from memory. */
  async function download(path, params, fallbackName, msgId, method) {
    setText(msgId, '');
    const u = url(path, params);
    if (!st.token && !method) {
      const a = el('a', { href: u, download: '' });
      document.body.append(a);
      a.click();
      a.remove();
      return;
    }
    setText(msgId, 'fetching…', 'muted');
    const r = await fetch(u, { method: method || 'GET', cache: 'no-store',
      headers: st.token ? { Authorization: 'Bearer ' + st.token } : {} });
    if (!r.ok) {
      let m = 'HTTP ' + r.status;
      try { m = (await r.json()).error.message; } catch (e) { /* not JSON */ }
      setText(msgId, m, 'error');
      return;
    }
    const cd = r.headers.get('Content-Disposition') || '';
    const m = /filename="?([^";]+)"?/.exec(cd);
    const blob = await r.blob();
    const a = el('a', { href: URL.createObjectURL(blob), download: m ? m[1] : fallbackName });
    document.body.append(a);
    a.click();
    a.remove();
    setText(msgId, '');
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }

  /* --------------------------------------------------------- the URL */

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    st.view.from = h.get('from') || '';
    st.view.to = h.get('to') || '';
    st.viewAll = h.get('all') === '1';
    st.filter = h.get('filter') || '';
    const sf = ms(h.get('sfrom')), sto = ms(h.get('sto'));
    st.sel = isNaN(sf) || isNaN(sto) || sto <= sf ? null : { from: sf, to: sto };
    st.tab = h.get('tab') || '';
  }
  function writeHash() {
    const h = new URLSearchParams();
    if (st.tab) h.set('tab', st.tab);
    if (st.view.from) h.set('from', st.view.from);
    if (st.view.to) h.set('to', st.view.to);
    if (!st.view.from && !st.view.to) h.set('all', '1');
    if (st.sel) { h.set('sfrom', iso(st.sel.from)); h.set('sto', iso(st.sel.to)); }
    if (st.filter) h.set('filter', st.filter);
    history.replaceState(null, '', '#' + h.toString());
  }

  /* The window the panels answer for: the selection, else the view. */
  function win() {
    if (st.sel) return { from: iso(st.sel.from), to: iso(st.sel.to) };
    if ((!st.view.from || !st.view.to) && st.tl) return { from: st.tl.from, to: st.tl.to };
    return { from: st.view.from, to: st.view.to };
  }

  /* ---------------------------------------------------------- timeline */

  const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
    43200, 86400];
  function stepFor(span) {
    for (const s of STEPS) if (span / s <= 600) return s;
    return 86400;
  }

  async function loadTimeline() {
    const g = st.gen;
    let from = st.view.from, to = st.view.to;
    let span = ms(to) - ms(from);
    if (isNaN(span)) {
      const s = st.status;
      span = s && s.oldest && s.newest ? ms(s.newest) - ms(s.oldest) : 86400e3;
    }
    const step = stepFor(Math.max(span, 1000) / 1000);
    setText('timeline-msg', 'loading the timeline…', 'muted');
    const r = await api('/api/v1/timeline', { from, to, filter: st.filter, step: step + 's' });
    if (g !== st.gen) return;
    if (!r.ok) {
      setText('timeline-msg', 'timeline: ' + r.message, 'error');
      return;
    }
    st.tl = r.body;
    drawTimeline();
  }

  const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
    '#7f7f7f', '#bcbd22', '#17becf'];

  function drawTimeline() {
    const tl = st.tl;
    if (!tl) return;
    const t0 = ms(tl.from), step = tl.step * 1000;
    let tp = 0, tb = 0;
    const drops = {};
    for (const p of (st.status && st.status.points) || [])
      if (p.kernel_drops || p.queue_drops) drops[p.name] = p;
    const sets = tl.points.map((p, i) => {
      p.packets.forEach((v) => { tp += v; });
      p.bytes.forEach((v) => { tb += v; });
      const vals = st.metric === 'bytes' ? p.bytes : p.packets;
      const d = drops[p.point];
      return {
        label: p.point + (d ? ' (drops: ' + fmtNum(d.kernel_drops) + ' kernel, ' +
          fmtNum(d.queue_drops) + ' queue)' : ''),
        data: vals.map((v, j) => ({ x: t0 + j * step, y: v / tl.step })),
        borderColor: d ? '#d00' : COLORS[i % COLORS.length],
        backgroundColor: d ? '#d00' : COLORS[i % COLORS.length],
        borderDash: d ? [6, 3] : [],
        pointRadius: 0, borderWidth: 1.5, stepped: 'before', fill: false,
      };
    });
    tl.total_packets = tp;
    tl.total_bytes = tb;
    setText('timeline-msg', short(tl.from) + ' to ' + short(tl.to) + ', step ' + tl.step +
      ' s: ' + fmtNum(tp) + ' packets, ' + fmtNum(tb) + ' bytes' +
      (st.filter ? ' matching the filter' : '') + ' (' + tl.source + ')', 'muted');
    $('timeline-msg').dataset.packets = tp;
    $('timeline-msg').dataset.bytes = tb;
    const dl = Object.values(drops);
    $('drops').hidden = !dl.length;
    $('drops').textContent = dl.length ? 'Kernel/queue drops (over each point\'s whole capture, ' +
      'drawn dashed red): ' + dl.map((p) => p.name + ' ' + fmtNum(p.kernel_drops) + ' kernel, ' +
      fmtNum(p.queue_drops) + ' queue').join('; ') : '';
    if (!window.Chart) {
      setText('timeline-msg', 'the chart library is missing (/ui/vendor/chart.min.js: make deps ' +
        'and make): ' + $('timeline-msg').textContent, 'error');
      return;
    }
    const xmin = ms(tl.from), xmax = ms(tl.to);
    if (st.chart) {
      st.chart.data.datasets = sets;
      st.chart.options.scales.x.min = xmin;
      st.chart.options.scales.x.max = xmax;
      st.chart.options.scales.y.title.text = st.metric + '/s';
      st.chart.update('none');
    } else {
      st.chart = new window.Chart($('timeline'), {
        type: 'line',
        data: { datasets: sets },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
          normalized: true, interaction: { mode: 'nearest', axis: 'x', intersect: false },
          scales: {
            x: { type: 'linear', min: xmin, max: xmax,
              ticks: { maxRotation: 0, callback: (v) => tick(v) } },
            y: { beginAtZero: true, title: { display: true, text: st.metric + '/s' } },
          },
          plugins: { legend: { position: 'bottom' },
            tooltip: { callbacks: { title: (it) => it.length ? iso(it[0].parsed.x) : '' } } },
        },
      });
    }
    showSel();
  }

  function tick(v) {
    const tl = st.tl;
    const span = tl ? ms(tl.to) - ms(tl.from) : 0;
    const s = iso(v);
    if (span > 3 * 86400e3) return s.slice(0, 10);
    if (span > 86400e3) return s.slice(5, 16).replace('T', ' ');
    if (span > 60e3) return s.slice(11, 16);
    return s.slice(11, 23);
  }

  /* Dragging over the chart selects a window; a double click forgets it. */
  function setupDrag() {
    const c = $('timeline'), box = $('drag');
    let x0 = null;
    const px = (ev) => ev.clientX - c.getBoundingClientRect().left;
    c.addEventListener('mousedown', (ev) => {
      if (!st.chart) return;
      x0 = px(ev);
      box.hidden = false;
      box.style.left = x0 + 'px';
      box.style.width = '0px';
      ev.preventDefault();
    });
    window.addEventListener('mousemove', (ev) => {
      if (x0 === null) return;
      const x = Math.max(0, Math.min(px(ev), c.clientWidth));
      box.style.left = Math.min(x, x0) + 'px';
      box.style.width = Math.abs(x - x0) + 'px';
    });
    window.addEventListener('mouseup', (ev) => {
      if (x0 === null) return;
      const x1 = Math.max(0, Math.min(px(ev), c.clientWidth));
      const a = Math.min(x0, x1), b = Math.max(x0, x1);
      x0 = null;
      if (b - a < 3) { showSel(); return; }
      const xs = st.chart.scales.x;
      const lo = Math.max(xs.getValueForPixel(a), ms(st.tl.from));
      const hi = Math.min(xs.getValueForPixel(b), ms(st.tl.to));
      if (hi <= lo) { showSel(); return; }
      st.sel = { from: Math.floor(lo), to: Math.ceil(hi) };
      changed(false);
    });
    c.addEventListener('dblclick', () => { st.sel = null; changed(false); });
  }

  function showSel() {
    const box = $('drag');
    const w = win();
    setText('sel-text', short(w.from) + ' to ' + short(w.to) + (st.sel ? ' (selected)' : ' (the whole view)') +
      (st.filter ? ', filter: ' + st.filter : ''));
    if (!st.sel || !st.chart) { box.hidden = true; return; }
    const xs = st.chart.scales.x;
    const a = xs.getPixelForValue(st.sel.from), b = xs.getPixelForValue(st.sel.to);
    box.hidden = false;
    box.style.left = Math.max(a, xs.left) + 'px';
    box.style.width = Math.max(2, Math.min(b, xs.right) - Math.max(a, xs.left)) + 'px';
  }

  /* ------------------------------------------------ top talkers, flows */

  async function loadTop() {
    const g = st.gen, w = win(), by = $('top-by').value;
    setText('top-msg', 'loading…', 'muted');
    const r = await api('/api/v1/top', { from: w.from, to: w.to, filter: st.filter, by, limit: '10' });
    if (g !== st.gen) return;
    const t = $('top');
    if (!r.ok) {
      setText('top-msg', r.message, 'error');
      fillTable(t.tBodies[0], []);
      return;
    }
    const key = (row) => by === 'pair' ? row.a + ' ⇄ ' + row.b : by === 'src' || by === 'dst' ?
      row.address : by === 'proto' ? (row.name || row.proto) : row[by];
    setText('top-msg', fmtNum(r.body.talkers) + ' ' + (by === 'pair' ? 'pairs' : by + 's') + ', ' +
      fmtNum(r.body.packets) + ' packets, ' + fmtNum(r.body.bytes) + ' bytes', 'muted');
    t.tHead.replaceChildren(el('tr', {}, el('th', {}, by), el('th', { class: 'num' }, 'packets'),
      el('th', { class: 'num' }, 'bytes')));
    fillTable(t.tBodies[0], r.body.top.map((row) => el('tr', {}, el('td', {}, key(row)),
      el('td', { class: 'num' }, fmtNum(row.packets)), el('td', { class: 'num' }, fmtNum(row.bytes)))));
  }

  async function loadFlows() {
    const g = st.gen, w = win();
    setText('flows-msg', 'loading…', 'muted');
    const r = await api('/api/v1/flows', { from: w.from, to: w.to, filter: st.filter, limit: '500' });
    if (g !== st.gen) return;
    if (!r.ok) {
      st.flows = [];
      renderFlows();
      setText('flows-msg', r.message, 'error');
      return;
    }
    st.flows = r.body.flows;
    setText('flows-count', '(' + fmtNum(r.body.returned) + ' of ' + fmtNum(r.body.matched) + ')');
    setText('flows-msg', r.body.matched > r.body.returned ? 'the ' + r.body.returned +
      ' largest by bytes; narrow the selection or the filter for the rest' : '', 'muted');
    renderFlows();
  }

  function flowCell(f, k) {
    if (k === 'sport' || k === 'dport')
      return f[k] !== undefined ? f[k] : (k === 'sport' && f.icmp_type !== undefined ?
        'type ' + f.icmp_type : k === 'dport' && f.icmp_code !== undefined ? 'code ' + f.icmp_code : '');
    if (k === 'proto_name') return f.proto_name || f.proto;
    if (k === 'first') return short(f.first);
    if (k === 'packets' || k === 'bytes') return fmtNum(f[k]);
    return f[k] === undefined ? '' : f[k];
  }

  function renderFlows(highlight) {
    const { k, dir } = st.sort;
    const rows = st.flows.slice().sort((a, b) => {
      const x = a[k], y = b[k];
      if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
      return String(x === undefined ? '' : x).localeCompare(String(y === undefined ? '' : y)) * dir;
    });
    const cols = [...$('flows').tHead.rows[0].cells].map((th) => th.dataset.k);
    for (const th of $('flows').tHead.rows[0].cells)
      th.className = (th.classList.contains('num') ? 'num ' : '') +
        (th.dataset.k === k ? (dir > 0 ? 'asc' : 'desc') : '');
    fillTable($('flows').tBodies[0], rows.map((f) => {
      const tr = el('tr', { class: 'flow' + (highlight && f.community_id === highlight ? ' hl' : ''),
        'data-cid': f.community_id, title: 'open its packets' },
      ...cols.map((c) => el('td', { class: ['sport', 'dport', 'duration', 'packets', 'bytes'].includes(c) ? 'num' : '' },
        flowCell(f, c))));
      tr.addEventListener('click', () => openFlow(f));
      return tr;
    }));
  }

  /* A flow's row opens its packets: the pcap of its Community ID over the
   * selection, listed here and offered as files. */
  async function openFlow(f) {
    const w = win();
    $('flow-detail').hidden = false;
    setText('fd-cid', f.community_id);
    setText('fd-info', f.point + ': ' + (f.proto_name || f.proto) + ' ' + f.src +
      (f.sport !== undefined ? ':' + f.sport : '') + ' → ' + f.dst + (f.dport !== undefined ? ':' + f.dport : '') +
      ', ' + short(f.first) + ' to ' + short(f.last) + ', ' + fmtNum(f.packets) + ' packets, ' +
      fmtNum(f.bytes) + ' bytes');
    const params = { from: w.from, to: w.to, community_id: f.community_id, point: f.point };
    const pfx = canPackets();
    $('fd-pcap').hidden = $('fd-pcapng').hidden = !pfx;
    $('fd-pcap').onclick = () => download('/api/v1/packets', Object.assign({ format: 'pcap' }, params, pfx),
      'flow.pcap', 'fd-msg');
    $('fd-pcapng').onclick = () => download('/api/v1/packets', Object.assign({ format: 'pcapng' }, params, pfx),
      'flow.pcapng', 'fd-msg');
    const tb = $('fd-packets').tBodies[0];
    fillTable(tb, []);
    if (!pfx) { setText('fd-msg', 'this token may not read packets', 'muted'); return; }
    setText('fd-msg', 'loading its packets…', 'muted');
    const r = await api('/api/v1/packets', Object.assign({ format: 'pcap', limit: '1000' }, params, pfx));
    if (!r.ok) { setText('fd-msg', r.message, 'error'); return; }
    const pk = parsePcap(new DataView(await r.body.arrayBuffer()));
    setText('fd-msg', pk.length + ' packets in the selection' + (pk.length >= 1000 ? ' (the first 1000)' : ''), 'muted');
    fillTable(tb, pk.map((p, i) => el('tr', { class: 'pkt' }, el('td', {}, i + 1), el('td', {}, p.time),
      el('td', { class: 'num' }, p.len), el('td', {}, p.summary))));
    $('flow-detail').scrollIntoView({ block: 'nearest' });
  }

  /* The packets of a pcap (either byte order, µs or ns): time, length, and
   * a one-line summary of Ethernet/IPv4/IPv6/TCP/UDP. */
  function parsePcap(dv) {
    const out = [];
    if (dv.byteLength < 24) return out;
    const magic = dv.getUint32(0, true);
    const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
    const nano = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
    const link = dv.getUint32(20, le) & 0xffff;
    for (let o = 24; o + 16 <= dv.byteLength;) {
      const sec = dv.getUint32(o, le), frac = dv.getUint32(o + 4, le);
      const cap = dv.getUint32(o + 8, le), len = dv.getUint32(o + 12, le);
      const t = new Date(sec * 1000).toISOString().slice(0, 19) + '.' +
        String(frac).padStart(nano ? 9 : 6, '0') + 'Z';
      out.push({ time: t, len, summary: link === 1 ? summary(dv, o + 16, cap) : 'link type ' + link });
      o += 16 + cap;
    }
    return out;
  }
  function summary(dv, o, cap) {
    const end = o + cap;
    const u8 = (i) => (i < end ? dv.getUint8(i) : 0), u16 = (i) => (i + 1 < end ? dv.getUint16(i) : 0);
    let et = u16(o + 12), p = o + 14;
    while (et === 0x8100 || et === 0x88a8) { et = u16(p + 2); p += 4; }
    let proto, src, dst, l4;
    if (et === 0x0800) {
      proto = u8(p + 9);
      src = [0, 1, 2, 3].map((i) => u8(p + 12 + i)).join('.');
      dst = [0, 1, 2, 3].map((i) => u8(p + 16 + i)).join('.');
      l4 = p + (u8(p) & 15) * 4;
    } else if (et === 0x86dd) {
      proto = u8(p + 6);
      const a6 = (b) => [0, 1, 2, 3, 4, 5, 6, 7].map((i) => u16(b + 2 * i).toString(16)).join(':')
        .replace(/(^|:)0(:0)+(:|$)/, '::');
      src = a6(p + 8);
      dst = a6(p + 24);
      l4 = p + 40;
    } else {
      return 'ethertype 0x' + et.toString(16);
    }
    if (proto === 6 || proto === 17) {
      let s = (proto === 6 ? 'TCP ' : 'UDP ') + src + ':' + u16(l4) + ' → ' + dst + ':' + u16(l4 + 2);
      if (proto === 6) {
        const fl = u8(l4 + 13);
        s += ' [' + ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'].filter((_, i) => fl & (1 << i)).join(',') + ']';
      }
      return s;
    }
    return 'IP proto ' + proto + ' ' + src + ' → ' + dst;
  }

  /* What this token may download: full packets, headers only, or nothing. */
  function canPackets() {
    if (st.caps.payload === 'yes') return {};
    if (st.caps.packets === 'yes') return { payload: 'headers' };
    return null;
  }

  /* A Community ID pasted into the search box: its flow in the selection,
   * else anywhere in the archive. */
  async function searchCid() {
    const cid = $('search').value.trim();
    setText('search-msg', '');
    if (!cid) return;
    if (!/^1:[A-Za-z0-9+/]{27}=$/.test(cid)) {
      setText('search-msg', 'a Community ID looks like 1:wCb3OG7yAFWelaUydu0D+125CLM=', 'error');
      return;
    }
    let w = win(), where = 'in the selection';
    let r = await api('/api/v1/flows', { from: w.from, to: w.to, community_id: cid, limit: '100' });
    if (r.ok && !r.body.flows.length) {
      where = 'in the whole archive';
      r = await api('/api/v1/flows', { community_id: cid, limit: '100' });
    }
    if (!r.ok) { setText('search-msg', r.message, 'error'); return; }
    if (!r.body.flows.length) { setText('search-msg', 'no flow has Community ID ' + cid, 'error'); return; }
    setText('search-msg', r.body.flows.length + ' flow(s) with Community ID ' + cid + ' ' + where, 'ok');
    const known = new Set(st.flows.map((f) => f.community_id + f.first));
    for (const f of r.body.flows) if (!known.has(f.community_id + f.first)) st.flows.unshift(f);
    renderFlows(cid);
    openFlow(r.body.flows[0]);
  }

  /* ------------------------------------------------------ the filter */

  /* The filter box is checked by the server as one types: a timeline over
   * an empty window costs a compile and nothing else, and its 400 says
   * what is wrong. */
  let filterTimer = null, filterSeq = 0;
  function onFilterInput() {
    clearTimeout(filterTimer);
    setText('filter-state', '…', 'muted');
    filterTimer = setTimeout(checkFilter, 300);
  }
  async function checkFilter(apply) {
    const f = $('filter').value.trim(), seq = ++filterSeq;
    if (!f) { setText('filter-msg', ''); setText('filter-state', ''); if (apply) applyFilter(f); return; }
    const r = await api('/api/v1/timeline', { from: '0', to: '1', filter: f, step: '1s' });
    if (seq !== filterSeq) return;
    if (r.ok) {
      setText('filter-msg', '');
      setText('filter-state', '✓ valid' + (apply ? '' : ' (Enter applies it)'), 'ok');
      if (apply) applyFilter(f);
    } else {
      setText('filter-msg', r.message, 'error');
      setText('filter-state', '✗', 'error');
    }
  }
  function applyFilter(f) {
    if (f === st.filter) return;
    st.filter = f;
    changed(true);
  }

  /* ------------------------------------------------------- the tabs */

  async function loadSmtp() {
    const w = win(), tb = $('smtp').tBodies[0];
    setText('smtp-msg', 'loading…', 'muted');
    fillTable(tb, []);
    const r = await api('/api/v1/smtp', { from: w.from, to: w.to, limit: '200' });
    if (r.status === 404) { setText('smtp-msg', 'SMTP sessions are not available on this server.', 'muted'); return; }
    if (!r.ok) { setText('smtp-msg', r.message, 'error'); return; }
    const rows = [];
    for (const s of r.body.sessions) {
      const txs = s.transactions && s.transactions.length ? s.transactions : [null];
      for (const t of txs) {
        const m = t && t.message;
        const link = m ? el('button', { class: 'link', onclick: () => download('/api/v1/smtp/messages/' +
          encodeURIComponent(m.id) + '.eml', {}, m.id + '.eml', 'smtp-msg') }, m.id + '.eml') : '';
        rows.push(el('tr', {}, el('td', {}, short(s.start)), el('td', {}, s.client + ':' + s.client_port),
          el('td', {}, s.server + ':' + s.server_port), el('td', {}, s.helo || ''),
          el('td', {}, t ? t.mail_from || '' : ''),
          el('td', {}, t ? (t.recipients || []).map((x) => x.to).join(', ') : ''),
          el('td', {}, m ? m.subject || '' : ''), el('td', {}, link)));
      }
    }
    fillTable(tb, rows);
    setText('smtp-msg', r.body.sessions.length + ' sessions' + (r.body.truncated ? ' (truncated)' : ''), 'muted');
  }

  async function loadVoip() {
    const w = win(), tb = $('voip').tBodies[0];
    setText('voip-msg', 'loading…', 'muted');
    fillTable(tb, []);
    const r = await api('/api/v1/voip/calls', { from: w.from, to: w.to, limit: '200' });
    if (r.status === 404) { setText('voip-msg', 'VoIP calls are not available on this server.', 'muted'); return; }
    if (!r.ok) { setText('voip-msg', r.message, 'error'); return; }
    fillTable(tb, r.body.calls.map((c) => el('tr', {}, el('td', {}, short(c.start)),
      el('td', {}, c.caller || ''), el('td', {}, c.callee || ''), el('td', {}, c.answered ? 'yes' : 'no'),
      el('td', { class: 'num' }, c.duration !== undefined ? Number(c.duration).toFixed(1) : ''),
      el('td', {}, c.final_code ? c.final_code + ' ' + (c.final_reason || '') : ''),
      el('td', {}, (c.streams || []).filter((s) => s.kind === 'rtp').map((s) => (s.codec || s.payload_type) +
        ' ' + fmtNum(s.packets) + ' pkts, ' + s.lost + ' lost').join('; ')),
      el('td', {}, el('button', { class: 'link', onclick: () => download('/api/v1/voip/calls/' +
        encodeURIComponent(c.id) + '/pcap', {}, 'call.pcap', 'voip-msg') }, 'pcap')))));
    setText('voip-msg', r.body.calls.length + ' calls' + (r.body.truncated ? ' (truncated)' : ''), 'muted');
  }

  async function loadCases() {
    const tb = $('cases').tBodies[0];
    setText('cases-msg', 'loading…', 'muted');
    fillTable(tb, []);
    const r = await api('/api/v1/cases');
    if (r.status === 404) { setText('cases-msg', 'Cases are not available on this server.', 'muted'); return; }
    if (!r.ok) { setText('cases-msg', r.message, 'error'); return; }
    const tg = (c) => (c.targets || []).map((t) => Object.entries(t).map(([k, v]) => k + ' ' + v).join('')).join(', ');
    fillTable(tb, r.body.cases.map((c) => {
      const tr = el('tr', { class: 'flow' }, el('td', {}, c.id), el('td', {}, c.authority),
        el('td', {}, c.warrant), el('td', {}, c.state), el('td', {}, short(c.from)), el('td', {}, short(c.to)),
        el('td', {}, tg(c)), el('td', { class: 'num' }, c.preserved ? fmtNum(c.preserved.packets) : ''));
      tr.addEventListener('click', () => openCase(c.id));
      return tr;
    }));
    setText('cases-msg', r.body.cases.length + ' cases', 'muted');
  }

  async function openCase(id) {
    $('case-detail').hidden = false;
    setText('cd-id', id);
    const r = await api('/api/v1/cases/' + encodeURIComponent(id));
    const body = $('cd-body');
    if (!r.ok) { body.replaceChildren(el('p', { class: 'error' }, r.message)); return; }
    const c = r.body;
    const val = (v) => v === null || v === undefined ? '' : typeof v !== 'object' ? String(v) :
      Array.isArray(v) ? v.map((x) => typeof x === 'object' ? Object.entries(x).map(([k, y]) => k + ' ' + y)
        .join(', ') : String(x)).join('; ') : Object.entries(v).map(([k, y]) => k + ': ' +
        (typeof y === 'object' ? JSON.stringify(y) : y)).join(', ');
    body.replaceChildren(el('table', { class: 'kv' }, el('tbody', {}, ...Object.entries(c).map(([k, v]) =>
      el('tr', {}, el('th', {}, k), el('td', {}, val(v)))))));
    // Live intercept's figures are in the status (admin); an agency may not read it.
    const sr = st.caps.status === 'yes' ? await api('/api/v1/status') : null;
    const ic = sr && sr.ok ? (sr.body.intercept || []).find((x) => x.case === id) : null;
    setText('cd-intercept', ic ? (ic.active ? 'active' : 'not active') + ': ' + fmtNum(ic.packets) +
      ' packets spooled (sequence ' + fmtNum(ic.sequence) + ', ' + fmtNum(ic.dropped) + ' dropped, spool ' +
      fmtBytes(ic.spool_bytes) + ' of ' + fmtBytes(ic.spool_quota_bytes) + (ic.alarm ? ', ALARM' : '') +
      '); delivered sequence ' + fmtNum(ic.delivered) + ', lag ' + fmtNum(ic.sequence - ic.delivered) +
      ', pull connections ' + fmtNum(ic.pull_connections) :
      sr && sr.ok ? 'No live intercept figures for this case on this server (not spooled this run).' :
        'Live intercept figures are not shown to this token.', 'muted');
    const h = st.caps.holds === 'yes' ? await api('/api/v1/holds') : null;
    if (h && h.ok) {
      const mine = (h.body.holds || []).filter((x) => JSON.stringify(x).includes(id));
      setText('cd-holds', mine.length ? mine.map((x) => JSON.stringify(x)).join('\n') :
        'no hold names this case', 'muted');
    } else {
      setText('cd-holds', 'holds are not shown to this token', 'muted');
    }
    // Evidence bundles: POST /api/v1/cases/ID/exports makes one (a tar),
    // GET lists those made.
    const path = '/api/v1/cases/' + encodeURIComponent(id) + '/exports';
    const ev = await api(path);
    $('cd-evidence').hidden = !ev.ok;
    setText('cd-evidence-msg', ev.ok ? (Array.isArray(ev.body.exports) ? ev.body.exports.length +
      ' bundles made before' : '') : ev.status === 404 ?
      'Evidence bundles are not available on this server.' : ev.message, 'muted');
    $('cd-evidence').onclick = () => download(path, {}, id + '-evidence.tar', 'cd-evidence-msg', 'POST');
  }

  async function loadStatus() {
    const r = await api('/api/v1/status');
    if (!r.ok) { setText('status-msg', r.message, 'error'); return; }
    const s = st.status = r.body;
    setText('sensor', s.sensor);
    const used = (s.disk.segment_bytes || 0) + (s.disk.index_bytes || 0);
    const q = s.retention.quota_bytes;
    const sum = $('status-summary');
    sum.replaceChildren(
      el('p', {}, 'Archive ', el('code', {}, s.archive), ' on sensor ', el('strong', {}, s.sensor)),
      el('p', {}, 'Disk: ' + fmtBytes(used) + ' used (segments ' + fmtBytes(s.disk.segment_bytes) +
        ', index ' + fmtBytes(s.disk.index_bytes) + ')' + (q ? ' of a quota of ' + fmtBytes(q) + ' (' +
        (100 * used / q).toFixed(1) + ' %)' : s.retention.quota_pct ? ' of a quota of ' +
        s.retention.quota_pct + ' % of the disk' : ', no quota') + '; ' + fmtBytes(s.disk.available_bytes) +
        ' available'),
      el('p', {}, 'Retention horizon: ' + (s.oldest ? short(s.oldest) + ' to ' + short(s.newest) +
        ' (' + ((ms(s.newest) - ms(s.oldest)) / 86400e3).toFixed(1) + ' days)' : 'no packets yet') +
        (s.retention.max_age_seconds ? '; packets older than ' + (s.retention.max_age_seconds / 86400).toFixed(1) +
          ' days are deleted' : '')),
      el('p', {}, 'Holds: ' + s.holds + '; total ' + fmtNum(s.total.packets) + ' packets in ' +
        fmtNum(s.total.segments) + ' segments'));
    fillTable($('points').tBodies[0], s.points.map((p) => el('tr', {}, el('td', {}, p.name),
      el('td', {}, p.linktype), el('td', { class: 'num' }, fmtNum(p.segments)),
      el('td', { class: 'num' }, fmtNum(p.packets)), el('td', { class: 'num' }, fmtBytes(p.wire_bytes)),
      el('td', { class: 'num' }, fmtBytes(p.stored_bytes)),
      el('td', { class: 'num' + (p.kernel_drops ? ' warn' : '') }, fmtNum(p.kernel_drops)),
      el('td', { class: 'num' + (p.queue_drops ? ' warn' : '') }, fmtNum(p.queue_drops)),
      el('td', {}, short(p.first)), el('td', {}, short(p.last)),
      el('td', {}, p.capture ? (p.capture.paused ? 'paused: ' + (p.capture.reason || '') : 'live') : 'imported'))));
    setText('status-msg', '');
    return s;
  }

  async function loadStatusTab() {
    await loadStatus();
    if (st.caps.segments === 'yes') {
      const r = await api('/api/v1/segments');
      if (r.ok) {
        const segs = r.body.segments;
        setText('segments-count', '(' + segs.length + (segs.length > 50 ? ', the newest 50 shown)' : ')'));
        genericTable($('segments'), segs.slice(-50));
      }
    }
    if (st.caps.holds === 'yes') {
      const r = await api('/api/v1/holds');
      if (r.ok) {
        const hs = r.body.holds || [];
        setText('holds-msg', hs.length ? '' : 'no holds', 'muted');
        genericTable($('holds'), hs);
      } else setText('holds-msg', r.message, 'error');
    } else setText('holds-msg', 'holds are not shown to this token', 'muted');
  }

  const loaders = {
    traffic: () => { loadTimeline(); loadTop(); loadFlows(); },
    smtp: loadSmtp, voip: loadVoip, cases: loadCases, status: loadStatusTab,
  };

  function showTab(t) {
    const buttons = [...document.querySelectorAll('#tabs button')];
    const offered = buttons.filter((b) => !b.hidden).map((b) => b.dataset.tab);
    if (!offered.includes(t)) t = offered[0];
    if (!t) return;
    st.tab = t;
    for (const b of buttons) b.classList.toggle('active', b.dataset.tab === t);
    for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== 'tab-' + t;
    writeHash();
    loaders[t]();
  }

  /* The window, the selection or the filter changed: everything follows. */
  function changed(timelineToo) {
    st.gen++;
    writeHash();
    showSel();
    $('flow-detail').hidden = true;
    if (st.tab === 'traffic') {
      if (timelineToo) loadTimeline();
      loadTop();
      loadFlows();
    } else if (st.tab && st.tab !== 'traffic') {
      loaders[st.tab]();
    }
  }

  function setView(from, to) {
    st.view = { from: from, to: to };
    st.sel = null;
    st.tl = null;
    changed(true);
  }

  /* The last sec seconds of the archive: up to its newest packet (now, for
   * a live one), or up to now when the status is not known. */
  function lastOf(sec) {
    const s = st.status;
    const end = s && s.newest ? Math.ceil(ms(s.newest) / 1000) * 1000 + 1000 : Date.now();
    return { from: iso(end - sec * 1000), to: iso(end) };
  }

  /* ------------------------------------------------------- start up */

  function offer() {
    const c = st.caps;
    const tab = (t, on) => { document.querySelector('#tabs button[data-tab="' + t + '"]').hidden = !on; };
    // A route that is absent (404) keeps its tab, which says so; one the
    // role may not use (403) is not offered at all.
    tab('traffic', c.flows === 'yes');
    tab('smtp', c.smtp === 'yes' || (c.smtp === 'absent' && c.payload === 'yes'));
    tab('voip', c.voip === 'yes' || (c.voip === 'absent' && c.payload === 'yes'));
    tab('cases', c.cases === 'yes' || (c.cases === 'absent' && c.payload === 'yes'));
    tab('status', c.status === 'yes');
    const pk = canPackets();
    $('downloads').hidden = !pk;
    setText('dl-note', pk && pk.payload === 'headers' ? '(headers only: this token may not read payload)' : '');
    $('filter').parentNode.hidden = c.flows !== 'yes';
  }

  async function start() {
    readHash();
    $('filter').value = st.filter;
    const s = await api('/api/v1/status');
    if (s.status === 401) {
      if (st.token) {
        sessionStorage.removeItem('rewind.token');
        st.token = '';
        setText('login-msg', s.message);
      }
      $('boot-msg').hidden = true;
      $('login').hidden = false;
      $('token').focus();
      return;
    }
    st.open = !st.token;
    $('login').hidden = true;
    $('logout').hidden = !st.token;
    setText('who', st.token ? 'signed in with a token' : 'open API (no tokens defined)');
    if (s.ok) {
      st.status = s.body;
      setText('sensor', s.body.sensor);
    }
    await probe();
    offer();
    // A page opened without a window shows the archive's last hour.
    if (!st.view.from && !st.view.to && !st.viewAll) st.view = lastOf(3600);
    $('boot-msg').hidden = true;
    const any = [...document.querySelectorAll('#tabs button')].some((b) => !b.hidden);
    if (!any) {
      setText('boot-msg', 'This token may use none of the console\'s views.', 'error');
      $('boot-msg').hidden = false;
      return;
    }
    document.body.dataset.ready = '1';
    showTab(st.tab || 'traffic');
  }

  async function login(ev) {
    ev.preventDefault();
    const t = $('token').value.trim();
    if (!t) { setText('login-msg', 'paste a token made with rewind token add'); return; }
    st.token = t;
    const r = await api('/api/v1/status');
    if (r.status === 401 || r.status === 0) {
      st.token = '';
      setText('login-msg', r.message);
      return;
    }
    sessionStorage.setItem('rewind.token', t);
    $('token').value = '';
    setText('login-msg', '');
    start();
  }

  function wire() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => {
      sessionStorage.removeItem('rewind.token');
      location.reload();
    });
    for (const b of document.querySelectorAll('#tabs button'))
      b.addEventListener('click', () => showTab(b.dataset.tab));
    for (const b of document.querySelectorAll('#picks button'))
      b.addEventListener('click', () => {
        const p = b.dataset.pick;
        if (p === 'all') { setView('', ''); return; }
        const w = lastOf(Number(p));
        setView(w.from, w.to);
      });
    $('zoom-in').addEventListener('click', () => {
      if (st.sel) setView(iso(st.sel.from), iso(st.sel.to));
    });
    $('zoom-out').addEventListener('click', () => {
      if (!st.tl) return;
      const a = ms(st.tl.from), b = ms(st.tl.to), w = b - a;
      setView(iso(a - w), iso(b + w));
    });
    $('sel-clear').addEventListener('click', () => { st.sel = null; changed(false); });
    for (const r of document.querySelectorAll('input[name=metric]'))
      r.addEventListener('change', () => { st.metric = r.value; drawTimeline(); });
    $('filter').addEventListener('input', onFilterInput);
    $('filter').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') { clearTimeout(filterTimer); checkFilter(true); }
    });
    $('search').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') searchCid(); });
    $('search-go').addEventListener('click', searchCid);
    $('top-by').addEventListener('change', loadTop);
    for (const th of $('flows').tHead.rows[0].cells)
      th.addEventListener('click', () => {
        const k = th.dataset.k;
        st.sort = { k, dir: st.sort.k === k ? -st.sort.dir : (th.classList.contains('num') ? -1 : 1) };
        renderFlows();
      });
    $('fd-close').addEventListener('click', () => { $('flow-detail').hidden = true; });
    const fmtq = (format) => {
      const w = win();
      return Object.assign({ from: w.from, to: w.to, filter: st.filter, format }, canPackets());
    };
    $('dl-pcap').addEventListener('click', () => download('/api/v1/packets', fmtq('pcap'), 'rewind.pcap', 'dl-msg'));
    $('dl-pcapng').addEventListener('click', () => download('/api/v1/packets', fmtq('pcapng'), 'rewind.pcapng', 'dl-msg'));
    window.addEventListener('resize', showSel);
    // A link pasted into this tab: its view, as if loaded afresh.
    window.addEventListener('hashchange', () => {
      if (document.body.dataset.ready !== '1') return;
      readHash();
      if (!st.view.from && !st.view.to && !st.viewAll) st.view = lastOf(3600);
      $('filter').value = st.filter;
      st.tl = null;
      st.gen++;
      showTab(st.tab || 'traffic');
    });
    setupDrag();
  }

  wire();
  start();
})();
