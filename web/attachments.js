// The files of a message: the strip under its header (always shown, as Mailpit lists them: name,
// size, a download link) and the Attachments tab (the same files with image thumbnails).

import { partUrl } from './api.js';
import { formatSize, h } from './dom.js';
import { ICONS, icon } from './state.js';

function parts(m) {
  return [
    ...(m.Attachments || []).map((p) => ({ ...p, kind: 'attachment' })),
    ...(m.Inline || []).map((p) => ({ ...p, kind: 'inline' })),
  ];
}

// Without bidirectional controls: "invoice<U+202E>fdp.exe" would show as "invoiceexe.pdf".
const BIDI = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const fileName = (p) => (p.FileName || '').replace(BIDI, '') || `part-${p.PartID}`;

// Attachments only: inline parts (the images an HTML body shows) are in the tab, not the strip.
export function attachmentStrip(m) {
  const files = m.Attachments || [];
  if (!files.length) return null;
  return h(
    'ul',
    { class: 'att-strip', id: 'att-strip', 'aria-label': 'Attachments' },
    files.map((p) => {
      const name = fileName(p);
      return h(
        'li',
        { class: 'att-chip' },
        h(
          'a',
          { href: partUrl(m.ID, p.PartID), download: name, title: `Download ${name} (${p.ContentType || 'application/octet-stream'})` },
          icon(ICONS.clip),
          h('span', { class: 'att-chip-name', text: name }),
          h('span', { class: 'att-chip-size', text: formatSize(p.Size) }),
        ),
      );
    }),
  );
}

export async function attachmentsTab(m) {
  return h(
    'ul',
    { class: 'attachments' },
    parts(m).map((p) => {
      const href = partUrl(m.ID, p.PartID);
      const name = fileName(p);
      const image = /^image\//i.test(p.ContentType);
      return h(
        'li',
        { class: 'attachment' },
        h('div', { class: 'preview' }, image ? h('img', { src: `${href}/thumb`, alt: '', loading: 'lazy' }) : h('span', { class: 'ext', text: (name.split('.').pop() || 'file').slice(0, 5).toUpperCase() })),
        h(
          'div',
          { class: 'att-info' },
          h('div', { class: 'att-name', text: name, title: name }),
          h('div', { class: 'muted small', text: `${p.ContentType || 'application/octet-stream'} · ${formatSize(p.Size)}${p.kind === 'inline' ? ' · inline' : ''}` }),
        ),
        h('a', { class: 'btn small', href, download: name, 'aria-label': `Download ${name}` }, icon(ICONS.download), 'Download'),
      );
    }),
  );
}

export function fileCount(m) {
  return parts(m).length;
}
