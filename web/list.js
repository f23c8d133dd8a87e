// The message list: loading a page of messages (the inbox or a search), the rows, selection,
// paging, the tags in the sidebar, the unread count in the title, and the live events that change
// the list. Actions on many messages at once (delete all, mark all read) live here too.

import { api, box } from './api.js';
import { checkCell, forget, isChecked, onListLoaded, refresh as refreshChecks, rowClickSelects } from './bulk.js';
import {
  $, addressShort, addressText, drawFavicon, formatFullTime, formatSize, formatTime, h, later, plural,
} from './dom.js';
import {
  closeMessage, openMessage, recheckOpen, renderMessageHead, updateMoveButtons, updateReadButton,
} from './message.js';
import { closeNav, showView, toggleHelp, writeUrl } from './nav.js';
import { notify } from './prefs.js';
import { refusedMark } from './refused.js';
import { ICONS, PAGE, els, icon, showError, state } from './state.js';

const SEARCH_PAUSE = 250; // ms of typing pause before the search runs

let listSeq = 0;
// Live events seen so far. A page of the list fetched while one arrived may predate it (the
// event's change applied to the old list, then overwritten by the answer), so such a load is
// followed by another.
let liveChanges = 0;
let searchTimer = 0;

// -- counts, title, favicon --------------------------------------------------------------------

export function setCounts(total, unread) {
  state.total = total;
  state.unread = unread;
  const badge = $('#nav-unread');
  badge.textContent = unread > 999 ? '999+' : String(unread);
  badge.hidden = unread === 0;
  $('#stats-line').textContent = `${plural(total, 'message')}, ${unread.toLocaleString()} unread`;
  updateTitle();
}

let lastFavicon = -1;
let faviconTimer = 0;
export function updateTitle() {
  const label = state.config?.Label;
  const parts = [];
  if (box) parts.push(box); // the mailbox the URL names: tabs of several mailboxes tell apart
  if (label) parts.push(label);
  parts.push('mailpit_py');
  document.title = `${state.unread ? `(${state.unread.toLocaleString()}) ` : ''}${parts.join(' · ')}`;
  // The icon is drawn once for a run of count changes (each new message brings one), not for
  // each: drawing it and encoding it as a PNG take ~1 ms.
  if (lastFavicon !== state.unread && !faviconTimer) {
    faviconTimer = setTimeout(() => {
      faviconTimer = 0;
      if (lastFavicon === state.unread) return;
      lastFavicon = state.unread;
      drawFavicon(state.unread);
    }, 0);
  }
}

// -- the list ----------------------------------------------------------------------------------

let loadedQuery = null;
let badSearch = ''; // the server's reason when it refused the search shown

export async function loadList() {
  const seq = ++listSeq;
  const changesBefore = liveChanges;
  let data;
  try {
    data = await api.list(state.query, state.start, PAGE);
  } catch (err) {
    if (seq !== listSeq || err.status !== 400 || !state.query) throw err;
    // A search the server cannot run (a bad date, an unknown size): say why where the results
    // would be, rather than leave the last results under the new search and a passing toast.
    badSearch = err.message;
    state.messages = [];
    state.matched = 0;
    state.loaded = true;
    renderList();
    return;
  }
  if (seq !== listSeq) return;
  badSearch = '';
  if (liveChanges !== changesBefore) scheduleRefresh();
  if (data.count === 0 && state.start > 0 && data.messages_count > 0) {
    // The page emptied under us (deletions): step back to the last page that has mail.
    state.start = Math.max(0, Math.floor((data.messages_count - 1) / PAGE) * PAGE);
    writeUrl();
    return loadList();
  }
  const openLeft = state.openId && state.messages.some((m) => m.ID === state.openId) && !data.messages.some((m) => m.ID === state.openId);
  state.messages = data.messages;
  state.matched = data.messages_count;
  state.tags = data.tags || [];
  state.loaded = true;
  setCounts(data.total, data.unread);
  renderTags();
  renderList();
  onListLoaded(loadedQuery !== state.query);
  loadedQuery = state.query;
  if (openLeft) recheckOpen();
}

const refreshSoon = later(() => loadList().catch(() => {}));

export function scheduleRefresh(delay = 200) {
  refreshSoon(delay);
}

export function tagChip(tag, onclick) {
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
      class: `row${m.Read ? '' : ' unread'}${m.ID === state.openId ? ' open' : ''}${selected ? ' selected' : ''}${isChecked(m.ID) ? ' checked' : ''}`,
      role: 'option',
      // A multi-select listbox: selected means checked for bulk actions; the highlighted row is
      // the active descendant.
      'aria-selected': isChecked(m.ID) ? 'true' : 'false',
      dataset: { id: m.ID },
      onclick: (e) => {
        if (rowClickSelects(e, m.ID)) return;
        select(m.ID);
        openMessage(m.ID);
      },
    },
    checkCell(m),
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
        refusedMark(m),
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

export function renderList() {
  const rows = state.messages.map(renderRow);
  els.list.replaceChildren(...rows);
  const empty = state.messages.length === 0;
  els.listEmpty.hidden = !empty || !state.loaded;
  els.list.hidden = empty;
  $('#list-empty-text').textContent = badSearch
    ? 'This search cannot run'
    : state.query
      ? 'No messages match this search'
      : 'No messages yet';
  $('#list-empty-hint').textContent = badSearch
    ? `${badSearch}. Press ? next to the search box for the syntax.`
    : state.query
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
  updateMoveButtons();
  $('#delete-all').hidden = Boolean(state.config?.HideDeleteAllButton) || empty;
  $('#mark-all-read').hidden = empty;
  refreshChecks();
}

function updateActiveDescendant() {
  if (state.selected) els.list.setAttribute('aria-activedescendant', `msg-${state.selected}`);
  else els.list.removeAttribute('aria-activedescendant');
}

export function select(id, scroll = false) {
  state.selected = id;
  for (const row of els.list.querySelectorAll('.row.selected')) row.classList.remove('selected');
  const row = id && document.getElementById(`msg-${id}`);
  if (row) {
    row.classList.add('selected');
    if (scroll) row.scrollIntoView({ block: 'nearest' });
  }
  updateActiveDescendant();
}

export function replaceRow(m) {
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

export function goPage(delta) {
  const start = state.start + delta * PAGE;
  if (start < 0 || (delta > 0 && start >= state.matched)) return Promise.resolve();
  state.start = start;
  state.selected = null;
  writeUrl(true);
  return loadList()
    .then(() => els.list.scrollTo(0, 0))
    .catch(showError);
}

export function setSearch(q, { push = true } = {}) {
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

// -- live events that change the list ----------------------------------------------------------

export function onNew(m) {
  liveChanges += 1;
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
    const tags = [...new Set([...state.tags, ...(m.Tags || [])])].sort();
    if (tags.length !== state.tags.length) {
      state.tags = tags;
      renderTags();
    }
    arrived.add(m.ID);
  }
  drawSoon();
}

// A burst of mail (a test suite sending 500 messages) brings an event a message, and drawing
// the page of rows with its layout takes ~18 ms: drawn for each, the page fell seconds behind
// the mail and answered no click meanwhile. So new mail is drawn once a frame, all of it.
let drawQueued = false;
const arrived = new Set();

function drawSoon() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    renderList();
    for (const id of arrived) document.getElementById(`msg-${id}`)?.classList.add('arrived');
    arrived.clear();
  });
}

export function onUpdate(d) {
  liveChanges += 1;
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

export function onDelete(id) {
  liveChanges += 1;
  forget(id);
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

// -- actions on many messages ------------------------------------------------------------------

export function confirmDialog(title, text, ok = 'Delete') {
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

export function wireList() {
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
}
