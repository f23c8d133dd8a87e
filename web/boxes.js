// The mailbox switcher in the top bar: the mailboxes this user may see (GET /api/v1/mailboxes)
// with their unread counts, kept live by the websocket's `mailboxes` event; a link per mailbox to
// its own address (/mailbox/NAME/, the default one's is the webroot); and creating, renaming,
// emptying and deleting mailboxes (POST /api/v1/mailboxes, PUT /api/v1/mailboxes/NAME, DELETE
// /api/v1/mailboxes/NAME/messages, DELETE /api/v1/mailboxes/NAME). A rename takes every tab
// showing the mailbox to its new address (the websocket's `mailbox-renamed` event). Hidden while
// the user sees one mailbox only, so a single-mailbox user never notices it; creating the second
// one is in the about and settings panel.

import { DEFAULT_BOX, api, box, boxUrl } from './api.js';
import { $, h, plural } from './dom.js';
import { confirmDialog, loadList } from './list.js';
import { showError, state, toast } from './state.js';

// The mailbox this page shows: the one its address names; un-prefixed, the default mailbox, or
// for a user limited to one other mailbox that one (the server answers the un-prefixed UI so).
let current = box ?? DEFAULT_BOX;

const NAME_MAX = 64;
const NAME_ALLOWED = 'a-z 0-9 . _ - @ +';

let boxes = null; // [{Name, Total, Unread}] sorted by name; null until the server said
let hadCurrent = false;
let leaving = false; // the page is going to another address: the list's changes are no news
let gone = false; // it has been sent there: what the server tells this page now is stale
let dialogMode = 'create'; // what the name dialog does: 'create' or 'rename' (the shown mailbox)
// A 403 from the server hides the controls it refused for the rest of the tab's life: a
// restricted user is not offered what they may not do twice.
const refused = new Set(JSON.parse(sessionStorage.getItem('mp.boxRefused') || '[]'));

function refuse(what) {
  refused.add(what);
  sessionStorage.setItem('mp.boxRefused', JSON.stringify([...refused]));
}

/** The name the server makes of a user's text (mailbox/boxes.py's clean_box_name), or an error. */
export function cleanName(text) {
  let name = text.trim().toLowerCase().replace(/[^a-z0-9._@+-]/g, '_');
  // Dots alone would be a path segment (/mailbox/../ is the webroot): the server makes them `_`.
  if (/^\.+$/.test(name)) name = '_'.repeat(name.length);
  if (!name) return { error: `Type a name: 1 to ${NAME_MAX} of ${NAME_ALLOWED}` };
  if (name.length > NAME_MAX) {
    return { error: `The name is ${name.length} characters long: use at most ${NAME_MAX}` };
  }
  return { name };
}

// -- the list and its counts -------------------------------------------------------------------

function setBoxes(list) {
  boxes = [...list].sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
  if (box === null && boxes.length === 1) current = boxes[0].Name;
  const has = boxes.some((b) => b.Name === current);
  if (hadCurrent && !has && !leaving && current !== DEFAULT_BOX) {
    // Deleted elsewhere: its address now answers 404, so the page goes to the default mailbox
    // (a limited user's server sends them on to one of theirs) and says why there.
    leave(`The mailbox “${current}” was deleted`);
    return;
  }
  hadCurrent = has;
  render();
}

function leave(note) {
  leaving = true;
  gone = true;
  sessionStorage.setItem('mp.boxNote', note);
  location.assign(boxUrl(DEFAULT_BOX));
}

/** Whether the page has been sent to another address: the events that still come are stale
 * (the renamed mailbox's truncate would empty the view it is leaving). */
export function pageGone() {
  return gone;
}

const BOX_NAME = /^[a-z0-9._@+-]{1,64}$/;

// The shown mailbox has a new name: the page goes to its address, in place of the old one (which
// now answers 404), keeping its place in it (the message open, the search), as the IDs stay.
function follow(from, to) {
  const named = typeof to === 'string' && BOX_NAME.test(to) && !/^\.+$/.test(to);
  if (gone || from !== current || !named) return;
  leaving = true;
  gone = true;
  sessionStorage.setItem('mp.boxNote', `Mailbox “${from}” renamed to “${to}”`);
  location.replace(boxUrl(to) + location.search + location.hash);
}

/** The websocket's `mailbox-renamed` event: {From, To}, told to the renamed mailbox's pages. */
export function onRenamed(data) {
  if (data && typeof data === 'object') follow(data.From, data.To);
}

/** The websocket's `mailboxes` event: every mailbox this user may see, with its counts. */
export function onMailboxes(data) {
  if (Array.isArray(data)) setBoxes(data);
}

/** Reads the list again (at start, and whenever the page reloads its view from the API). */
export async function refreshBoxes() {
  let data;
  try {
    data = await api.mailboxes();
  } catch (err) {
    // Under a mailbox's address every call answers 404 once the mailbox is gone: renamed, the
    // answer says where it went, and the page follows it as it does the websocket's event (a
    // tab that polls, its websocket down, learns of the rename only here); else this page came
    // from the browser's cache (a step back in history) after a rename or a delete.
    if (err?.status === 404 && box !== null && err.renamedTo) follow(current, err.renamedTo);
    else if (err?.status === 404 && box !== null) reloadOnce();
    // Else a server without mailboxes (or one that refuses the list) shows no switcher.
    return;
  }
  sessionStorage.removeItem(RELOADED);
  setBoxes(data.Mailboxes || []);
}

const RELOADED = 'mp.boxReloaded';

// Loaded again, the address answers what it is now: the page at the mailbox's new name (the
// server sends a renamed mailbox's old address on), or the server's 404. Once per address, so
// a page the server still gives for a gone mailbox is never reloaded over and over.
function reloadOnce() {
  if (gone || sessionStorage.getItem(RELOADED) === location.href) return;
  sessionStorage.setItem(RELOADED, location.href);
  gone = true;
  location.reload();
}

function unreadBadge(n) {
  if (!n) return null;
  return h(
    'span',
    { class: 'badge' },
    h('span', { 'aria-hidden': 'true', text: n > 999 ? '999+' : String(n) }),
    h('span', { class: 'sr-only', text: `${n.toLocaleString()} unread` }),
  );
}

function render() {
  const shown = Boolean(boxes) && boxes.length > 1;
  $('#boxes').hidden = !shown;
  document.body.classList.toggle('has-boxes', shown);
  if (!boxes) return;
  const others = boxes.filter((b) => b.Name !== current).reduce((n, b) => n + (b.Unread || 0), 0);
  $('#box-name').textContent = current;
  const badge = $('#box-others');
  badge.hidden = others === 0;
  $('#box-others-n').textContent = others > 999 ? '999+' : String(others);
  const elsewhere = `${others.toLocaleString()} unread in other mailboxes`;
  $('#box-others-text').textContent = `, ${elsewhere}`;
  $('#box-btn').title = others ? `Switch mailbox: ${elsewhere}` : 'Switch mailbox';
  $('#box-list').replaceChildren(
    ...boxes.map((b) =>
      h(
        'li',
        {},
        h(
          'a',
          {
            class: `box-item${b.Name === current ? ' active' : ''}`,
            href: boxUrl(b.Name),
            'aria-current': b.Name === current ? 'page' : null,
            title: `${b.Name}: ${plural(b.Total || 0, 'message')}, ${(b.Unread || 0).toLocaleString()} unread`,
            dataset: { box: b.Name },
          },
          h('span', { class: 'box-item-name', text: b.Name }),
          unreadBadge(b.Unread || 0),
        ),
      ),
    ),
  );
  renderActions();
}

/** Shows the actions this user and instance allow (again once the instance's settings load). */
export function renderActions() {
  const here = boxes?.find((b) => b.Name === current);
  $('#box-new').hidden = refused.has('manage');
  // `default` keeps its name (the server answers 400), as it cannot be deleted.
  $('#box-rename').hidden = refused.has('manage') || !here || current === DEFAULT_BOX;
  $('#box-rename').textContent = `Rename “${current}”…`;
  // --hide-delete-all-button hides this delete-all too.
  $('#box-empty').hidden = refused.has('empty') || !here || Boolean(state.config?.HideDeleteAllButton);
  $('#box-empty').textContent = `Empty “${current}”…`;
  $('#box-delete').hidden = refused.has('manage') || !here || current === DEFAULT_BOX;
  $('#box-delete').textContent = `Delete “${current}”…`;
  const about = $('#about-box-new');
  if (about) about.hidden = refused.has('manage');
}

// -- the menu: a disclosure of links, walked with Tab or the arrows, closed with Escape ----------

function menuOpen() {
  return !$('#box-menu').hidden;
}

function setMenu(open, { focusButton = false } = {}) {
  $('#box-menu').hidden = !open;
  $('#box-btn').setAttribute('aria-expanded', open ? 'true' : 'false');
  if (open) ($('#box-list a[aria-current]') || $('#box-list a'))?.focus();
  else if (focusButton) $('#box-btn').focus();
}

function menuItems() {
  return [...$('#box-menu').querySelectorAll('a, button')].filter((el) => !el.hidden);
}

function onMenuKey(e) {
  if (e.key === 'Escape' && menuOpen()) {
    setMenu(false, { focusButton: true });
  } else if ((e.key === 'ArrowDown' || e.key === 'ArrowUp') && menuOpen()) {
    const items = menuItems();
    const i = items.indexOf(document.activeElement);
    const next = e.key === 'ArrowDown' ? (i + 1) % items.length : (i - 1 + items.length) % items.length;
    items[next]?.focus();
  } else if (e.key === 'ArrowDown' && e.target === $('#box-btn')) {
    setMenu(true);
  } else {
    return;
  }
  // Handled here: the page's shortcuts (keyboard.js) leave a handled key alone.
  e.preventDefault();
}

// -- create, rename, empty, delete ---------------------------------------------------------------

function forbidden(err, what) {
  if (err?.status !== 403) return false;
  refuse(what);
  renderActions();
  showError(err);
  return true;
}

// The name dialog, for a new mailbox or the shown one's new name: `value` fills the field.
function openNameDialog(mode, title, action, value) {
  setMenu(false);
  dialogMode = mode;
  const dlg = $('#box-dialog');
  const input = $('#box-input');
  $('#box-dialog-title').textContent = title;
  $('#box-submit').textContent = action;
  input.value = value;
  input.removeAttribute('aria-invalid');
  $('#box-error').hidden = true;
  $('#box-error').textContent = '';
  $('#box-preview').textContent = '';
  dlg.returnValue = '';
  dlg.showModal();
  input.select();
}

/** Opens the dialog that creates a mailbox; on success the page goes to the new mailbox. */
export function openCreate() {
  openNameDialog('create', 'New mailbox', 'Create', '');
}

function openRename() {
  if (current === DEFAULT_BOX) return;
  openNameDialog('rename', `Rename the mailbox “${current}”`, 'Rename', current);
}

async function submitName(e) {
  const dlg = $('#box-dialog');
  e.preventDefault(); // the dialog stays open until the server said yes
  const error = $('#box-error');
  const input = $('#box-input');
  const { name, error: bad } = cleanName(input.value);
  const say = (text) => {
    error.textContent = text;
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  };
  if (bad) {
    say(bad);
    return;
  }
  const renaming = dialogMode === 'rename';
  const from = current;
  if (renaming && name === from) {
    dlg.close(); // the same name: nothing to do
    return;
  }
  // Renamed, the list stops naming this mailbox: that is no deletion to leave for.
  if (renaming) leaving = true;
  try {
    if (renaming) await api.renameMailbox(from, name);
    else await api.createMailbox(name);
  } catch (err) {
    leaving = false;
    if (err.status === 403) {
      dlg.close();
      forbidden(err, 'manage');
    } else {
      say(err.message); // the server's reason: a bad name (400), one that exists (409)
    }
    return;
  }
  dlg.close();
  if (renaming) follow(from, name);
  else location.assign(boxUrl(name));
}

function previewName() {
  const typed = $('#box-input').value;
  const { name } = cleanName(typed);
  $('#box-preview').textContent = name && name !== typed.trim() ? `It will be named “${name}”.` : '';
}

// The shown mailbox's count is the list's (kept by its own events, which the throttled
// `mailboxes` event may trail by a moment).
const count = (what) => plural(state.total || 0, what);

async function emptyCurrent() {
  setMenu(false);
  const yes = await confirmDialog(
    `Empty the mailbox “${current}”?`,
    `This deletes its ${count('message')}; the mailbox stays. It cannot be undone.`,
    'Empty',
  );
  if (!yes) return;
  try {
    await api.emptyMailbox(current);
    await loadList();
  } catch (err) {
    if (!forbidden(err, 'empty')) showError(err);
  }
}

async function deleteCurrent() {
  setMenu(false);
  if (current === DEFAULT_BOX) return;
  const yes = await confirmDialog(
    `Delete the mailbox “${current}”?`,
    `This deletes the mailbox and its ${count('message')}. It cannot be undone.`,
    'Delete mailbox',
  );
  if (!yes) return;
  leaving = true;
  try {
    await api.deleteMailbox(current);
  } catch (err) {
    leaving = false;
    if (!forbidden(err, 'manage')) showError(err);
    return;
  }
  leave(`Mailbox “${current}” deleted`);
}

/** The about panel's part: which mailbox this is, and the button that creates another. */
export function boxesSection() {
  const n = boxes?.length || 1;
  return [
    h('h3', { class: 'section-title', text: 'Mailboxes' }),
    h('p', {
      class: 'muted small',
      text: `This page shows the mailbox “${current}”, one of ${plural(n, 'mailbox', 'mailboxes')} you may see.`,
    }),
    h('p', {}, h('button', {
      id: 'about-box-new',
      class: 'btn small',
      type: 'button',
      hidden: refused.has('manage'),
      text: 'New mailbox…',
      onclick: () => {
        $('#about-dialog').close();
        openCreate();
      },
    })),
  ];
}

export function wireBoxes() {
  const note = sessionStorage.getItem('mp.boxNote');
  if (note) {
    sessionStorage.removeItem('mp.boxNote');
    toast(note);
  }
  const wrap = $('#boxes');
  $('#box-btn').addEventListener('click', () => setMenu(!menuOpen()));
  wrap.addEventListener('keydown', onMenuKey);
  // Leaving the menu (a click elsewhere, Tab past its last item) closes it.
  document.addEventListener('click', (e) => {
    if (menuOpen() && !e.target.closest('#boxes')) setMenu(false);
  });
  wrap.addEventListener('focusout', (e) => {
    if (menuOpen() && e.relatedTarget && !wrap.contains(e.relatedTarget)) setMenu(false);
  });
  $('#box-new').addEventListener('click', openCreate);
  $('#box-rename').addEventListener('click', openRename);
  $('#box-empty').addEventListener('click', emptyCurrent);
  $('#box-delete').addEventListener('click', deleteCurrent);
  $('#box-form').addEventListener('submit', (e) => {
    submitName(e).catch(showError);
  });
  $('#box-input').addEventListener('input', previewName);
  $('#box-cancel').addEventListener('click', () => $('#box-dialog').close());
  // A page sent elsewhere may come back from the browser's back-forward cache as it was, its
  // mailbox renamed or deleted since: loaded again, its address answers what it is now.
  window.addEventListener('pageshow', (e) => {
    if (e.persisted && gone) location.reload();
  });
  // Closed with Escape or Cancel, the dialog gives focus back to what opened it, a menu item
  // hidden by then: the switcher's button takes it instead of the page's body.
  $('#box-dialog').addEventListener('close', () => {
    const lost = !document.activeElement || document.activeElement === document.body;
    if (lost && !gone && !$('#boxes').hidden) $('#box-btn').focus();
  });
}
