'use strict';
// Draws every section of the hashgrad report from the JSON in #report-data. Every string
// from a log goes in with textContent or setAttribute, never as markup. Sets data-drawn on
// <body> to the ids of the sections drawn and data-errors to any error.
const drawn = [];
const errors = [];
function noteError(text) {
  errors.push(text);
  document.body.setAttribute('data-errors', errors.join(' | '));
}
window.addEventListener('error', e => noteError(String(e.message)));

const D = JSON.parse(document.getElementById('report-data').textContent);
const E = D.events;
const NS = 'http://www.w3.org/2000/svg';
const CLASS_COLORS = {raft: '#d62728', chain: '#1f77b4', training: '#2ca02c', other: '#8c8c8c'};
const ROLE_COLORS = {leader: '#2ca02c', candidate: '#ff7f0e', pre_candidate: '#ffbb78', follower: '#c7c7c7'};
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
  '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd'];
const laneColor = i => PALETTE[i % PALETTE.length];

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function sv(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function laneName(i) {
  const lane = E.lanes[i];
  if (!lane) return 'node ' + i;
  return lane.name && lane.name !== lane.label ? lane.label + ' (' + lane.name + ')' : lane.label;
}
function laneOfLabel(label) {
  return E.lanes.findIndex(l => l.label === label || l.name === label);
}
// A block hash without its leading zeros (display order starts with them), cut to 16.
const shortHash = h => (h.replace(/^0+/, '') || '0').slice(0, 16);
const secs = ms => (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
function niceStep(range, count) {
  const raw = Math.max(range, 1e-9) / Math.max(count, 1);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}
function ticks(lo, hi, count) {
  const step = niceStep(hi - lo, count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}
function fmt(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  if (a >= 100 || v === 0) return v.toFixed(0);
  return +v.toPrecision(3) + '';
}
function legend(items) {
  const div = el('div', {class: 'legend'});
  for (const [name, color] of items) {
    const span = el('span');
    span.appendChild(el('i', {style: 'background:' + color}));
    span.appendChild(document.createTextNode(name));
    div.appendChild(span);
  }
  return div;
}
function table(rows, head) {
  const t = el('table');
  if (head) {
    const tr = el('tr');
    head.forEach(h => tr.appendChild(el('th', {}, h)));
    t.appendChild(tr);
  }
  for (const row of rows) {
    const tr = el('tr');
    row.forEach(c => tr.appendChild(el('td', {}, c)));
    t.appendChild(tr);
  }
  return t;
}
const fullWidth = () => Math.max(700, Math.min(document.documentElement.clientWidth - 60, 1600));
const spanMs = Math.max(E.span_ms, 1);

// Fault marks shared by the time-axis views: [{at, kind, text, lane}], partitions paired
// with their heal as bands.
const faultMarks = [];
const downBands = [];
const partitionBands = [];
(function () {
  let openPartition = null;
  const killed = {};
  for (const f of D.faults) {
    const lane = f.nodes.length ? laneOfLabel(f.nodes[0]) : -1;
    faultMarks.push({at: f.at_ms, kind: f.kind, text: f.text, lane});
    if (f.kind === 'partition') openPartition = {from: f.at_ms, text: f.text};
    if (f.kind === 'heal' && openPartition) {
      partitionBands.push({from: openPartition.from, to: f.at_ms, text: openPartition.text});
      openPartition = null;
    }
    if (f.kind === 'kill' && lane >= 0) killed[lane] = f.at_ms;
    if (f.kind === 'restart' && lane >= 0 && killed[lane] !== undefined) {
      downBands.push({lane, from: killed[lane], to: f.at_ms});
      delete killed[lane];
    }
  }
  if (openPartition) partitionBands.push({from: openPartition.from, to: spanMs, text: openPartition.text});
  for (const [lane, from] of Object.entries(killed)) downBands.push({lane: +lane, from, to: spanMs});
})();
const FAULT_COLORS = {kill: '#c0392b', restart: '#2471a3', partition: '#8e44ad', heal: '#8e44ad', note: '#999'};

// A line chart in SVG: series [{name, color, points: [[x, y]], right}], optional second axis.
function lineChart(opts) {
  const W = opts.width || fullWidth(), H = opts.height || 260;
  const m = {l: 60, r: opts.rightLabel ? 60 : 20, t: 14, b: 34};
  const svg = sv('svg', {width: W, height: H});
  const xs = [], yl = [], yr = [];
  for (const s of opts.series) for (const p of s.points) {
    xs.push(p[0]);
    (s.right ? yr : yl).push(p[1]);
  }
  const ext = (a, zero) => {
    let lo = a.length ? Math.min(...a) : 0, hi = a.length ? Math.max(...a) : 1;
    if (zero) lo = Math.min(lo, 0);
    if (hi === lo) hi = lo + 1;
    return [lo, hi];
  };
  const [x0, x1] = opts.xRange || ext(xs, false);
  const [l0, l1] = opts.leftRange || ext(yl, true);
  const [r0, r1] = opts.rightRange || ext(yr, true);
  const X = x => m.l + (x - x0) / (x1 - x0) * (W - m.l - m.r);
  const YL = y => H - m.b - (y - l0) / (l1 - l0) * (H - m.t - m.b);
  const YR = y => H - m.b - (y - r0) / (r1 - r0) * (H - m.t - m.b);
  for (const v of ticks(x0, x1, 10)) {
    svg.appendChild(sv('line', {x1: X(v), x2: X(v), y1: m.t, y2: H - m.b, stroke: '#eee'}));
    svg.appendChild(sv('text', {x: X(v), y: H - m.b + 14, 'text-anchor': 'middle'}, (opts.xFormat || fmt)(v)));
  }
  for (const v of ticks(l0, l1, 6)) {
    svg.appendChild(sv('line', {x1: m.l, x2: W - m.r, y1: YL(v), y2: YL(v), stroke: '#eee'}));
    svg.appendChild(sv('text', {x: m.l - 4, y: YL(v) + 4, 'text-anchor': 'end'}, fmt(v)));
  }
  if (opts.rightLabel) for (const v of ticks(r0, r1, 6))
    svg.appendChild(sv('text', {x: W - m.r + 4, y: YR(v) + 4}, fmt(v)));
  svg.appendChild(sv('rect', {x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, fill: 'none', stroke: '#999'}));
  svg.appendChild(sv('text', {x: (W + m.l - m.r) / 2, y: H - 4, 'text-anchor': 'middle'}, opts.xLabel || ''));
  svg.appendChild(sv('text', {x: 12, y: H / 2, transform: 'rotate(-90 12 ' + H / 2 + ')', 'text-anchor': 'middle'}, opts.leftLabel || ''));
  if (opts.rightLabel) svg.appendChild(sv('text', {x: W - 8, y: H / 2, transform: 'rotate(90 ' + (W - 8) + ' ' + H / 2 + ')', 'text-anchor': 'middle'}, opts.rightLabel));
  for (const s of opts.series) {
    const Y = s.right ? YR : YL;
    const pts = s.points.map(p => X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1)).join(' ');
    if (s.points.length > 1) svg.appendChild(sv('polyline', {points: pts, fill: 'none', stroke: s.color, 'stroke-width': 1.5}));
    if (s.points.length < 200) for (const p of s.points) {
      const c = sv('circle', {cx: X(p[0]), cy: Y(p[1]), r: 2.2, fill: s.color});
      c.appendChild(sv('title', {}, s.name + ': ' + fmt(p[0]) + ' → ' + fmt(p[1])));
      svg.appendChild(c);
    }
  }
  if (opts.decorate) opts.decorate(svg, X, m, H);
  return svg;
}

function markFaults(svg, X, top, bottom) {
  for (const b of partitionBands) svg.appendChild(sv('rect', {x: X(b.from), y: top, width: Math.max(1, X(b.to) - X(b.from)), height: bottom - top, fill: '#8e44ad', opacity: 0.08}));
  for (const f of faultMarks) {
    if (f.kind === 'note') continue;
    const line = sv('line', {x1: X(f.at), x2: X(f.at), y1: top, y2: bottom, stroke: FAULT_COLORS[f.kind], 'stroke-dasharray': '4 3'});
    line.appendChild(sv('title', {}, secs(f.at) + ' ' + f.text));
    svg.appendChild(line);
  }
}

function draw(id, fn) {
  const section = document.getElementById(id);
  const parts = {section, note: section.querySelector('.note'), body: section.querySelector('.body')};
  try {
    fn(parts);
    drawn.push(id);
  } catch (e) {
    noteError(id + ': ' + (e && e.message ? e.message : String(e)));
  }
}

// The sections.
const nav = document.querySelector('nav');
for (const s of document.querySelectorAll('section')) {
  nav.appendChild(el('a', {href: '#' + s.id}, s.querySelector('h2').textContent.split(':')[0]));
}

draw('summary', ({note, body}) => {
  const total = E.lanes.reduce((a, l) => a + l.events, 0);
  note.textContent = E.lanes.length + ' nodes logged ' + total + ' events over ' + secs(E.span_ms) +
    '; testnet time 0 (every node up) is at ' + secs(D.testnet_zero_ms) + ' on the axes' +
    (D.epoch_known ? '' : ' (estimated: the summary does not record it)') + '.';
  body.appendChild(table(E.lanes.map((l, i) => [laneName(i), l.events]), ['node', 'events logged']));
  if (D.summary) {
    const details = el('details');
    details.appendChild(el('summary', {}, 'the testnet\'s summary (' + D.summary.length + ' fields)'));
    details.appendChild(table(D.summary, ['field', 'value']));
    body.appendChild(details);
  } else {
    body.appendChild(el('p', {class: 'note'}, 'no testnet summary (summary.json) in this dir'));
  }
  if (D.faults.length) {
    body.appendChild(el('h3', {}, 'What the testnet did'));
    body.appendChild(table(D.faults.map(f => [secs(f.at_ms), f.kind, f.text]), ['at', 'kind', 'event']));
  }
});

draw('messages', ({note, body}) => {
  const M = E.messages;
  const counts = M.counts.filter(c => c.sent || c.received);
  const sent = counts.reduce((a, c) => a + c.sent, 0);
  if (!sent && !M.list.length) {
    note.textContent = 'no messages recorded in the event logs';
    return;
  }
  note.textContent = 'Drawing ' + M.list.length + ' of ' + sent + ' messages sent' +
    (M.list.length < sent ? ' (bounded to ' + M.budget + ', a quarter per class: a fixed, hash-chosen sample of the message ids where a class has more)' : '') +
    '. Each arrow runs from a send to its receive. Wheel: zoom, drag: pan, double-click: reset.';
  body.appendChild(table(counts.map(c => [c.class, c.sent, c.received, c.drawn]), ['class', 'sent', 'received', 'drawn']));
  const shown = {};
  const controls = el('div', {class: 'controls'});
  for (const c of M.classes) {
    shown[c] = true;
    const label = el('label');
    const box = el('input', {type: 'checkbox'});
    box.checked = true;
    box.addEventListener('change', () => { shown[c] = box.checked; paint(); });
    label.appendChild(box);
    const swatch = el('i', {style: 'display:inline-block;width:10px;height:10px;margin:0 4px;background:' + CLASS_COLORS[c]});
    label.appendChild(swatch);
    label.appendChild(document.createTextNode(c));
    controls.appendChild(label);
  }
  const buttons = [['zoom in', () => zoom(0.5, 0.5)], ['zoom out', () => zoom(2, 0.5)], ['reset', () => { view = [0, spanMs]; paint(); }]];
  for (const [text, act] of buttons) {
    const b = el('button', {type: 'button'}, text);
    b.addEventListener('click', act);
    controls.appendChild(b);
  }
  body.appendChild(controls);
  const W = fullWidth(), laneH = 56, top = 26, left = 110;
  const H = top + E.lanes.length * laneH + 10;
  const canvas = el('canvas', {width: W, height: H});
  const tip = el('div', {class: 'tip'});
  body.appendChild(canvas);
  body.appendChild(tip);
  const ctx = canvas.getContext('2d');
  let view = [0, spanMs];
  const X = t => left + (t - view[0]) / (view[1] - view[0]) * (W - left - 10);
  const T = x => view[0] + (x - left) / (W - left - 10) * (view[1] - view[0]);
  const Y = lane => top + lane * laneH + laneH / 2;
  function zoom(factor, at) {
    const pivot = view[0] + at * (view[1] - view[0]);
    const width = Math.min(Math.max((view[1] - view[0]) * factor, 2), spanMs * 4);
    view = [pivot - at * width, pivot + (1 - at) * width];
    paint();
  }
  function paint() {
    ctx.clearRect(0, 0, W, H);
    ctx.font = '11px sans-serif';
    for (const b of partitionBands) {
      ctx.fillStyle = 'rgba(142,68,173,0.08)';
      ctx.fillRect(X(b.from), top, X(b.to) - X(b.from), H - top);
    }
    for (const b of downBands) {
      ctx.fillStyle = 'rgba(192,57,43,0.12)';
      ctx.fillRect(X(b.from), Y(b.lane) - laneH / 2 + 4, X(b.to) - X(b.from), laneH - 8);
    }
    ctx.fillStyle = '#333';
    ctx.strokeStyle = '#bbb';
    for (let i = 0; i < E.lanes.length; i++) {
      ctx.beginPath(); ctx.moveTo(left, Y(i)); ctx.lineTo(W - 10, Y(i)); ctx.stroke();
      ctx.fillStyle = laneColor(i);
      ctx.fillText(laneName(i).slice(0, 16), 4, Y(i) + 4);
    }
    ctx.fillStyle = '#555';
    ctx.strokeStyle = '#eee';
    for (const v of ticks(view[0], view[1], 10)) {
      ctx.fillText(secs(v), X(v) - 14, 14);
    }
    for (const f of faultMarks) {
      if (f.kind === 'note') continue;
      ctx.strokeStyle = FAULT_COLORS[f.kind];
      ctx.setLineDash([4, 3]);
      ctx.beginPath(); ctx.moveTo(X(f.at), top); ctx.lineTo(X(f.at), H); ctx.stroke();
      ctx.setLineDash([]);
    }
    const visible = M.list.filter(m => shown[M.classes[m[4]]] && m[3] >= view[0] && m[1] <= view[1]);
    const heads = visible.length < 3000;
    ctx.lineWidth = 1;
    for (const m of visible) {
      const x0 = X(m[1]), y0 = Y(m[0]), x1 = X(m[3]), y1 = Y(m[2]);
      ctx.strokeStyle = CLASS_COLORS[M.classes[m[4]]];
      ctx.globalAlpha = heads ? 0.85 : 0.35;
      ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
      if (heads) {
        const a = Math.atan2(y1 - y0, x1 - x0);
        ctx.beginPath();
        ctx.moveTo(x1, y1);
        ctx.lineTo(x1 - 6 * Math.cos(a - 0.4), y1 - 6 * Math.sin(a - 0.4));
        ctx.lineTo(x1 - 6 * Math.cos(a + 0.4), y1 - 6 * Math.sin(a + 0.4));
        ctx.closePath();
        ctx.fillStyle = ctx.strokeStyle;
        ctx.fill();
      }
    }
    ctx.globalAlpha = 1;
    ctx.fillStyle = '#555';
    ctx.fillText(visible.length + ' messages in view', W - 150, H - 4);
  }
  let drag = null;
  canvas.addEventListener('wheel', e => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    const at = Math.min(Math.max((e.clientX - r.left - left) / (W - left - 10), 0), 1);
    zoom(e.deltaY > 0 ? 1.25 : 0.8, at);
  }, {passive: false});
  canvas.addEventListener('mousedown', e => { drag = {x: e.clientX, view: view.slice()}; canvas.classList.add('dragging'); });
  window.addEventListener('mouseup', () => { drag = null; canvas.classList.remove('dragging'); });
  canvas.addEventListener('dblclick', () => { view = [0, spanMs]; paint(); });
  canvas.addEventListener('mousemove', e => {
    const r = canvas.getBoundingClientRect();
    const px = e.clientX - r.left, py = e.clientY - r.top;
    if (drag) {
      const dt = (e.clientX - drag.x) / (W - left - 10) * (drag.view[1] - drag.view[0]);
      view = [drag.view[0] - dt, drag.view[1] - dt];
      paint();
      return;
    }
    let best = null, bestD = 6;
    for (const m of M.list) {
      if (!shown[M.classes[m[4]]] || m[3] < view[0] || m[1] > view[1]) continue;
      const x0 = X(m[1]), y0 = Y(m[0]), x1 = X(m[3]), y1 = Y(m[2]);
      const dx = x1 - x0, dy = y1 - y0, len = dx * dx + dy * dy || 1;
      const k = Math.min(Math.max(((px - x0) * dx + (py - y0) * dy) / len, 0), 1);
      const d = Math.hypot(px - x0 - k * dx, py - y0 - k * dy);
      if (d < bestD) { bestD = d; best = m; }
    }
    if (!best) { tip.style.display = 'none'; return; }
    tip.textContent = (M.types[best[5]] || '?') + ' (' + M.classes[best[4]] + ')\n' + laneName(best[0]) + ' → ' + laneName(best[2]) +
      '\nsent ' + secs(best[1]) + ', received ' + secs(best[3]) + ' (+' + (best[3] - best[1]) + ' ms)\ncursor at ' + secs(T(px));
    tip.style.left = (px + 14) + 'px';
    tip.style.top = (canvas.offsetTop + py + 10) + 'px';
    tip.style.display = 'block';
  });
  body.appendChild(legend(Object.entries(CLASS_COLORS).concat([['node down (killed)', 'rgba(192,57,43,0.3)'], ['partition', 'rgba(142,68,173,0.3)']])));
  paint();
});

draw('raft', ({note, body}) => {
  const R = E.raft;
  const elections = [];
  const seenTerms = new Set();
  for (const r of R.roles) if (r.role === 'leader' && !seenTerms.has(r.term)) { seenTerms.add(r.term); elections.push(r); }
  elections.sort((a, b) => a.at_ms - b.at_ms);
  const truncated = R.roles.length < R.roles_total || R.votes.length < R.votes_total;
  note.textContent = R.roles.length ? R.roles_total + ' role or term changes, ' + elections.length + ' leaders elected (' +
    Math.max(elections.length - 1, 0) + ' leader changes), ' + R.votes_total + ' votes' + (truncated ? ' (the first ' + R.roles.length + ' changes and ' + R.votes.length + ' votes drawn)' : '') +
    '. Dashed lines: kills (red), restarts (blue), partitions and heals (purple, band while cut).'
    : 'no Raft role changes recorded in the event logs (the nodes do not train, or their logs predate Raft events)';
  const W = fullWidth(), left = 110, top = 34, laneH = 30;
  const H = top + E.lanes.length * laneH + 30;
  const X = t => left + t / spanMs * (W - left - 10);
  const svg = sv('svg', {width: W, height: H});
  for (const v of ticks(0, spanMs, 10)) {
    svg.appendChild(sv('line', {x1: X(v), x2: X(v), y1: top - 4, y2: H - 24, stroke: '#eee'}));
    svg.appendChild(sv('text', {x: X(v), y: H - 10, 'text-anchor': 'middle'}, secs(v)));
  }
  for (let i = 0; i < E.lanes.length; i++) {
    const y = top + i * laneH;
    svg.appendChild(sv('text', {x: 4, y: y + laneH / 2 + 4, fill: laneColor(i)}, laneName(i).slice(0, 16)));
    const changes = R.roles.filter(r => r.lane === i).sort((a, b) => a.at_ms - b.at_ms);
    changes.forEach((c, k) => {
      const end = k + 1 < changes.length ? changes[k + 1].at_ms : spanMs;
      const rect = sv('rect', {x: X(c.at_ms), y: y + 4, width: Math.max(1, X(end) - X(c.at_ms)), height: laneH - 8, fill: ROLE_COLORS[c.role] || '#dddddd'});
      rect.appendChild(sv('title', {}, laneName(i) + ': ' + c.role + ', term ' + c.term + ', from ' + secs(c.at_ms)));
      svg.appendChild(rect);
      if (X(end) - X(c.at_ms) > 26) svg.appendChild(sv('text', {x: X(c.at_ms) + 2, y: y + laneH / 2 + 4}, 't' + c.term));
    });
    for (const v of R.votes.filter(v => v.lane === i)) {
      const tick = sv('line', {x1: X(v.at_ms), x2: X(v.at_ms), y1: y + laneH - 6, y2: y + laneH, stroke: v.granted ? '#1e8449' : '#c0392b'});
      tick.appendChild(sv('title', {}, laneName(i) + (v.granted ? ' votes for ' : ' refuses ') + v.candidate + ' in term ' + v.term + ' at ' + secs(v.at_ms)));
      svg.appendChild(tick);
    }
    for (const b of downBands.filter(b => b.lane === i))
      svg.appendChild(sv('rect', {x: X(b.from), y: y + 2, width: Math.max(1, X(b.to) - X(b.from)), height: laneH - 4, fill: 'url(#down)', stroke: '#c0392b'}));
    for (const l of R.lifecycle.filter(l => l.lane === i)) {
      const crashed = l.lost_at_most !== null && l.lost_at_most !== undefined;
      const mark = sv('path', {d: 'M' + X(l.at_ms) + ' ' + (y + 4) + ' l4 -4 l-8 0 z', fill: crashed ? '#d68910' : l.started ? '#2471a3' : '#c0392b'});
      const what = crashed ? ' recovered from a crash (up to ' + l.lost_at_most + ' events lost)' : l.started ? ' started' : ' stopped';
      mark.appendChild(sv('title', {}, laneName(i) + what + ' at ' + secs(l.at_ms)));
      svg.appendChild(mark);
    }
  }
  const defs = sv('defs');
  const pattern = sv('pattern', {id: 'down', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)'});
  pattern.appendChild(sv('rect', {width: 3, height: 6, fill: 'rgba(192,57,43,0.35)'}));
  defs.appendChild(pattern);
  svg.insertBefore(defs, svg.firstChild);
  for (const e of elections) {
    const d = sv('path', {d: 'M' + X(e.at_ms) + ' ' + (top - 14) + ' l5 5 l-5 5 l-5 -5 z', fill: laneColor(e.lane)});
    d.appendChild(sv('title', {}, laneName(e.lane) + ' becomes leader of term ' + e.term + ' at ' + secs(e.at_ms)));
    svg.appendChild(d);
  }
  markFaults(svg, X, top - 4, H - 24);
  body.appendChild(svg);
  body.appendChild(legend(Object.entries(ROLE_COLORS).concat([['leader elected (◆, lane colour)', '#555'], ['vote granted', '#1e8449'], ['vote refused', '#c0392b'], ['down (killed)', 'rgba(192,57,43,0.35)']])));
});

draw('chain', ({note, body}) => {
  const C = E.chain;
  if (!C.blocks.length) {
    note.textContent = 'no blocks recorded in the event logs';
    return;
  }
  const orphaned = C.blocks.filter(b => b.orphaned).length;
  note.textContent = C.total + ' blocks logged' + (C.blocks.length < C.total ? ' (the highest ' + C.blocks.length + ' drawn)' : '') +
    ', ' + orphaned + ' off the best chain (red ring), ' + C.reorgs_total + ' reorgs. Row 0 is the best chain; each fork gets a row; a block is coloured by the node that mined it.';
  const minH = C.blocks[0].height, maxH = C.blocks[C.blocks.length - 1].height;
  const step = Math.max(4, Math.min(18, (fullWidth() - 80) / Math.max(maxH - minH + 1, 1)));
  const rowH = 26, left = 40;
  const W = left + (maxH - minH + 1) * step + 40, H = C.rows * rowH + 40;
  const X = h => left + (h - minH) * step + step / 2;
  const Y = r => 16 + r * rowH + rowH / 2;
  const svg = sv('svg', {width: W, height: H});
  for (const v of ticks(minH, maxH, Math.max(2, Math.floor((W - 80) / 70))))
    svg.appendChild(sv('text', {x: X(v), y: H - 6, 'text-anchor': 'middle'}, Math.round(v)));
  for (const b of C.blocks) {
    if (b.parent === null || b.parent === undefined) continue;
    const p = C.blocks[b.parent];
    svg.appendChild(sv('line', {x1: X(p.height), y1: Y(p.row), x2: X(b.height), y2: Y(b.row), stroke: b.orphaned ? '#e6a1a1' : '#999'}));
  }
  const r = Math.max(1.8, Math.min(6, step / 2.6));
  for (const b of C.blocks) {
    const c = sv('circle', {cx: X(b.height), cy: Y(b.row), r, fill: b.miner === null || b.miner === undefined ? '#bbb' : laneColor(b.miner),
      stroke: b.orphaned ? '#c0392b' : 'none', 'stroke-width': 2});
    c.appendChild(sv('title', {}, 'height ' + b.height + '\n' + b.hash + '\nmined by ' + (b.miner === null || b.miner === undefined ? 'a node without a log' : laneName(b.miner)) +
      '\nfirst seen ' + secs(b.first_ms) + ', logged by ' + b.nodes + ' node(s)' + (b.orphaned ? '\noff the best chain' : '')));
    svg.appendChild(c);
  }
  body.appendChild(svg);
  body.appendChild(legend(E.lanes.map((l, i) => ['mined by ' + laneName(i), laneColor(i)])));
  if (C.reorgs.length) {
    body.appendChild(el('h3', {}, 'Reorgs (latest 50)'));
    body.appendChild(table(C.reorgs.slice(-50).map(x => [secs(x.at_ms), laneName(x.lane), x.depth, shortHash(x.old_tip), shortHash(x.new_tip)]),
      ['at', 'node', 'depth', 'old tip', 'new tip']));
  }
});

draw('training', ({note, body}) => {
  const Rn = E.rounds;
  if (!Rn.points.length) {
    note.textContent = 'no training rounds recorded in the event logs';
    return;
  }
  const loss = Rn.points.filter(p => p[1] !== null).map(p => [p[0], p[1]]);
  const acc = Rn.points.filter(p => p[2] !== null).map(p => [p[0], p[2] * 100]);
  note.textContent = Rn.total + ' rounds committed' + (Rn.per_point > 1 ? '; each point is the mean of ' + Rn.per_point + ' consecutive rounds' : '') +
    (Rn.dropped ? '; ' + Rn.dropped + ' round events beyond the bound left out' : '') +
    '; ' + Rn.abandoned_total + ' rounds abandoned at their deadline (red ticks).';
  const svg = lineChart({
    xLabel: 'round', leftLabel: 'training loss', rightLabel: 'test accuracy (%)', rightRange: [0, 100],
    series: [{name: 'loss', color: '#d62728', points: loss}, {name: 'accuracy %', color: '#1f77b4', points: acc, right: true}],
    decorate: (s, X, m, H) => {
      for (const a of Rn.abandoned.slice(0, 2000)) {
        const t = s.appendChild(sv('line', {x1: X(a.round), x2: X(a.round), y1: H - m.b - 6, y2: H - m.b, stroke: '#c0392b'}));
        t.appendChild(sv('title', {}, 'round ' + a.round + ' abandoned on ' + laneName(a.lane) + ': ' + a.reason));
      }
    },
  });
  body.appendChild(svg);
  body.appendChild(legend([['loss (left axis)', '#d62728'], ['accuracy (right axis)', '#1f77b4'], ['abandoned round', '#c0392b']]));
});

draw('hash-rate', ({note, body}) => {
  const series = E.hash_rate.filter(s => s.points.length).map(s => ({name: laneName(s.lane), color: laneColor(s.lane), points: s.points}));
  if (!series.length) {
    note.textContent = 'no hash rate recorded in the event logs';
    return;
  }
  note.textContent = 'Each node\'s reported hash rate (hashes per second) over time; dashed lines mark kills, restarts and partitions.';
  body.appendChild(lineChart({
    xLabel: 'time', leftLabel: 'hashes per second', xRange: [0, spanMs], xFormat: secs, series,
    decorate: (s, X, m, H) => markFaults(s, X, m.t, H - m.b),
  }));
  body.appendChild(legend(series.map(s => [s.name, s.color])));
});

draw('latency', ({note, body}) => {
  const Rn = E.rounds;
  if (!Rn.timings.length) {
    note.textContent = 'no round timings recorded in the event logs (the leader logs them as it commits a round)';
    return;
  }
  const colors = ['#9ecae1', '#3182bd', '#fd8d3c'];
  const names = ['gradient wait', 'reduce', 'commit'];
  const totals = [0, 0, 0];
  for (const t of Rn.timings) for (let k = 0; k < 3; k++) totals[k] += t[k + 1];
  const sum = totals[0] + totals[1] + totals[2] || 1;
  note.textContent = Rn.timed_total + ' rounds timed by their leader' + (Rn.timings_per_point > 1 ? '; each bar is the mean of ' + Rn.timings_per_point + ' consecutive rounds' : '') +
    '; share of the time: ' + names.map((n, k) => n + ' ' + (100 * totals[k] / sum).toFixed(0) + '%').join(', ') + '.';
  const W = fullWidth(), H = 280, m = {l: 60, r: 20, t: 14, b: 34};
  const svg = sv('svg', {width: W, height: H});
  const rounds = Rn.timings.map(t => t[0]);
  const r0 = Math.min(...rounds), r1 = Math.max(...rounds) + 1;
  const maxT = Math.max(...Rn.timings.map(t => t[1] + t[2] + t[3]), 1e-3);
  const X = r => m.l + (r - r0) / (r1 - r0) * (W - m.l - m.r);
  const Y = v => H - m.b - v / maxT * (H - m.t - m.b);
  const bw = Math.max(1, (W - m.l - m.r) / Rn.timings.length - (Rn.timings.length < 200 ? 1 : 0));
  for (const v of ticks(0, maxT, 6)) {
    svg.appendChild(sv('line', {x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), stroke: '#eee'}));
    svg.appendChild(sv('text', {x: m.l - 4, y: Y(v) + 4, 'text-anchor': 'end'}, fmt(v)));
  }
  for (const v of ticks(r0, r1, 10)) svg.appendChild(sv('text', {x: X(v), y: H - m.b + 14, 'text-anchor': 'middle'}, fmt(v)));
  for (const t of Rn.timings) {
    let base = 0;
    for (let k = 0; k < 3; k++) {
      const rect = sv('rect', {x: X(t[0]), y: Y(base + t[k + 1]), width: bw, height: Math.max(0, Y(base) - Y(base + t[k + 1])), fill: colors[k]});
      rect.appendChild(sv('title', {}, 'round ' + fmt(t[0]) + ': ' + names[k] + ' ' + t[k + 1].toFixed(1) + ' ms'));
      svg.appendChild(rect);
      base += t[k + 1];
    }
  }
  svg.appendChild(sv('text', {x: (W + m.l) / 2, y: H - 4, 'text-anchor': 'middle'}, 'round'));
  svg.appendChild(sv('text', {x: 12, y: H / 2, transform: 'rotate(-90 12 ' + H / 2 + ')', 'text-anchor': 'middle'}, 'milliseconds'));
  body.appendChild(svg);
  body.appendChild(legend(names.map((n, k) => [n, colors[k]])));
});

draw('consistency', ({note, body}) => {
  const C = D.consistency;
  if (!C.recorded) {
    note.textContent = 'no client history recorded (run the testnet with --jepsen SECS to record one)';
    return;
  }
  note.textContent = 'The clients\' histories (every read, write and CAS with its invocation and completion) as the testnet recorded them, with the testnet\'s verdict. Linearizable reads must linearize; local reads may be stale (not linearizable) but must stay causally consistent.';
  if (C.verdict) {
    body.appendChild(el('h3', {}, 'Verdict recorded by the testnet'));
    body.appendChild(table(C.verdict, ['field', 'value']));
  }
  if (!C.histories.length) body.appendChild(el('p', {class: 'note'}, 'no history file beside the verdict'));
  for (const h of C.histories) {
    body.appendChild(el('h3', {}, h.file));
    if (h.error) body.appendChild(el('p', {class: 'verdict-bad'}, 'the history could not be checked here: ' + h.error));
    if (!h.checked) continue;
    const k = h.checked;
    const cls = k.verdict === 'linearizable' ? 'verdict-ok' : k.verdict === 'not linearizable' ? 'verdict-bad' : 'verdict-unknown';
    const p = el('p');
    p.appendChild(document.createTextNode('Checked here for linearizability: '));
    p.appendChild(el('span', {class: cls}, k.verdict));
    p.appendChild(document.createTextNode(' (' + k.model + ' model, ' + k.operations + ' operations by ' + k.clients + ' clients, ' + k.keys.length + ' keys)'));
    body.appendChild(p);
    const bad = k.keys.filter(x => x.verdict !== 'linearizable');
    if (bad.length) body.appendChild(table(bad.slice(0, 50).map(x => [x.key, x.verdict, x.operations, x.explanation || '']), ['key', 'verdict', 'operations', 'explanation']));
    if (k.page) {
      const frame = el('iframe', {sandbox: 'allow-scripts', title: 'the checker\'s view of ' + h.file});
      frame.srcdoc = k.page;
      body.appendChild(frame);
    } else {
      body.appendChild(el('p', {class: 'note'}, 'the history is too big to draw here; run hashgrad check --html on it'));
    }
  }
  if (C.verdict_raw) {
    const details = el('details');
    details.appendChild(el('summary', {}, 'verdict.json'));
    details.appendChild(el('pre', {}, C.verdict_raw));
    body.appendChild(details);
  }
});

document.body.setAttribute('data-drawn', drawn.join(' '));
