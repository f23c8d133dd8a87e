// The statistics view: small charts drawn as inline SVG from GET /api/v1/stats (no library, no
// CDN). Messages per minute over the last hour, refusals by reason, sizes, top senders and
// recipient domains. Everything from mail is set as text, never as HTML.

import { ApiError, url } from './api.js';
import { $, formatSize, h, later, plural } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const REFRESH = 10_000; // ms between reloads while the view is shown

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c);
  return el;
}

async function fetchStats() {
  const resp = await fetch(url('api/v1/stats'));
  if (!resp.ok) throw new ApiError(resp.status, (await resp.text()).trim());
  return resp.json();
}

function minuteLabel(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// Vertical bars, one per minute, with the peak marked and each bar titled with its count.
function perMinuteChart(series) {
  const width = 600;
  const height = 120;
  const gap = 2;
  const peak = Math.max(1, ...series.map((p) => p.Messages));
  const step = width / Math.max(1, series.length);
  const bars = series.map((p, i) => {
    const barHeight = p.Messages ? Math.max(2, (p.Messages / peak) * (height - 4)) : 0;
    return svg(
      'rect',
      {
        class: 'bar',
        x: (i * step + gap / 2).toFixed(1),
        y: (height - barHeight).toFixed(1),
        width: Math.max(1, step - gap).toFixed(1),
        height: barHeight.toFixed(1),
        'data-count': p.Messages,
      },
      svg('title', {}, document.createTextNode(`${minuteLabel(p.Minute)}: ${plural(p.Messages, 'message')}`)),
    );
  });
  const total = series.reduce((sum, p) => sum + p.Messages, 0);
  return h(
    'figure',
    { class: 'stat-card wide', dataset: { chart: 'per-minute' } },
    h('figcaption', {}, h('span', { text: 'Messages per minute, last hour' }), h('span', { class: 'muted', text: `${plural(total, 'message')}, peak ${peak}/min` })),
    svg(
      'svg',
      { class: 'chart', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `Messages per minute over the last hour: ${total} in all, at most ${peak} in a minute` },
      svg('line', { class: 'axis', x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }),
      bars,
    ),
    h(
      'div',
      { class: 'chart-axis muted' },
      h('span', { text: series.length ? minuteLabel(series[0].Minute) : '' }),
      h('span', { text: 'now' }),
    ),
  );
}

// Horizontal bars: a label, a bar scaled to the largest value, the value.
function barList(chart, title, rows, empty) {
  const peak = Math.max(1, ...rows.map((r) => r.value));
  return h(
    'figure',
    { class: 'stat-card', dataset: { chart } },
    h('figcaption', {}, h('span', { text: title })),
    rows.length
      ? h(
          'ul',
          { class: 'bar-list' },
          rows.map((r) =>
            h(
              'li',
              { class: 'bar-row' },
              h('span', { class: 'bar-label', text: r.label, title: r.label }),
              svg(
                'svg',
                { class: 'hbar', viewBox: '0 0 100 10', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
                svg('rect', { class: 'bar', x: 0, y: 0, height: 10, width: ((r.value / peak) * 100).toFixed(2) }),
              ),
              h('span', { class: 'bar-value', text: r.shown ?? r.value.toLocaleString() }),
            ),
          ),
        )
      : h('p', { class: 'muted empty-chart', text: empty }),
  );
}

function sizeLabel(upTo, previous) {
  if (upTo === null) return `over ${formatSize(previous)}`;
  return `up to ${formatSize(upTo)}`;
}

function render(el, data) {
  const t = data.Totals;
  const sizes = data.Sizes.map((s, i) => ({
    label: sizeLabel(s.UpTo, i ? data.Sizes[i - 1].UpTo : 0),
    value: s.Messages,
  }));
  el.replaceChildren(
    h(
      'div',
      { class: 'toolbar list-toolbar' },
      h('span', { class: 'list-title', text: 'Statistics' }),
      h('span', { class: 'muted small', text: `updated ${new Date(data.Generated).toLocaleTimeString()}` }),
    ),
    h(
      'div',
      { class: 'stats-body' },
      h(
        'dl',
        { class: 'stat-totals' },
        [
          ['Messages kept', t.Messages.toLocaleString()],
          ['Unread', t.Unread.toLocaleString()],
          ['Accepted since start', t.Accepted.toLocaleString()],
          ['Accepted size', formatSize(t.AcceptedSize)],
          ['Deleted', t.Deleted.toLocaleString()],
        ].map(([k, v]) => h('div', { class: 'stat-total' }, h('dt', { text: k }), h('dd', { text: v }))),
      ),
      perMinuteChart(data.PerMinute),
      h(
        'div',
        { class: 'stat-grid' },
        barList(
          'refusals',
          'Refusals by reason',
          data.Refusals.map((r) => ({ label: `${r.Reason} (${r.Code})`, value: r.Count })),
          'No refusals since start',
        ),
        barList('sizes', 'Message sizes', sizes, 'No messages'),
        barList(
          'senders',
          'Top senders',
          data.TopSenders.map((s) => ({ label: s.Address, value: s.Messages })),
          'No messages',
        ),
        barList(
          'domains',
          'Top recipient domains',
          data.TopRecipientDomains.map((d) => ({ label: d.Domain, value: d.Messages })),
          'No messages',
        ),
      ),
    ),
  );
}

export class StatsView {
  constructor(el) {
    this.el = el;
    this.timer = 0;
    this.seq = 0;
    this.reload = later(() => this.load());
  }

  get visible() {
    return !this.el.hidden;
  }

  // A burst of events gives one reload, half a second after its first event (and a steady
  // stream one every half second).
  soon() {
    this.reload(500);
  }

  async load() {
    const seq = ++this.seq;
    clearTimeout(this.timer);
    try {
      const data = await fetchStats();
      if (seq === this.seq) render(this.el, data);
    } catch (err) {
      if (seq === this.seq) this.el.replaceChildren(h('div', { class: 'empty' }, h('p', { text: `Statistics unavailable: ${err.message}` })));
    } finally {
      // Refresh while shown; a hidden view stops until it is shown again.
      if (seq === this.seq && this.visible) this.timer = setTimeout(() => this.load(), REFRESH);
    }
  }
}

export function statsView() {
  return new StatsView($('#stats-view'));
}
