// Charts drawn as SVG from the report APIs: stacked bars (with axes, legend, tooltips, click and
// drag-to-zoom), an hour x weekday heatmap and horizontal bar lists.

import { h, fmtNum } from './util.js';

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** The series colours (CSS classes, so the palette lives in app.css). */
const SERIES_CLASS = ['s-success', 's-failure', 's-interrupted', 's-3', 's-4'];

function niceMax(max) {
  if (max <= 0) return 1;
  const exp = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= max) return m * exp;
  return 10 * exp;
}

function tooltip(container) {
  let tip = container.querySelector('.chart-tip');
  if (!tip) { tip = h('div', { class: 'chart-tip', role: 'tooltip', hidden: true }); container.append(tip); }
  return {
    show(x, y, lines) {
      tip.replaceChildren(...lines.map((l, i) => h('div', { class: i === 0 ? 'tip-title' : '' }, l)));
      tip.hidden = false;
      const box = container.getBoundingClientRect();
      tip.style.left = `${Math.min(Math.max(0, x - box.left + 12), box.width - 180)}px`;
      tip.style.top = `${Math.max(0, y - box.top - 10)}px`;
    },
    hide() { tip.hidden = true; },
  };
}

/**
 * Stacked bars.
 * points: [{ start, end, label, values: [n, ...] }]; series: names (legend, tooltip).
 * options: { height, onClick(point), onRange(startIso, endIso), tickLabel(point), title }
 */
export function stackedBars(points, series, options = {}) {
  const container = h('figure', { class: 'chart' });
  if (options.title) container.append(h('figcaption', {}, options.title));
  const legend = h('div', { class: 'legend' },
    series.map((name, i) => h('span', { class: 'legend-item' }, h('span', { class: `swatch ${(options.classes || SERIES_CLASS)[i]}` }), name)));
  container.append(legend);
  const width = options.width || 900;
  const height = options.height || 180;
  const pad = { left: 48, right: 8, top: 8, bottom: 24 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...points.map((p) => p.values.reduce((a, b) => a + b, 0))));
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', role: 'img', preserveAspectRatio: 'none',
    'aria-label': options.title || 'chart' });
  // y axis: 4 ticks with grid lines
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const y = pad.top + innerH - (innerH * i) / 4;
    svg.append(s('line', { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: 'grid' }));
    svg.append(s('text', { x: pad.left - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }, fmtNum(Math.round(v))));
  }
  const n = Math.max(points.length, 1);
  const slot = innerW / n;
  const barW = Math.max(1, slot * 0.8);
  const tip = tooltip(container);
  // Leave room for the widest tick label (about 6.5 units per character at 11px).
  const longest = Math.max(1, ...points.map((p) => String(options.tickLabel ? options.tickLabel(p) : p.label).length));
  const labelEvery = Math.max(1, Math.ceil((n * (longest * 6.5 + 16)) / innerW));
  points.forEach((p, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    let y = pad.top + innerH;
    const group = s('g', { class: 'bar', tabindex: options.onClick ? 0 : null, 'data-start': p.start,
      role: options.onClick ? 'button' : null, 'aria-label': `${p.label}: ${fmtNum(p.values.reduce((a, b) => a + b, 0))}` });
    p.values.forEach((v, k) => {
      const hgt = (innerH * v) / max;
      if (hgt > 0) {
        y -= hgt;
        group.append(s('rect', { x, y, width: barW, height: hgt, class: (options.classes || SERIES_CLASS)[k] }));
      }
    });
    // A transparent full-height target so thin bars can be hovered and clicked.
    group.append(s('rect', { x: pad.left + i * slot, y: pad.top, width: slot, height: innerH, class: 'hit' }));
    const lines = () => [p.label, ...series.map((name, k) => `${name}: ${fmtNum(p.values[k])}`),
      `total: ${fmtNum(p.values.reduce((a, b) => a + b, 0))}`];
    group.addEventListener('mousemove', (e) => tip.show(e.clientX, e.clientY, lines()));
    group.addEventListener('mouseleave', () => tip.hide());
    group.addEventListener('focus', () => { const r = group.getBoundingClientRect(); tip.show(r.left, r.top, lines()); });
    group.addEventListener('blur', () => tip.hide());
    if (options.onClick) {
      group.addEventListener('click', () => { if (!dragged) options.onClick(p); });
      group.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); options.onClick(p); } });
    }
    svg.append(group);
    if (i % labelEvery === 0) {
      svg.append(s('text', { x: pad.left + i * slot + slot / 2, y: height - 6, class: 'axis', 'text-anchor': 'middle' },
        options.tickLabel ? options.tickLabel(p) : p.label));
    }
  });
  // drag across the chart to pick a time range
  let dragged = false;
  if (options.onRange && points.length) {
    let startX = null;
    const brush = s('rect', { class: 'brush', y: pad.top, height: innerH, width: 0, x: 0, visibility: 'hidden' });
    svg.append(brush);
    const toX = (e) => {
      const box = svg.getBoundingClientRect();
      return ((e.clientX - box.left) / box.width) * width;
    };
    const indexAt = (x) => Math.min(n - 1, Math.max(0, Math.floor((x - pad.left) / slot)));
    svg.addEventListener('mousedown', (e) => { startX = toX(e); dragged = false; e.preventDefault(); });
    svg.addEventListener('mousemove', (e) => {
      if (startX === null) return;
      const x = toX(e);
      if (Math.abs(x - startX) > 4) dragged = true;
      brush.setAttribute('x', Math.min(x, startX));
      brush.setAttribute('width', Math.abs(x - startX));
      brush.setAttribute('visibility', dragged ? 'visible' : 'hidden');
    });
    const finish = (e) => {
      if (startX === null) return;
      const x = toX(e);
      const a = indexAt(Math.min(x, startX));
      const b = indexAt(Math.max(x, startX));
      startX = null;
      brush.setAttribute('visibility', 'hidden');
      if (dragged) options.onRange(points[a].start, points[b].end);
      setTimeout(() => { dragged = false; }, 0);
    };
    svg.addEventListener('mouseup', finish);
    svg.addEventListener('mouseleave', (e) => { if (startX !== null) finish(e); });
  }
  container.append(svg);
  return container;
}

/** Hour x weekday heatmap. counts[weekday][hour]; weekdays: labels. */
export function heatmap(counts, weekdays, title, zone = 'UTC') {
  const cell = 22;
  const left = 40;
  const top = 18;
  const width = left + 24 * cell + 4;
  const height = top + weekdays.length * cell + 4;
  const max = Math.max(1, ...counts.flat());
  const container = h('figure', { class: 'chart heatmap' });
  if (title) container.append(h('figcaption', {}, title));
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', role: 'img', 'aria-label': title || 'heatmap' });
  const tip = tooltip(container);
  for (let hr = 0; hr < 24; hr += 3) {
    svg.append(s('text', { x: left + hr * cell + cell / 2, y: 12, class: 'axis', 'text-anchor': 'middle' }, `${hr}h`));
  }
  weekdays.forEach((day, d) => {
    svg.append(s('text', { x: left - 6, y: top + d * cell + cell / 2 + 4, class: 'axis', 'text-anchor': 'end' }, day));
    for (let hr = 0; hr < 24; hr++) {
      const v = counts[d][hr];
      const level = v === 0 ? 0 : Math.min(5, 1 + Math.floor((4 * v) / max));
      const rect = s('rect', { x: left + hr * cell + 1, y: top + d * cell + 1, width: cell - 2, height: cell - 2, rx: 3, class: `heat-${level}` });
      rect.addEventListener('mousemove', (e) => tip.show(e.clientX, e.clientY, [`${day} ${hr}:00–${hr + 1}:00 (${zone})`, `${fmtNum(v)} sign-ins`]));
      rect.addEventListener('mouseleave', () => tip.hide());
      svg.append(rect);
    }
  });
  container.append(svg);
  return container;
}

/** Horizontal bars: rows [{ label, value, note, onClick }]. */
export function barList(rows, options = {}) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  if (!rows.length) return h('p', { class: 'muted' }, options.empty || 'Nothing in this period.');
  return h('ul', { class: 'bar-list' }, rows.map((r) => {
    const fill = h('span', { class: 'bar-fill' });
    fill.style.width = `${(100 * r.value) / max}%`;
    const text = h('span', { class: 'bar-label' }, r.label || '(none)');
    return h('li', {},
      r.onClick ? h('button', { class: 'bar-row', onclick: r.onClick }, fill, text, h('span', { class: 'bar-value' }, r.note || fmtNum(r.value)))
        : h('div', { class: 'bar-row' }, fill, text, h('span', { class: 'bar-value' }, r.note || fmtNum(r.value))));
  }));
}
