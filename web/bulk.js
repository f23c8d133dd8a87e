// Actions on many messages: a check per row (shift-click for a range), "all matching the search"
// across pages, then mark read or unread, tag, untag, release or delete them, through Mailpit's
// API: PUT /api/v1/messages {IDs, Read} or {Search, Read}, PUT /api/v1/tags {IDs, Tags},
// DELETE /api/v1/messages {IDs}, DELETE /api/v1/search?query=, and a release per message.

import { api } from './api.js';
import { $, h, plural } from './dom.js';
import { confirmDialog, loadList } from './list.js';
import { closeMessage } from './message.js';
import { openRelease } from './release.js';
import { els, showError, state, toast } from './state.js';
import { openTags } from './tagchips.js';

const checked = new Map(); // ID -> the message's summary (it may be on another page by now)
let allMatching = false; // every message matching the search (or the whole inbox), every page
let anchor = null; // the last row checked by hand: the start of a shift-click range
const FETCH_PAGE = 500;

export const isChecked = (id) => allMatching || checked.has(id);

export function checkCell(m) {
  return h('span', {
    class: 'row-check',
    'aria-hidden': 'true',
    title: 'Select (x); shift-click selects a range',
    onclick: (e) => {
      e.stopPropagation();
      toggle(m.ID, e.shiftKey);
    },
  });
}

// A click on a row with shift (a range) or Ctrl/⌘ (one more) selects instead of opening.
export function rowClickSelects(e, id) {
  if (!(e.shiftKey || e.ctrlKey || e.metaKey)) return false;
  toggle(id, e.shiftKey);
  return true;
}

export function toggle(id, range = false) {
  const ids = state.messages.map((m) => m.ID);
  const byId = new Map(state.messages.map((m) => [m.ID, m]));
  if (allMatching) {
    // Leaving "all matching" for a hand-made selection: start from this page, all checked.
    allMatching = false;
    for (const m of state.messages) checked.set(m.ID, m);
  }
  const on = !checked.has(id);
  let span = [id];
  if (range && anchor && ids.includes(anchor)) {
    const [a, b] = [ids.indexOf(anchor), ids.indexOf(id)].sort((x, y) => x - y);
    span = ids.slice(a, b + 1);
  }
  for (const x of span) {
    if (on) checked.set(x, byId.get(x));
    else checked.delete(x);
  }
  anchor = id;
  refresh();
}

export function checkPage(on = true) {
  allMatching = false;
  for (const m of state.messages) {
    if (on) checked.set(m.ID, m);
    else checked.delete(m.ID);
  }
  refresh();
}

export function checkAllMatching() {
  allMatching = true;
  refresh();
}

export function clearChecks() {
  if (!checked.size && !allMatching) return false;
  checked.clear();
  allMatching = false;
  anchor = null;
  refresh();
  return true;
}

export const hasChecks = () => allMatching || checked.size > 0;

// A message deleted elsewhere (another tab, a script) leaves the selection.
export function forget(id) {
  if (checked.delete(id)) refresh();
}

function count() {
  return allMatching ? state.matched : checked.size;
}

// The rows' marks and the bar, after a change of the selection or of the list.
export function refresh() {
  for (const row of els.list.querySelectorAll('.row')) {
    const on = isChecked(row.dataset.id);
    row.classList.toggle('checked', on);
    row.setAttribute('aria-selected', on ? 'true' : 'false');
  }
  const n = count();
  const bar = $('#bulk-bar');
  bar.hidden = n === 0;
  const page = $('#check-page');
  const onPage = state.messages.filter((m) => isChecked(m.ID)).length;
  page.checked = onPage > 0 && onPage === state.messages.length;
  page.indeterminate = onPage > 0 && onPage < state.messages.length;
  page.disabled = state.messages.length === 0;
  if (!n) return;
  $('#bulk-count').textContent = allMatching
    ? `All ${plural(n, 'message')} ${state.query ? 'matching' : 'in the inbox'}`
    : `${plural(n, 'message')} selected`;
  const all = $('#bulk-all');
  all.hidden = allMatching || !page.checked || state.matched <= state.messages.length;
  all.textContent = `Select all ${state.matched.toLocaleString()}${state.query ? ' matching' : ''}`;
  $('#bulk-release').hidden = !state.config?.MessageRelay?.Enabled;
}

// The selected messages' summaries; with "all matching", every page of the search fetched.
async function summaries() {
  if (!allMatching) return [...checked.values()].filter(Boolean);
  const out = [];
  for (let start = 0; ; start += FETCH_PAGE) {
    const data = await api.list(state.query, start, FETCH_PAGE);
    out.push(...data.messages);
    if (data.messages.length < FETCH_PAGE || out.length >= data.messages_count) return out;
  }
}

async function done(text) {
  clearChecks();
  if (text) toast(text);
  await loadList();
}

async function markRead(read) {
  if (!hasChecks()) return;
  const n = count();
  try {
    if (allMatching) await api.markAll(state.query, read);
    else await api.markRead([...checked.keys()], read);
    await done(`${plural(n, 'message')} marked ${read ? 'read' : 'unread'}`);
  } catch (err) {
    showError(err);
  }
}

async function remove() {
  if (!hasChecks()) return;
  const n = count();
  const yes = await confirmDialog(`Delete ${plural(n, 'message')}?`, `This deletes the ${plural(n, 'selected message')}. It cannot be undone.`, `Delete ${n.toLocaleString()}`);
  if (!yes) return;
  try {
    if (allMatching && state.query) await api.removeSearch(state.query);
    else if (allMatching) await api.removeAll();
    else await api.remove([...checked.keys()]);
    if (state.openId && (allMatching || checked.has(state.openId))) closeMessage();
    await done(`${plural(n, 'message')} deleted`);
  } catch (err) {
    showError(err);
  }
}

// PUT /api/v1/tags sets a message's tags exactly: messages that end with the same tags go in one
// call, so adding a tag to many messages with different tags costs a call per distinct result.
async function retag(adding) {
  if (!hasChecks()) return;
  const n = count();
  const tags = await openTags({
    title: adding ? `Add tags to ${plural(n, 'message')}` : `Remove tags from ${plural(n, 'message')}`,
    label: adding ? 'Tags to add' : 'Tags to remove',
  });
  if (!tags || !tags.length) return;
  try {
    const lower = new Set(tags.map((t) => t.toLowerCase()));
    const groups = new Map();
    for (const m of await summaries()) {
      const own = m.Tags || [];
      const next = adding
        ? [...own, ...tags.filter((t) => !own.some((o) => o.toLowerCase() === t.toLowerCase()))]
        : own.filter((t) => !lower.has(t.toLowerCase()));
      if (next.length === own.length && next.every((t, i) => t === own[i])) continue;
      const key = JSON.stringify([...next].sort());
      if (!groups.has(key)) groups.set(key, { tags: next, ids: [] });
      groups.get(key).ids.push(m.ID);
    }
    for (const g of groups.values()) await api.setTags(g.ids, g.tags);
    await done(`${adding ? 'Tagged' : 'Untagged'} ${plural(n, 'message')}`);
  } catch (err) {
    showError(err);
  }
}

async function release() {
  if (!hasChecks()) return;
  try {
    const list = await summaries();
    openRelease(list, state.config, (text) => {
      done(text).catch(showError);
    });
  } catch (err) {
    showError(err);
  }
}

export const bulk = {
  read: () => markRead(true),
  unread: () => markRead(false),
  tag: () => retag(true),
  untag: () => retag(false),
  release,
  remove,
};

// A new page or search: a hand-made selection keeps its messages; "all matching" is of one search.
export function onListLoaded(searchChanged) {
  if (searchChanged && allMatching) allMatching = false;
  if (searchChanged) checked.clear();
  refresh();
}

export function wireBulk() {
  $('#check-page').addEventListener('change', (e) => checkPage(e.target.checked));
  $('#bulk-all').addEventListener('click', checkAllMatching);
  $('#bulk-clear').addEventListener('click', () => clearChecks());
  $('#bulk-read').addEventListener('click', bulk.read);
  $('#bulk-unread').addEventListener('click', bulk.unread);
  $('#bulk-tag').addEventListener('click', bulk.tag);
  $('#bulk-untag').addEventListener('click', bulk.untag);
  $('#bulk-release').addEventListener('click', bulk.release);
  $('#bulk-delete').addEventListener('click', bulk.remove);
}

