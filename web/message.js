// The message view: the toolbar, the header, the tabs (HTML, text, source, headers, raw, SMTP,
// relay, warnings, checks, attachments) and the actions on the open message.

import { api, base, partPrefix, rawDownloadUrl } from './api.js';
import { attachmentStrip, attachmentsTab, fileCount } from './attachments.js';
import { renderChecks } from './checks.js';
import { $, addressText, formatFullTime, formatSize, h, highlightHtml, isTyping } from './dom.js';
import { goPage, loadList, onDelete, onUpdate, replaceRow, select, setSearch, tagChip } from './list.js';
import { showView, writeUrl } from './nav.js';
import { refusedPanel } from './refused.js';
import { openRelease, relayPanel, relayShown } from './release.js';
import { htmlScreenshot, saveBlob } from './screenshot.js';
import { showSessions, transcript } from './sessions.js';
import { openTags } from './tagchips.js';
import { ICONS, els, icon, showError, state, toast } from './state.js';

const WIDTHS = { phone: 375, tablet: 768, desktop: 0 };
// The width below which the open message covers the list (style.css's narrowest layout).
const PHONE = matchMedia('(max-width: 760px)');

let messageSeq = 0; // a newer open supersedes a load still under way

// -- opening, closing, the toolbar and header --------------------------------------------------

export async function openMessage(id, { history: push = true } = {}) {
  const seq = ++messageSeq;
  state.openId = id;
  if (push) writeUrl(true);
  for (const row of els.list.querySelectorAll('.row.open')) row.classList.remove('open');
  document.getElementById(`msg-${id}`)?.classList.add('open');
  els.inboxView.classList.add('has-message');
  let msg;
  try {
    msg = await api.message(id);
  } catch (err) {
    if (seq !== messageSeq) return;
    state.message = null;
    els.placeholder.hidden = true;
    els.message.hidden = false;
    els.message.replaceChildren(
      h('div', { class: 'empty' }, h('p', { text: err.status === 404 ? 'This message no longer exists.' : `Could not load the message: ${err.message}` })),
    );
    return;
  }
  if (seq !== messageSeq) return;
  state.message = msg;
  state.cache = {};
  const local = state.messages.find((x) => x.ID === id);
  if (local && !local.Read) {
    local.Read = true;
    replaceRow(local);
  }
  renderMessage();
}

export function closeMessage({ history: push = true, note = '' } = {}) {
  messageSeq += 1;
  const wasOpen = state.openId;
  state.openId = null;
  state.message = null;
  els.inboxView.classList.remove('has-message');
  els.message.hidden = true;
  els.message.replaceChildren();
  els.placeholder.hidden = false;
  for (const row of els.list.querySelectorAll('.row.open')) row.classList.remove('open');
  if (push) writeUrl(true);
  if (note) toast(note);
  if (wasOpen && !state.selected) select(wasOpen);
}

// The open message left the list without a delete event (a poll while the websocket is down, a
// server restarted on a new database): ask the server, and close it as a delete event would if
// it is gone, rather than go on showing a message every action on fails.
export async function recheckOpen() {
  const id = state.openId;
  if (!id) return;
  try {
    await api.message(id);
  } catch (err) {
    if (err.status === 404 && state.openId === id) closeMessage({ note: 'This message was deleted' });
  }
}

function toolButton(label, path, onclick, extra = {}) {
  return h('button', { class: 'btn ghost tool', type: 'button', title: label, 'aria-label': label, onclick, ...extra }, icon(path), h('span', { class: 'tool-label', text: label }));
}

export function renderMessage() {
  const m = state.message;
  const relay = state.config?.MessageRelay?.Enabled;
  const toolbar = h(
    'div',
    { class: 'toolbar msg-toolbar', role: 'toolbar', 'aria-label': 'Message actions' },
    h('button', { class: 'icon-btn back-btn', type: 'button', 'aria-label': 'Back to the list', title: 'Back (Esc)', onclick: () => closeMessage() }, icon(ICONS.back)),
    toolButton('Mark unread', ICONS.mail, toggleRead, { id: 'read-toggle' }),
    toolButton('Delete', ICONS.trash, () => deleteMessage(m.ID), { id: 'delete-btn' }),
    toolButton('Tags', ICONS.tag, openTagDialog, { id: 'tag-btn' }),
    relay ? toolButton('Release', ICONS.send, openReleaseDialog, { id: 'release-btn' }) : null,
    h('a', { class: 'btn ghost tool', href: rawDownloadUrl(m.ID), download: `${m.ID}.eml`, title: 'Download as .eml', 'aria-label': 'Download as .eml' }, icon(ICONS.download), h('span', { class: 'tool-label', text: '.eml' })),
    h('span', { class: 'spacer' }),
    h('button', { class: 'icon-btn', id: 'msg-newer', type: 'button', 'aria-label': 'Newer message', title: 'Newer (k)', onclick: () => moveOpen(-1) }, icon(ICONS.up)),
    h('button', { class: 'icon-btn', id: 'msg-older', type: 'button', 'aria-label': 'Older message', title: 'Older (j)', onclick: () => moveOpen(1) }, icon(ICONS.down)),
  );
  const head = h('header', { class: 'msg-head', id: 'msg-head' });
  const tabs = messageTabs(m);
  const tablist = h(
    'div',
    { class: 'tabs', role: 'tablist', 'aria-label': 'Message views' },
    tabs.map((t) =>
      h(
        'button',
        {
          class: 'tab',
          type: 'button',
          role: 'tab',
          id: `tab-${t.key}`,
          'aria-controls': 'tab-panel',
          'aria-selected': 'false',
          tabindex: '-1',
          dataset: { tab: t.key },
          onclick: () => showTab(t.key),
          onkeydown: (e) => tabKeys(e, tabs),
        },
        t.label,
        t.count ? h('span', { class: `count${t.key === 'warnings' ? ' warn' : ''}`, text: String(t.count) }) : null,
      ),
    ),
  );
  const panel = h('div', { class: 'tab-panel', id: 'tab-panel', role: 'tabpanel', tabindex: '0' });
  els.message.replaceChildren(toolbar, head, tablist, panel);
  els.placeholder.hidden = true;
  els.message.hidden = false;
  renderMessageHead();
  updateReadButton();
  updateMoveButtons();
  const keep = state.tab && tabs.some((t) => t.key === state.tab) && state.tab;
  showTab(keep || (m.HTML ? 'html' : 'text'));
}

function messageTabs(m) {
  const files = fileCount(m);
  return [
    m.HTML ? { key: 'html', label: 'HTML' } : null,
    { key: 'text', label: 'Text' },
    m.HTML ? { key: 'source', label: 'HTML source' } : null,
    { key: 'headers', label: 'Headers' },
    { key: 'raw', label: 'Raw' },
    { key: 'smtp', label: 'SMTP' },
    // Only where this instance relays or forwards: otherwise the tab would always be empty.
    relayShown(state.config) ? { key: 'relay', label: 'Relay' } : null,
    { key: 'warnings', label: 'Warnings', count: m.Warnings?.length || 0 },
    { key: 'checks', label: 'Checks' },
    files ? { key: 'attachments', label: 'Attachments', count: files } : null,
  ].filter(Boolean);
}

function tabKeys(e, tabs) {
  if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
  e.preventDefault();
  e.stopPropagation();
  const i = tabs.findIndex((t) => t.key === state.tab);
  const next = tabs[(i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
  showTab(next.key);
  document.getElementById(`tab-${next.key}`)?.focus();
}

export function renderMessageHead() {
  const m = state.message;
  const head = $('#msg-head');
  if (!m || !head) return;
  const row = (label, value) =>
    value ? [h('dt', { text: label }), h('dd', { text: value })] : null;
  const list = (a) => (a || []).map(addressText).join(', ');
  // replaceChildren would show a null child as the text "null": drop the absent tag row.
  const children = [
    h('h1', { class: 'msg-subject', text: m.Subject || '(no subject)' }),
    (m.Tags || []).length
      ? h('div', { class: 'msg-tags' }, m.Tags.map((t) => tagChip(t, () => setSearch(/[\s"]/.test(t) ? `tag:"${t}"` : `tag:${t}`))))
      : null,
    h(
      'dl',
      { class: 'msg-meta' },
      row('From', addressText(m.From)),
      row('To', list(m.To)),
      row('Cc', list(m.Cc)),
      row('Bcc', list(m.Bcc)),
      row('Reply-To', list(m.ReplyTo)),
      row('Date', formatFullTime(m.Date || m.Created)),
      row('Size', formatSize(m.Size)),
    ),
    attachmentStrip(m),
  ];
  head.replaceChildren(...children.filter(Boolean));
}

export function updateReadButton() {
  const b = $('#read-toggle');
  const m = state.message;
  if (!b || !m) return;
  const label = m.Read ? 'Mark unread' : 'Mark read';
  b.title = `${label} (u)`;
  b.setAttribute('aria-label', label);
  $('.tool-label', b).textContent = label;
  b.replaceChild(icon(m.Read ? ICONS.mail : ICONS.mailOpen), b.firstChild);
}

async function showTab(key) {
  state.tab = key;
  writeUrl(); // replaced, not pushed: back goes to the previous message, not the previous tab
  for (const t of els.message.querySelectorAll('.tab')) {
    const on = t.dataset.tab === key;
    t.setAttribute('aria-selected', on ? 'true' : 'false');
    t.tabIndex = on ? 0 : -1;
  }
  const panel = $('#tab-panel');
  panel.setAttribute('aria-labelledby', `tab-${key}`);
  panel.dataset.tab = key;
  const m = state.message;
  const render = TABS[key];
  panel.replaceChildren(h('div', { class: 'loading', text: 'Loading…' }));
  try {
    const content = await render(m);
    if (state.message !== m || state.tab !== key) return;
    panel.replaceChildren(content);
  } catch (err) {
    if (state.message !== m || state.tab !== key) return;
    panel.replaceChildren(h('p', { class: 'error', text: `Could not load this view: ${err.message}` }));
  }
}

// -- the tabs: each renders its panel, loading what it needs once per open message -------------

async function cached(name, load) {
  state.cache ||= {};
  if (!(name in state.cache)) state.cache[name] = await load();
  return state.cache[name];
}

const REMOTE = [
  /<(?:img|image|link|video|audio|source|input|table|td|body|iframe|object|embed)\b[^>]*\b(?:src|href|srcset|poster|background|data)\s*=\s*["']?\s*(?:https?:)?\/\//i,
  /url\(\s*["']?\s*(?:https?:)?\/\//i,
  /@import\s+["']?\s*(?:https?:)?\/\//i,
];

function srcdoc(html, id, allowRemote) {
  const parts = partPrefix(id);
  const csp = allowRemote
    ? "default-src 'none'; img-src * data: blob:; style-src * 'unsafe-inline'; font-src * data:; media-src *"
    : `default-src 'none'; img-src data: ${parts}; style-src 'unsafe-inline'; font-src data: ${parts}; media-src data: ${parts}`;
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;');
  return (
    `<!doctype html><html><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">` +
    `<meta name="referrer" content="no-referrer">` +
    `<base href="${esc(base.href)}" target="_blank">` +
    `<style>html{background:#fff;color:#000;color-scheme:light}</style></head><body>${html}`
  );
}

const TABS = {
  async html(m) {
    const html = await cached('html', () => api.html(m.ID));
    const hasRemote = REMOTE.some((re) => re.test(html));
    const allowed = state.allowRemote.has(m.ID);
    const frame = h('iframe', {
      class: 'html-frame',
      id: 'html-frame',
      title: 'HTML body of the message',
      // No allow-scripts: a <script> in the mail never runs. Links open in a new tab.
      sandbox: 'allow-popups allow-popups-to-escape-sandbox',
      referrerpolicy: 'no-referrer',
    });
    frame.srcdoc = srcdoc(html, m.ID, allowed);
    // Focusable: at phone and tablet widths it scrolls, and keys must be able to scroll it.
    const wrap = h('div', { class: 'frame-wrap', tabindex: '0', role: 'region', 'aria-label': 'Message preview', dataset: { width: state.width } }, frame);
    applyWidth(wrap, frame);
    const seg = h(
      'div',
      { class: 'segmented', role: 'group', 'aria-label': 'Preview width' },
      Object.keys(WIDTHS).map((w) =>
        h('button', {
          type: 'button',
          class: 'seg',
          'aria-pressed': state.width === w ? 'true' : 'false',
          dataset: { width: w },
          text: { phone: 'Phone', tablet: 'Tablet', desktop: 'Desktop' }[w],
          title: w === 'desktop' ? 'Full width' : `${WIDTHS[w]} px wide`,
          onclick: (e) => {
            state.width = w;
            localStorage.setItem('mp.width', w);
            for (const b of e.currentTarget.parentNode.children) b.setAttribute('aria-pressed', b.dataset.width === w ? 'true' : 'false');
            wrap.dataset.width = w;
            applyWidth(wrap, frame);
          },
        }),
      ),
    );
    const banner =
      hasRemote && !allowed
        ? h(
            'div',
            { class: 'banner', id: 'remote-banner' },
            h('span', { text: 'Remote images and styles are blocked to protect your privacy (tracking pixels).' }),
            h('button', {
              class: 'btn small',
              type: 'button',
              id: 'allow-remote',
              text: 'Load remote content',
              onclick: () => {
                state.allowRemote.add(m.ID);
                sessionStorage.setItem('mp.allowRemote', JSON.stringify([...state.allowRemote].slice(-200)));
                showTab('html');
              },
            }),
          )
        : null;
    const shot = h('button', {
      class: 'btn small',
      type: 'button',
      id: 'screenshot-btn',
      title: 'Download the HTML view as a PNG image (at the width shown)',
      text: 'Screenshot',
      onclick: async (e) => {
        const b = e.currentTarget;
        b.disabled = true;
        try {
          const blob = await htmlScreenshot(m.ID, html, WIDTHS[state.width] || Math.round(frame.clientWidth) || 800);
          saveBlob(blob, `${m.ID}.png`);
        } catch (err) {
          showError(err);
        } finally {
          b.disabled = false;
        }
      },
    });
    return h('div', { class: 'html-view' }, h('div', { class: 'html-bar' }, seg, shot, banner), wrap);
  },
  async text(m) {
    if (!m.Text) return h('p', { class: 'muted pad', text: 'This message has no text part.' });
    return h('pre', { class: 'text-body', text: m.Text });
  },
  async source(m) {
    const pre = h('pre', { class: 'code' });
    highlightHtml(m.HTML, pre);
    return pre;
  },
  async headers(m) {
    const headers = await cached('headers', () => api.headers(m.ID));
    const rows = [];
    for (const [name, values] of Object.entries(headers)) {
      for (const v of values) rows.push(h('tr', {}, h('th', { scope: 'row', text: name }), h('td', { text: v })));
    }
    return h('table', { class: 'headers' }, h('tbody', {}, rows));
  },
  async raw(m) {
    const raw = await cached('raw', () => api.raw(m.ID));
    const LIMIT = 2_000_000;
    return h(
      'div',
      { class: 'raw-view' },
      h(
        'div',
        { class: 'tab-bar' },
        h('span', { class: 'muted small', text: `${formatSize(m.Size)} as received` }),
        h('a', { class: 'btn small', href: rawDownloadUrl(m.ID), download: `${m.ID}.eml`, id: 'raw-download' }, icon(ICONS.download), 'Download .eml'),
      ),
      h('pre', { class: 'code raw', text: raw.length > LIMIT ? `${raw.slice(0, LIMIT)}\n\n[… cut here: download the .eml for the rest]` : raw }),
    );
  },
  async smtp(m) {
    const data = await cached('smtp', () => api.smtp(m.ID));
    const env = data.Envelope || {};
    const yes = (b) => (b ? 'yes' : 'no');
    const card = h(
      'dl',
      { class: 'envelope' },
      [
        ['MAIL FROM', env.From === '' ? '<> (null sender)' : `<${env.From}>`],
        ['RCPT TO', (env.To || []).map((a) => `<${a}>`).join(', ')],
        ['HELO / EHLO', env.Helo || '—'],
        ['Client', env.Peer || '—'],
        ['Protocol', env.Protocol || '—'],
        ['TLS', yes(env.TLS)],
        ['AUTH', env.Username ? `yes, as ${env.Username}` : 'no'],
        ...(env.Listener ? [['Listener', env.Listener]] : []),
      ].flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]),
    );
    const link = data.SessionID
      ? h('a', { href: `?view=sessions&s=${encodeURIComponent(data.SessionID)}`, onclick: (e) => { e.preventDefault(); showSessions(data.SessionID); }, text: 'Open the whole session' })
      : null;
    return h(
      'div',
      { class: 'smtp-view' },
      refusedPanel(m.Refused),
      h('h2', { class: 'section-title', text: 'Envelope' }),
      card,
      h('div', { class: 'section-head' }, h('h2', { class: 'section-title', text: 'Conversation' }), link),
      transcript(data.Transcript || []),
    );
  },
  relay: (m) => relayPanel(m),
  async warnings(m) {
    const w = m.Warnings || [];
    if (!w.length) return h('p', { class: 'muted pad', text: 'No warnings: the parser noticed nothing unusual in this message.' });
    return h('ul', { class: 'warnings' }, w.map((t) => h('li', { text: t })));
  },
  checks: (m) => renderChecks(m, state.config),
  attachments: attachmentsTab,
};

function applyWidth(wrap, frame) {
  const px = WIDTHS[state.width] || 0;
  frame.style.width = px ? `${px}px` : '100%';
}

// -- actions on the open message ---------------------------------------------------------------

export async function toggleRead() {
  const m = state.message;
  if (!m) return;
  const read = !m.Read;
  try {
    await api.markRead([m.ID], read);
    onUpdate({ ID: m.ID, Read: read });
  } catch (err) {
    showError(err);
  }
}

export async function deleteMessage(id) {
  if (!id) return;
  const i = state.messages.findIndex((x) => x.ID === id);
  try {
    await api.remove([id]);
  } catch (err) {
    showError(err);
    return;
  }
  const next = state.messages[i + 1] || state.messages[i - 1];
  if (state.openId === id && next && !PHONE.matches) {
    // As Mailpit: with the list beside it, deleting the open message opens the next (older)
    // one, so mail is read and cleared in a row; the deleted one's address leaves the history.
    openMessage(next.ID, { history: false });
    writeUrl();
  } else if (state.openId === id) {
    closeMessage();
  }
  onDelete(id);
  if (next) select(next.ID, true);
  // Keep the keyboard in the list, unless the user has moved on to typing somewhere.
  if (!isTyping(document.activeElement)) els.list.focus({ preventScroll: true });
}

export async function openTagDialog() {
  const m = state.message;
  if (!m) return;
  const tags = await openTags({ title: 'Tags', label: 'Tags of this message', tags: m.Tags || [] });
  if (tags === null) return;
  try {
    await api.setTags([m.ID], tags);
    // Sorted, as the server stores and reports them (its update event follows): shown in the
    // typed order first, the chips would reorder a moment later.
    onUpdate({ ID: m.ID, Tags: [...tags].sort() });
  } catch (err) {
    showError(err);
  }
}

function openReleaseDialog() {
  openRelease(state.message, state.config, toast);
}

// -- moving between messages -------------------------------------------------------------------

// Where newer (-1) or older (+1) leads from the open message: a row of this page, the next or
// previous page (the open message is at its edge), or nowhere.
function moveTarget(delta) {
  const i = state.messages.findIndex((m) => m.ID === state.openId);
  if (i < 0) return null;
  if (state.messages[i + delta]) return 'row';
  if (delta < 0 && i === 0 && state.start > 0) return 'page';
  if (delta > 0 && i === state.messages.length - 1 && state.start + state.messages.length < state.matched) return 'page';
  return null;
}

// The list changes under an open message (mail arrives, a delete, another page, a poll), so the
// newer and older buttons are set whenever it is drawn, not once when the message opens.
export function updateMoveButtons() {
  const newer = document.getElementById('msg-newer');
  const older = document.getElementById('msg-older');
  if (newer) newer.disabled = !moveTarget(-1);
  if (older) older.disabled = !moveTarget(1);
}

export async function moveOpen(delta) {
  const target = moveTarget(delta);
  if (target === 'row') {
    const i = state.messages.findIndex((m) => m.ID === state.openId);
    const next = state.messages[i + delta];
    select(next.ID, true);
    openMessage(next.ID);
  } else if (target === 'page') {
    // Reading mail with j past a page's last message goes on to the next page's first.
    await goPage(delta);
    const next = delta > 0 ? state.messages[0] : state.messages[state.messages.length - 1];
    if (!next) return;
    select(next.ID, true);
    // One step in the history (the page's, now naming the message), not one more for it.
    openMessage(next.ID, { history: false });
    writeUrl();
  }
}

// Opens a message from elsewhere (a session, a notification): the inbox, unfiltered.
export function goMessage(id) {
  state.view = 'inbox';
  state.query = '';
  els.search.value = '';
  showView();
  loadList().catch(showError);
  openMessage(id);
}
