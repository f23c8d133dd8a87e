// A PNG of the HTML view, drawn in the browser: the mail's HTML is parsed into an inert document
// (DOMParser runs no script and loads nothing), its part images are inlined as data: URLs, and it
// is drawn as an SVG image (an SVG used as an image never runs script nor fetches anything) on a
// canvas, cropped at the last row that is not blank. The mail's HTML never runs in the UI's
// origin: it is only ever text, an inert document and an image here. Remote images are left out
// (an SVG image cannot load them), as they are in the view until allowed.

import { partPrefix } from './api.js';

const MAX_HEIGHT = 10000; // px: a longer mail is cut there
const PAD = 16; // px kept below the last painted row

function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

async function inlineParts(doc, id) {
  const prefix = partPrefix(id);
  const cache = new Map();
  for (const img of doc.querySelectorAll('img[src]')) {
    const src = new URL(img.getAttribute('src'), document.baseURI).href;
    if (!src.startsWith(prefix)) {
      if (!src.startsWith('data:')) img.removeAttribute('src');
      continue;
    }
    if (!cache.has(src)) {
      cache.set(src, fetch(src).then((r) => (r.ok ? r.blob().then(blobToDataUrl) : '')).catch(() => ''));
    }
    const data = await cache.get(src);
    if (data) img.setAttribute('src', data);
    else img.removeAttribute('src');
  }
  for (const el of doc.querySelectorAll('script, iframe, object, embed, link, meta[http-equiv]')) el.remove();
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the browser could not draw this HTML'));
    img.src = src;
  });
}

// The last row, from the top, with a pixel that is not white: where the mail's content ends.
function contentHeight(ctx, width, height) {
  const data = ctx.getImageData(0, 0, width, height).data;
  for (let y = height - 1; y >= 0; y -= 1) {
    const row = y * width * 4;
    for (let x = 0; x < width * 4; x += 4) {
      if (data[row + x] < 250 || data[row + x + 1] < 250 || data[row + x + 2] < 250) return y + 1;
    }
  }
  return 0;
}

// Draws message `id`'s HTML at `width` px into a PNG blob.
export async function htmlScreenshot(id, html, width) {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  await inlineParts(doc, id);
  const style = doc.createElement('style');
  style.textContent = 'html{background:#fff;color:#000;color-scheme:light}';
  doc.head.prepend(style);
  const xhtml = new XMLSerializer().serializeToString(doc.documentElement);
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${MAX_HEIGHT}">` +
    `<foreignObject x="0" y="0" width="100%" height="100%">${xhtml}</foreignObject></svg>`;
  const img = await loadImage(`data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`);
  const full = document.createElement('canvas');
  full.width = width;
  full.height = MAX_HEIGHT;
  const ctx = full.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, MAX_HEIGHT);
  ctx.drawImage(img, 0, 0);
  const height = Math.min(MAX_HEIGHT, Math.max(contentHeight(ctx, width, MAX_HEIGHT) + PAD, 64));
  const out = document.createElement('canvas');
  out.width = width;
  out.height = height;
  out.getContext('2d').drawImage(full, 0, 0);
  return new Promise((resolve, reject) => {
    out.toBlob((b) => (b ? resolve(b) : reject(new Error('no PNG from the canvas'))), 'image/png');
  });
}

// Saves a blob as a download named `name`.
export function saveBlob(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
