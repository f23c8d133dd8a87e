// mailpit_py web UI: the inbox, the message view with its tabs, the SMTP sessions page.
// Plain ES modules, no build step; talks only to the REST API and the /api/events websocket.

import { api, base, partPrefix, partUrl, rawDownloadUrl } from './api.js';
import {
  $, addressShort, addressText, drawFavicon, formatFullTime, formatSize, formatTime, h,
  highlightHtml, plural,
} from './dom.js';
import { Live } from './live.js';
import { openRelease, relayPanel, relayShown } from './release.js';
import { renderChecks } from './checks.js';
import { statsView } from './stats.js';

const PAGE = 50;
const SEARCH_PAUSE = 250; // ms of typing pause before the search runs
const WIDTHS = { phone: 375, tablet: 768, desktop: 0 };
const ICONS = {
  clip: 'M21 11.5 12.5 20a5 5 0 0 1-7-7l8.5-8.5a3.3 3.3 0 0 1 4.7 4.7L10.2 17.7a1.7 1.7 0 0 1-2.4-2.4L15.5 7.6',
  back: 'M15 6l-6 6 6 6',
  trash: 'M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3',
  mail: 'M3 6h18v12H3zM3 7l9 6 9-6',
  mailOpen: 'M3 10l9-6 9 6v10H3zM3 10l9 6 9-6',
  tag: 'M3 12V4h8l10 10-8 8zM7.5 7.5h.01',
  send: 'M4 12l16-8-6 16-3-7z',
  download: 'M12 4v11M7 10l5 5 5-5M5 20h14',
  up: 'M6 15l6-6 6 6',
  down: 'M6 9l6 6 6-6',
};

const state = {
  config: null,
  view: 'inbox',
  query: '',
  start: 0,
  messages: [],
  total: 0,
  unread: 0,
  matched: 0,
  tags: [],
  selected: null, // ID of the highlighted row
  openId: null,
  message: null,
  tab: null,
  width: localStorage.getItem('mp.width') || 'desktop',
  allowRemote: new Set(JSON.parse(sessionStorage.getItem('mp.allowRemote') || '[]')),
  sessionsStart: 0,
  sessions: [],
  sessionId: null,
  loaded: false,
};

let listSeq = 0;
let messageSeq = 0;
let refreshTimer = 0;
let searchTimer = 0;

const els = {
  list: $('#list'),
  listEmpty: $('#list-empty'),
  pageInfo: $('#page-info'),
  prev: $('#prev-page'),
  next: $('#next-page'),
  search: $('#search'),
  message: $('#message'),
  placeholder: $('#message-placeholder'),
  inboxView: $('#inbox-view'),
  sessionsView: $('#sessions-view'),
  conn: $('#conn'),
  stats: statsView(),
};

// -- URL state: ?q=search&start=50&m=ID or ?view=sessions&s=ID ------------------------------

function readUrl() {
  const p = new URLSearchParams(location.search);
  state.view = ['sessions', 'stats'].includes(p.get('view')) ? p.get('view') : 'inbox';
  state.query = p.get('q') || '';
  state.start = Math.max(0, parseInt(p.get('start') || '0', 10) || 0);
  state.openId = p.get('m') || null;
  state.sessionId = p.get('s') || null;
}

function writeUrl(push = false) {
  const u = new URL('./', base);
  if (state.view === 'stats') {
    u.searchParams.set('view', 'stats');
  } else if (state.view === 'sessions') {
    u.searchParams.set('view', 'sessions');
    if (state.sessionId) u.searchParams.set('s', state.sessionId);
  } else {
    if (state.query) u.searchParams.set('q', state.query);
    if (state.start) u.searchParams.set('start', String(state.start));
    if (state.openId) u.searchParams.set('m', state.openId);
  }
  if (u.href === location.href) return;
  if (push) history.pushState(null, '', u);
  else history.replaceState(null, '', u);
}

window.addEventListener('popstate', () => {
  const before = { q: state.query, start: state.start, view: state.view };
  readUrl();
  els.search.value = state.query;
  showView();
  if (state.view === 'inbox') {
    if (before.q !== state.query || before.start !== state.start) loadList();
    if (state.openId) openMessage(state.openId, { history: false });
    else closeMessage({ history: false });
  } else if (state.view === 'stats') {
    els.stats.load();
  } else {
    loadSessions();
  }
});

// -- counts, title, favicon --------------------------------------------------------------------

function setCounts(total, unread) {
  state.total = total;
  state.unread = unread;
  const badge = $('#nav-unread');
  badge.textContent = unread > 999 ? '999+' : String(unread);
  badge.hidden = unread === 0;
  $('#stats-line').textContent = `${plural(total, 'message')}, ${unread.toLocaleString()} unread`;
  updateTitle();
}

let lastFavicon = -1;
function updateTitle() {
  const label = state.config?.Label;
  const parts = [];
  if (label) parts.push(label);
  parts.push('mailpit_py');
  document.title = `${state.unread ? `(${state.unread.toLocaleString()}) ` : ''}${parts.join(' · ')}`;
  if (lastFavicon !== state.unread) {
    lastFavicon = state.unread;
    drawFavicon(state.unread);
  }
}

// -- the message list --------------------------------------------------------------------------

async function loadList() {
  const seq = ++listSeq;
  const data = await api.list(state.query, state.start, PAGE);
  if (seq !== listSeq) return;
  if (data.count === 0 && state.start > 0 && data.messages_count > 0) {
    // The page emptied under us (deletions): step back to the last page that has mail.
    state.start = Math.max(0, Math.floor((data.messages_count - 1) / PAGE) * PAGE);
    writeUrl();
    return loadList();
  }
  state.messages = data.messages;
  state.matched = data.messages_count;
  state.tags = data.tags || [];
  state.loaded = true;
  setCounts(data.total, data.unread);
  renderTags();
  renderList();
}

function scheduleRefresh(delay = 200) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadList().catch(() => {}), delay);
}

function icon(path, cls = 'i') {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', cls);
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', path);
  svg.append(p);
  return svg;
}

function tagChip(tag, onclick) {
  return h('span', { class: 'tag', text: tag, title: `tag:${tag}`, onclick });
}

function recipientsText(m) {
  const all = [...(m.To || []), ...(m.Cc || [])];
  if (!all.length) return (m.Bcc || []).map(addressShort).join(', ');
  const first = addressShort(all[0]);
  return all.length > 1 ? `${first} +${all.length - 1}` : first;
}

function renderRow(m) {
  const selected = m.ID === state.selected;
  const row = h(
    'li',
    {
      id: `msg-${m.ID}`,
      class: `row${m.Read ? '' : ' unread'}${m.ID === state.openId ? ' open' : ''}${selected ? ' selected' : ''}`,
      role: 'option',
      'aria-selected': selected ? 'true' : 'false',
      dataset: { id: m.ID },
      onclick: () => {
        select(m.ID);
        openMessage(m.ID);
      },
    },
    h('span', { class: 'unread-dot', title: m.Read ? null : 'Unread', 'aria-label': m.Read ? null : 'unread' }),
    h(
      'div',
      { class: 'row-main' },
      h(
        'div',
        { class: 'row-top' },
        h('span', { class: 'from', text: addressShort(m.From) || '(no sender)', title: addressText(m.From) }),
        h('span', { class: 'to', text: `→ ${recipientsText(m)}`, title: (m.To || []).map(addressText).join(', ') }),
      ),
      h(
        'div',
        { class: 'subject-line' },
        h('span', { class: 'subject', text: m.Subject || '(no subject)' }),
        (m.Tags || []).map((t) => tagChip(t)),
      ),
      h('div', { class: 'snippet', text: m.Snippet || '' }),
    ),
    h(
      'div',
      { class: 'row-meta' },
      h('time', { datetime: m.Created, title: formatFullTime(m.Created), text: formatTime(m.Created) }),
      h(
        'span',
        { class: 'size-line' },
        m.Attachments ? h('span', { class: 'clip', title: plural(m.Attachments, 'attachment') }, icon(ICONS.clip)) : null,
        h('span', { class: 'size', text: formatSize(m.Size) }),
      ),
    ),
  );
  return row;
}

function renderList() {
  const rows = state.messages.map(renderRow);
  els.list.replaceChildren(...rows);
  const empty = state.messages.length === 0;
  els.listEmpty.hidden = !empty || !state.loaded;
  els.list.hidden = empty;
  $('#list-empty-text').textContent = state.query ? 'No messages match this search' : 'No messages yet';
  $('#list-empty-hint').textContent = state.query
    ? 'Try fewer words, or press ? next to the search box for the syntax.'
    : 'Send mail to the SMTP port and it shows up here at once.';
  $('#list-title').textContent = state.query ? 'Search results' : 'Inbox';
  const count = state.matched;
  const from = count ? state.start + 1 : 0;
  const to = Math.min(state.start + state.messages.length, count);
  els.pageInfo.textContent = count
    ? `${from.toLocaleString()}–${to.toLocaleString()} of ${count.toLocaleString()}${state.query ? ' found' : ''}`
    : '';
  els.prev.disabled = state.start === 0;
  els.next.disabled = state.start + PAGE >= count;
  if (state.selected && !state.messages.some((m) => m.ID === state.selected)) state.selected = null;
  updateActiveDescendant();
  $('#delete-all').hidden = Boolean(state.config?.HideDeleteAllButton) || empty;
  $('#mark-all-read').hidden = empty;
}

function updateActiveDescendant() {
  if (state.selected) els.list.setAttribute('aria-activedescendant', `msg-${state.selected}`);
  else els.list.removeAttribute('aria-activedescendant');
}

function select(id, scroll = false) {
  state.selected = id;
  for (const row of els.list.querySelectorAll('.row.selected')) {
    row.classList.remove('selected');
    row.setAttribute('aria-selected', 'false');
  }
  const row = id && document.getElementById(`msg-${id}`);
  if (row) {
    row.classList.add('selected');
    row.setAttribute('aria-selected', 'true');
    if (scroll) row.scrollIntoView({ block: 'nearest' });
  }
  updateActiveDescendant();
}

function replaceRow(m) {
  const old = document.getElementById(`msg-${m.ID}`);
  if (old) old.replaceWith(renderRow(m));
}

function renderTags() {
  const box = $('#nav-tags');
  $('#tags-heading').hidden = state.tags.length === 0;
  box.replaceChildren(
    ...state.tags.map((t) => {
      const q = /[\s"]/.test(t) ? `tag:"${t.replace(/"/g, '')}"` : `tag:${t}`;
      return h(
        'a',
        {
          class: `nav-item tag-item${state.query === q ? ' active' : ''}`,
          href: `?q=${encodeURIComponent(q)}`,
          onclick: (e) => {
            e.preventDefault();
            closeNav();
            setSearch(q);
          },
        },
        h('span', { class: 'tag-dot', 'aria-hidden': 'true' }),
        h('span', { text: t }),
      );
    }),
  );
  $('#tag-options').replaceChildren(...state.tags.map((t) => h('option', { value: t })));
}

function goPage(delta) {
  const start = state.start + delta * PAGE;
  if (start < 0 || (delta > 0 && start >= state.matched)) return;
  state.start = start;
  state.selected = null;
  writeUrl(true);
  loadList().then(() => els.list.scrollTo(0, 0)).catch(showError);
}

function setSearch(q, { push = true } = {}) {
  els.search.value = q;
  clearTimeout(searchTimer);
  if (state.view !== 'inbox') {
    state.view = 'inbox';
    showView();
  }
  if (q === state.query) return;
  state.query = q;
  state.start = 0;
  state.selected = null;
  writeUrl(push);
  loadList().catch(showError);
}

// -- live events -------------------------------------------------------------------------------

function onEvent({ Type: type, Data: data }) {
  switch (type) {
    case 'new':
      onNew(data);
      break;
    case 'update':
      onUpdate(data);
      break;
    case 'delete':
      onDelete(data.ID);
      break;
    case 'truncate':
      state.messages = [];
      state.matched = 0;
      setCounts(0, 0);
      renderList();
      if (state.openId) closeMessage({ note: 'All messages were deleted' });
      break;
    case 'prune':
      scheduleRefresh();
      break;
    case 'stats':
      setCounts(data.Total, data.Unread);
      break;
    default:
      break;
  }
  if (state.view === 'sessions' && (type === 'new' || type === 'error')) scheduleSessions();
  if (state.view === 'stats' && (type === 'new' || type === 'error')) els.stats.soon();
}

function onNew(m) {
  notify(m);
  if (state.messages.some((x) => x.ID === m.ID)) return;
  setCounts(state.total + 1, state.unread + (m.Read ? 0 : 1));
  if (state.query) {
    scheduleRefresh();
    return;
  }
  state.matched += 1;
  if (state.start === 0) {
    state.messages.unshift(m);
    if (state.messages.length > PAGE) state.messages.length = PAGE;
    state.tags = [...new Set([...state.tags, ...(m.Tags || [])])].sort();
    renderTags();
    renderList();
    const row = document.getElementById(`msg-${m.ID}`);
    if (row) row.classList.add('arrived');
  } else {
    renderList();
  }
}

function onUpdate(d) {
  const m = state.messages.find((x) => x.ID === d.ID);
  if (m) {
    if ('Read' in d) m.Read = d.Read;
    if ('Tags' in d) m.Tags = d.Tags;
    replaceRow(m);
  }
  if (state.message && state.message.ID === d.ID) {
    if ('Read' in d) state.message.Read = d.Read;
    if ('Tags' in d) {
      state.message.Tags = d.Tags;
      renderMessageHead();
    }
    updateReadButton();
  }
  if ('Tags' in d) scheduleRefresh(400); // the tag list in the sidebar may have changed
}

function onDelete(id) {
  const i = state.messages.findIndex((x) => x.ID === id);
  if (i >= 0) {
    state.messages.splice(i, 1);
    state.matched = Math.max(0, state.matched - 1);
    if (state.selected === id) state.selected = state.messages[Math.min(i, state.messages.length - 1)]?.ID ?? null;
    renderList();
    if (state.start + state.messages.length < state.matched) scheduleRefresh(); // refill the page
  }
  if (state.openId === id) closeMessage({ note: 'This message was deleted' });
}

function setConnState(s) {
  els.conn.dataset.state = s;
  const text = { connecting: 'connecting', live: 'live', polling: 'polling', offline: 'offline' }[s];
  $('.conn-text', els.conn).textContent = text;
  els.conn.title = {
    connecting: 'Connecting to the server',
    live: 'Live: new mail appears at once',
    polling: 'The live connection is down: checking for new mail every 2 seconds',
    offline: 'The server does not answer: retrying',
  }[s];
}

// -- the message view --------------------------------------------------------------------------

async function openMessage(id, { history: push = true } = {}) {
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

function closeMessage({ history: push = true, note = '' } = {}) {
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

function toolButton(label, path, onclick, extra = {}) {
  return h('button', { class: 'btn ghost tool', type: 'button', title: label, 'aria-label': label, onclick, ...extra }, icon(path), h('span', { class: 'tool-label', text: label }));
}

function renderMessage() {
  const m = state.message;
  const relay = state.config?.MessageRelay?.Enabled;
  const idx = state.messages.findIndex((x) => x.ID === m.ID);
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
    h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Newer message', title: 'Newer (k)', disabled: idx <= 0, onclick: () => moveOpen(-1) }, icon(ICONS.up)),
    h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Older message', title: 'Older (j)', disabled: idx < 0 || idx >= state.messages.length - 1, onclick: () => moveOpen(1) }, icon(ICONS.down)),
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
  const keep = state.tab && tabs.some((t) => t.key === state.tab) && state.tab;
  showTab(keep || (m.HTML ? 'html' : 'text'));
}

function messageTabs(m) {
  const files = (m.Attachments?.length || 0) + (m.Inline?.length || 0);
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

function renderMessageHead() {
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
  ];
  head.replaceChildren(...children.filter(Boolean));
}

function updateReadButton() {
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
    const wrap = h('div', { class: 'frame-wrap', dataset: { width: state.width } }, frame);
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
    return h('div', { class: 'html-view' }, h('div', { class: 'html-bar' }, seg, banner), wrap);
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
      ].flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]),
    );
    const link = data.SessionID
      ? h('a', { href: `?view=sessions&s=${encodeURIComponent(data.SessionID)}`, onclick: (e) => { e.preventDefault(); showSessions(data.SessionID); }, text: 'Open the whole session' })
      : null;
    return h(
      'div',
      { class: 'smtp-view' },
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
  async attachments(m) {
    const parts = [...(m.Attachments || []).map((p) => ({ ...p, kind: 'attachment' })), ...(m.Inline || []).map((p) => ({ ...p, kind: 'inline' }))];
    return h(
      'ul',
      { class: 'attachments' },
      parts.map((p) => {
        const href = partUrl(m.ID, p.PartID);
        const name = p.FileName || `part-${p.PartID}`;
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
  },
};

function applyWidth(wrap, frame) {
  const px = WIDTHS[state.width] || 0;
  frame.style.width = px ? `${px}px` : '100%';
}

function transcript(entries) {
  const dirName = { C: 'client', S: 'server', I: 'info' };
  let prev = 0;
  return h(
    'table',
    { class: 'transcript' },
    h('thead', {}, h('tr', {}, h('th', { text: 'ms' }), h('th', { text: '' }), h('th', { text: 'Line' }))),
    h(
      'tbody',
      {},
      entries.map((e) => {
        const code = e.Dir === 'S' ? (/^(\d)\d\d/.exec(e.Line) || [])[1] : '';
        const delta = e.Time - prev;
        prev = e.Time;
        return h(
          'tr',
          { class: `dir-${dirName[e.Dir] || 'info'}${code ? ` code-${code}xx` : ''}` },
          h('td', { class: 'time', title: `+${delta.toFixed(1)} ms since the previous line`, text: Number(e.Time).toFixed(1) }),
          h('td', { class: 'dir' }, h('span', { class: 'dir-badge', title: dirName[e.Dir], text: e.Dir === 'C' ? 'C' : e.Dir === 'S' ? 'S' : '·' })),
          h('td', { class: 'line', text: e.Line }),
        );
      }),
    ),
  );
}

// -- actions -----------------------------------------------------------------------------------

async function toggleRead() {
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

async function deleteMessage(id) {
  if (!id) return;
  const i = state.messages.findIndex((x) => x.ID === id);
  try {
    await api.remove([id]);
  } catch (err) {
    showError(err);
    return;
  }
  const next = state.messages[i + 1] || state.messages[i - 1];
  if (state.openId === id) closeMessage();
  onDelete(id);
  if (next) select(next.ID, true);
  // Keep the keyboard in the list, unless the user has moved on to typing somewhere.
  if (!isTyping(document.activeElement)) els.list.focus({ preventScroll: true });
}

function confirmDialog(title, text, ok = 'Delete') {
  const dlg = $('#confirm-dialog');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = ok;
  dlg.returnValue = '';
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
  });
}

async function deleteAll() {
  const q = state.query;
  const n = q ? state.matched : state.total;
  const yes = await confirmDialog(
    q ? 'Delete the matching messages?' : 'Delete all messages?',
    q ? `This deletes the ${plural(n, 'message')} matching “${q}”. It cannot be undone.` : `This deletes all ${plural(n, 'message')}. It cannot be undone.`,
    q ? `Delete ${n.toLocaleString()}` : 'Delete all',
  );
  if (!yes) return;
  try {
    if (q) await api.removeSearch(q);
    else await api.removeAll();
    if (state.openId) closeMessage();
    state.start = 0;
    writeUrl();
    await loadList();
  } catch (err) {
    showError(err);
  }
}

async function markAllRead() {
  try {
    await api.markAllRead(state.query);
    await loadList();
  } catch (err) {
    showError(err);
  }
}

function openTagDialog() {
  const m = state.message;
  if (!m) return;
  const dlg = $('#tag-dialog');
  const input = $('#tag-input');
  input.value = (m.Tags || []).join(', ');
  dlg.returnValue = '';
  dlg.showModal();
  dlg.addEventListener(
    'close',
    async () => {
      if (dlg.returnValue !== 'ok') return;
      const tags = [...new Set(input.value.split(',').map((t) => t.trim()).filter(Boolean))];
      try {
        await api.setTags([m.ID], tags);
        // Sorted, as the server stores and reports them (its update event follows): shown in
        // the typed order first, the chips would reorder a moment later.
        onUpdate({ ID: m.ID, Tags: [...tags].sort() });
      } catch (err) {
        showError(err);
      }
    },
    { once: true },
  );
}

function openReleaseDialog() {
  openRelease(state.message, state.config, toast);
}

// -- the sessions page -------------------------------------------------------------------------

let sessionsTimer = 0;
function scheduleSessions() {
  clearTimeout(sessionsTimer);
  sessionsTimer = setTimeout(() => loadSessions().catch(() => {}), 300);
}

function showSessions(id = null) {
  state.view = 'sessions';
  state.sessionId = id;
  writeUrl(true);
  showView();
  loadSessions().catch(showError);
}

async function loadSessions() {
  const data = await api.sessions(state.sessionsStart, PAGE);
  state.sessions = data.sessions || [];
  const list = $('#session-list');
  list.replaceChildren(
    ...state.sessions.map((s) =>
      h(
        'li',
        {
          id: `sess-${s.ID}`,
          class: `row session-row${s.ID === state.sessionId ? ' open selected' : ''}`,
          role: 'option',
          'aria-selected': s.ID === state.sessionId ? 'true' : 'false',
          dataset: { id: s.ID },
          onclick: () => openSession(s.ID),
        },
        h('span', { class: `outcome-dot outcome-${outcomeClass(s)}`, title: s.Outcome }),
        h(
          'div',
          { class: 'row-main' },
          h('div', { class: 'row-top' }, h('span', { class: 'from', text: s.Helo || '(no HELO)' }), h('span', { class: 'to', text: s.Peer })),
          h('div', { class: 'subject-line' }, h('span', { class: 'subject', text: s.Outcome || '' }), s.TLS ? h('span', { class: 'tag', text: 'TLS' }) : null, s.Username ? h('span', { class: 'tag', text: `AUTH ${s.Username}` }) : null),
          h('div', { class: 'snippet', text: `${plural((s.Messages || []).length, 'message')} · ${plural((s.Transcript || []).length, 'line')}` }),
        ),
        h('div', { class: 'row-meta' }, h('time', { datetime: s.Started, title: formatFullTime(s.Started), text: formatTime(s.Started) })),
      ),
    ),
  );
  $('#sessions-empty').hidden = state.sessions.length > 0;
  const total = typeof data.total === 'number' ? data.total : null;
  const shown = `${(state.sessionsStart + 1).toLocaleString()}–${(state.sessionsStart + state.sessions.length).toLocaleString()}`;
  $('#sessions-page-info').textContent = state.sessions.length
    ? (total === null ? shown : `${shown} of ${total.toLocaleString()}`)
    : '';
  $('#sessions-prev').disabled = state.sessionsStart === 0;
  $('#sessions-next').disabled =
    total === null ? state.sessions.length < PAGE : state.sessionsStart + state.sessions.length >= total;
  if (state.sessionId) await renderSession(state.sessionId);
}

function outcomeClass(s) {
  const o = (s.Outcome || '').toLowerCase();
  if (o.includes('deliver')) return 'ok';
  if (o.includes('reject') || o.includes('error') || o.includes('fail')) return 'bad';
  return 'none';
}

async function openSession(id) {
  state.sessionId = id;
  writeUrl(true);
  for (const r of document.querySelectorAll('#session-list .row')) {
    const on = r.dataset.id === id;
    r.classList.toggle('open', on);
    r.classList.toggle('selected', on);
    r.setAttribute('aria-selected', on ? 'true' : 'false');
  }
  els.sessionsView.classList.add('has-message');
  await renderSession(id);
}

async function renderSession(id) {
  const pane = $('#session-detail');
  els.sessionsView.classList.add('has-message');
  let s;
  try {
    s = await api.session(id);
  } catch (err) {
    pane.replaceChildren(h('div', { class: 'empty' }, h('p', { text: err.status === 404 ? 'This session is no longer kept.' : err.message })));
    return;
  }
  const started = new Date(s.Started);
  const ended = new Date(s.Ended);
  const took = Number.isNaN(ended - started) ? '' : `${Math.max(0, ended - started).toLocaleString()} ms`;
  const msgs = (s.Messages || []).map((mid) =>
    h('a', { href: `?m=${encodeURIComponent(mid)}`, class: 'msg-link', onclick: (e) => { e.preventDefault(); goMessage(mid); }, text: mid }),
  );
  pane.replaceChildren(
    h(
      'article',
      { class: 'message session' },
      h('div', { class: 'toolbar msg-toolbar' }, h('button', { class: 'icon-btn back-btn', type: 'button', 'aria-label': 'Back to the sessions', onclick: () => { els.sessionsView.classList.remove('has-message'); state.sessionId = null; writeUrl(true); } }, icon(ICONS.back)), h('span', { class: 'toolbar-title', text: 'SMTP session' })),
      h(
        'header',
        { class: 'msg-head' },
        h('h1', { class: 'msg-subject', text: `${s.Helo || '(no HELO)'} from ${s.Peer}` }),
        h(
          'dl',
          { class: 'msg-meta' },
          [
            ['Outcome', s.Outcome],
            ['Started', formatFullTime(s.Started)],
            ['Duration', took],
            ['Client', s.Peer],
            ['Server', s.Local],
            ['TLS', s.TLS ? 'yes' : 'no'],
            ['AUTH', s.Username ? `yes, as ${s.Username}` : 'no'],
          ].flatMap(([k, v]) => (v ? [h('dt', { text: k }), h('dd', { text: v })] : [])),
          msgs.length ? [h('dt', { text: 'Messages' }), h('dd', { class: 'msg-links' }, msgs)] : null,
        ),
      ),
      h('div', { class: 'tab-panel session-panel' }, h('div', { class: 'smtp-view' }, transcript(s.Transcript || []))),
    ),
  );
}

function goMessage(id) {
  state.view = 'inbox';
  state.query = '';
  els.search.value = '';
  showView();
  loadList().catch(showError);
  openMessage(id);
}

// -- views, navigation, keyboard ---------------------------------------------------------------

function showView() {
  els.inboxView.hidden = state.view !== 'inbox';
  els.sessionsView.hidden = state.view !== 'sessions';
  els.stats.el.hidden = state.view !== 'stats';
  for (const a of document.querySelectorAll('[data-nav]')) {
    const on = a.dataset.nav === state.view && !(state.view === 'inbox' && state.query.startsWith('tag:'));
    a.classList.toggle('active', on);
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function rows() {
  return state.view === 'sessions' ? [...document.querySelectorAll('#session-list .row')] : [...els.list.querySelectorAll('.row')];
}

function moveSelection(delta) {
  if (state.view === 'stats') return;
  if (state.view === 'sessions') {
    const all = rows();
    const i = all.findIndex((r) => r.dataset.id === state.sessionId);
    const next = all[Math.max(0, Math.min(all.length - 1, i + delta))];
    if (next) {
      openSession(next.dataset.id);
      next.scrollIntoView({ block: 'nearest' });
    }
    return;
  }
  if (state.openId) {
    moveOpen(delta);
    return;
  }
  const ids = state.messages.map((m) => m.ID);
  if (!ids.length) return;
  const i = ids.indexOf(state.selected);
  const next = i < 0 ? (delta > 0 ? 0 : ids.length - 1) : Math.max(0, Math.min(ids.length - 1, i + delta));
  select(ids[next], true);
}

function moveOpen(delta) {
  const i = state.messages.findIndex((m) => m.ID === state.openId);
  const next = state.messages[i + delta];
  if (i < 0 || !next) return;
  select(next.ID, true);
  openMessage(next.ID);
}

function isTyping(el) {
  return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
}

document.addEventListener('keydown', (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector('dialog[open]')) return; // dialogs handle their own keys
  const help = $('#search-help');
  if (isTyping(e.target)) {
    if (e.key === 'Escape') {
      if (!help.hidden) toggleHelp(false);
      else e.target.blur();
      els.list.focus({ preventScroll: true });
      e.preventDefault();
    } else if (e.key === 'ArrowDown' && e.target === els.search) {
      e.preventDefault();
      els.list.focus();
      if (!state.selected) moveSelection(1);
    }
    return;
  }
  switch (e.key) {
    case 'j':
    case 'ArrowDown':
      moveSelection(1);
      break;
    case 'k':
    case 'ArrowUp':
      moveSelection(-1);
      break;
    case 'Enter':
      if (state.view === 'inbox' && state.selected && !e.target.closest('button, a')) openMessage(state.selected);
      else return;
      break;
    case 'Delete':
      if (state.view === 'inbox') deleteMessage(state.openId || state.selected);
      break;
    case 'u':
      if (state.message) toggleRead();
      break;
    case '/':
      els.search.focus();
      els.search.select();
      break;
    case '?':
      $('#keys-dialog').showModal();
      break;
    case 'n':
      if (state.view === 'inbox') goPage(1);
      break;
    case 'p':
      if (state.view === 'inbox') goPage(-1);
      break;
    case 'Escape':
      if (!help.hidden) toggleHelp(false);
      else if (document.body.classList.contains('nav-open')) closeNav();
      else if (state.view === 'sessions' && state.sessionId) {
        state.sessionId = null;
        els.sessionsView.classList.remove('has-message');
        writeUrl(true);
      } else if (state.view !== 'inbox') {
        state.view = 'inbox';
        writeUrl(true);
        showView();
      } else if (state.openId) {
        closeMessage();
        els.list.focus({ preventScroll: true });
      } else if (state.query) setSearch('');
      else return;
      break;
    default:
      return;
  }
  e.preventDefault();
});

function toggleHelp(show) {
  const help = $('#search-help');
  help.hidden = !show;
  $('#search-help-btn').setAttribute('aria-expanded', show ? 'true' : 'false');
}

function closeNav() {
  document.body.classList.remove('nav-open');
  $('#scrim').hidden = true;
  $('#menu-btn').setAttribute('aria-expanded', 'false');
}

// -- theme, notifications, toasts --------------------------------------------------------------

const THEMES = ['system', 'light', 'dark'];
function applyTheme(theme) {
  if (theme === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  const label = { system: 'Theme: follows the system', light: 'Theme: light', dark: 'Theme: dark' }[theme];
  const b = $('#theme-btn');
  b.title = label;
  b.setAttribute('aria-label', label);
  b.dataset.theme = theme;
}

function notifyEnabled() {
  return localStorage.getItem('mp.notify') === '1' && 'Notification' in window && Notification.permission === 'granted';
}

function updateNotifyButton() {
  const on = notifyEnabled();
  const b = $('#notify-btn');
  b.setAttribute('aria-pressed', on ? 'true' : 'false');
  b.title = on ? 'Notifications for new mail are on' : 'Turn on notifications for new mail';
}

function notify(m) {
  if (!notifyEnabled() || (!document.hidden && document.hasFocus())) return;
  try {
    const n = new Notification(m.Subject || '(no subject)', {
      body: `From ${addressText(m.From)}`,
      tag: m.ID,
      icon: $('#favicon')?.href,
    });
    n.onclick = () => {
      window.focus();
      goMessage(m.ID);
      n.close();
    };
  } catch {
    /* some browsers only allow notifications from a service worker */
  }
}

let toastTimer = 0;
function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.hidden = true;
  }, 3500);
}

function showError(err) {
  toast(err?.message ? `Error: ${err.message}` : 'Something went wrong');
}

// -- wiring ------------------------------------------------------------------------------------

function wire() {
  $('#search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setSearch(els.search.value.trim());
  });
  els.search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => setSearch(els.search.value.trim(), { push: false }), SEARCH_PAUSE);
  });
  $('#search-help-btn').addEventListener('click', () => toggleHelp($('#search-help').hidden));
  document.addEventListener('click', (e) => {
    if (!e.target.closest('#search-form')) toggleHelp(false);
  });
  els.prev.addEventListener('click', () => goPage(-1));
  els.next.addEventListener('click', () => goPage(1));
  $('#delete-all').addEventListener('click', deleteAll);
  $('#mark-all-read').addEventListener('click', markAllRead);
  $('#sessions-refresh').addEventListener('click', () => loadSessions().catch(showError));
  $('#sessions-prev').addEventListener('click', () => {
    state.sessionsStart = Math.max(0, state.sessionsStart - PAGE);
    loadSessions().catch(showError);
  });
  $('#sessions-next').addEventListener('click', () => {
    state.sessionsStart += PAGE;
    loadSessions().catch(showError);
  });
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.addEventListener('click', (e) => {
      e.preventDefault();
      closeNav();
      if (a.dataset.nav === 'sessions') {
        showSessions(null);
      } else if (a.dataset.nav === 'stats') {
        state.view = 'stats';
        writeUrl(true);
        showView();
        els.stats.load();
      } else {
        state.view = 'inbox';
        setSearch('');
        if (state.openId) closeMessage();
        writeUrl(true);
        showView();
      }
    });
  }
  $('#brand').addEventListener('click', (e) => {
    e.preventDefault();
    state.view = 'inbox';
    state.start = 0;
    if (state.openId) closeMessage({ history: false });
    setSearch('');
    showView();
    writeUrl(true);
    loadList().catch(showError);
  });
  $('#menu-btn').addEventListener('click', () => {
    const open = !document.body.classList.contains('nav-open');
    document.body.classList.toggle('nav-open', open);
    $('#scrim').hidden = !open;
    $('#menu-btn').setAttribute('aria-expanded', open ? 'true' : 'false');
  });
  $('#scrim').addEventListener('click', closeNav);
  $('#theme-btn').addEventListener('click', () => {
    const cur = localStorage.getItem('mp.theme') || 'system';
    const next = THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length];
    localStorage.setItem('mp.theme', next);
    applyTheme(next);
  });
  $('#notify-btn').addEventListener('click', async () => {
    if (!('Notification' in window)) {
      toast('This browser does not support notifications');
      return;
    }
    if (notifyEnabled()) {
      localStorage.setItem('mp.notify', '0');
    } else {
      const p = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
      localStorage.setItem('mp.notify', p === 'granted' ? '1' : '0');
      if (p !== 'granted') toast('Notifications are blocked by the browser');
    }
    updateNotifyButton();
  });
  $('#keys-btn').addEventListener('click', () => $('#keys-dialog').showModal());
}

async function init() {
  applyTheme(localStorage.getItem('mp.theme') || 'system');
  readUrl();
  els.search.value = state.query;
  wire();
  updateNotifyButton();
  showView();
  updateTitle();
  api
    .webui()
    .then((cfg) => {
      state.config = cfg;
      if (cfg.Label) {
        const l = $('#label');
        l.textContent = cfg.Label;
        l.hidden = false;
      }
      updateTitle();
      if (state.message) renderMessage();
      renderList();
    })
    .catch(() => {});
  api
    .info()
    .then((info) => {
      $('#version-line').textContent = `mailpit_py ${info.Version}`;
    })
    .catch(() => {});
  const live = new Live({ onEvent, onState: setConnState, poll: loadList });
  live.start();
  try {
    await loadList();
  } catch (err) {
    showError(err);
  }
  if (state.view === 'sessions') loadSessions().catch(showError);
  if (state.view === 'stats') els.stats.load();
  if (state.openId) openMessage(state.openId, { history: false });
  document.body.classList.add('ready');
}

init();
