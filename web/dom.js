// Small DOM and formatting helpers. Content from mail is only ever set as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** A reload that events ask for: `soon(ms)` runs `fn` once, `ms` after the first ask of a run
 * (or sooner, when a later ask wants it sooner). A wait that started over at each ask never ran
 * while mail kept coming faster than it (a test suite's steady stream). */
export function later(fn) {
  let timer = 0;
  let due = 0;
  return function soon(ms) {
    const at = Date.now() + ms;
    if (timer && due <= at) return;
    clearTimeout(timer);
    due = at;
    timer = setTimeout(() => {
      timer = 0;
      fn();
    }, ms);
  };
}

export function formatSize(n) {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i += 1;
  } while (v >= 1024 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

// toLocaleString() with options builds a new formatter at each call (~0.15 ms): two a row made
// formatting the larger part of drawing a page of the list. These are built once.
const FORMATS = {
  time: new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit' }),
  day: new Intl.DateTimeFormat([], { month: 'short', day: 'numeric' }),
  date: new Intl.DateTimeFormat([], { year: 'numeric', month: 'short', day: 'numeric' }),
  full: new Intl.DateTimeFormat([], {
    weekday: 'short', year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }),
};

export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return FORMATS.time.format(d);
  if (d.getFullYear() === now.getFullYear()) return FORMATS.day.format(d);
  return FORMATS.date.format(d);
}

export function formatFullTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso || '';
  return FORMATS.full.format(d);
}

export function addressText(a) {
  if (!a) return '';
  return a.Name ? `${a.Name} <${a.Address}>` : a.Address;
}

export function addressShort(a) {
  if (!a) return '';
  return a.Name || a.Address || '';
}

export function plural(n, one, many = `${one}s`) {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

// A tiny, safe HTML source highlighter: builds spans, never parses the markup as HTML.
export function highlightHtml(src, into) {
  const re = /(<!--[\s\S]*?-->)|(<\/?[A-Za-z][^\s/>]*)((?:\s+[^\s=>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?)*)\s*(\/?>)|(<!DOCTYPE[^>]*>)/gi;
  let last = 0;
  const frag = document.createDocumentFragment();
  const text = (t, cls) => frag.append(cls ? h('span', { class: cls, text: t }) : document.createTextNode(t));
  for (const m of src.matchAll(re)) {
    if (m.index > last) text(src.slice(last, m.index));
    if (m[1] || m[5]) {
      text(m[0], 'hl-comment');
    } else {
      text(m[2], 'hl-tag');
      const attrs = m[3] || '';
      const are = /(\s+)([^\s=>]+)(?:(\s*=\s*)("[^"]*"|'[^']*'|[^\s>]+))?/g;
      let a;
      while ((a = are.exec(attrs))) {
        text(a[1]);
        text(a[2], 'hl-attr');
        if (a[3]) {
          text(a[3]);
          text(a[4], 'hl-value');
        }
      }
      text(m[0].slice(m[2].length + attrs.length), 'hl-tag');
    }
    last = m.index + m[0].length;
  }
  if (last < src.length) text(src.slice(last));
  into.replaceChildren(frag);
}

// The favicon, drawn on a canvas: an envelope, with the unread count on a badge.
export function drawFavicon(unread) {
  const size = 64;
  const c = document.createElement('canvas');
  c.width = size;
  c.height = size;
  const g = c.getContext('2d');
  if (!g) return;
  g.fillStyle = '#2563eb';
  roundRect(g, 2, 10, 60, 44, 9);
  g.fill();
  g.strokeStyle = '#ffffff';
  g.lineWidth = 5;
  g.lineJoin = 'round';
  g.beginPath();
  g.moveTo(11, 20);
  g.lineTo(32, 36);
  g.lineTo(53, 20);
  g.stroke();
  if (unread > 0) {
    const label = unread > 99 ? '99+' : String(unread);
    g.fillStyle = '#dc2626';
    g.beginPath();
    const w = label.length > 1 ? 46 : 36;
    roundRect(g, size - w, 0, w, 36, 18);
    g.fill();
    g.fillStyle = '#ffffff';
    g.font = `bold ${label.length > 2 ? 22 : 28}px system-ui, sans-serif`;
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText(label, size - w / 2, 19);
  }
  let link = document.getElementById('favicon');
  if (!link) {
    link = h('link', { id: 'favicon', rel: 'icon' });
    document.head.append(link);
  }
  link.type = 'image/png';
  link.href = c.toDataURL('image/png');
}

function roundRect(g, x, y, w, h2, r) {
  g.beginPath();
  g.moveTo(x + r, y);
  g.arcTo(x + w, y, x + w, y + h2, r);
  g.arcTo(x + w, y + h2, x, y + h2, r);
  g.arcTo(x, y + h2, x, y, r);
  g.arcTo(x, y, x + w, y, r);
  g.closePath();
}

// Whether keys go to a field being typed in (they are not shortcuts then).
export function isTyping(el) {
  return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}
