// mailpit_py web UI: the inbox, the message view with its tabs, the SMTP sessions page.
// Plain ES modules, no build step; talks only to the REST API and the /api/events websocket.
// This entry wires the views together: the list (list.js), the message (message.js), the
// sessions page (sessions.js), keys (keyboard.js), preferences (prefs.js), statistics (stats.js),
// the mailbox switcher (boxes.js).
// The views call each other (a row opens a message, a message's tag searches the list), so
// list.js, message.js and sessions.js import one another: that is sound for ES modules because
// their top level only defines things, and nothing runs across modules before init() below.

import { wireAbout } from './about.js';
import { api } from './api.js';
import {
  onMailboxes, onRenamed, pageGone, refreshBoxes, renderActions, wireBoxes,
} from './boxes.js';
import { wireBulk } from './bulk.js';
import { $ } from './dom.js';
import { wireKeyboard } from './keyboard.js';
import {
  loadList, onDelete, onNew, onUpdate, renderList, scheduleRefresh, setCounts, setSearch,
  updateTitle, wireList,
} from './list.js';
import { Live } from './live.js';
import { closeMessage, openMessage, renderMessage } from './message.js';
import { closeNav, readUrl, showView, writeUrl } from './nav.js';
import { applyTheme, updateNotifyButton, wirePrefs } from './prefs.js';
import { loadSessions, scheduleSessions, showSessions, wireSessions } from './sessions.js';
import { els, showError, state } from './state.js';
import { wireTagChips } from './tagchips.js';

// -- history: back and forward restore the view the URL names ----------------------------------

function onPopState() {
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
}

// -- live events -------------------------------------------------------------------------------

function onEvent({ Type: type, Data: data }) {
  if (pageGone()) return; // on its way to another address (its mailbox renamed or deleted)
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
    case 'mailboxes':
      onMailboxes(data);
      break;
    case 'mailbox-renamed':
      onRenamed(data);
      break;
    default:
      break;
  }
  if (state.view === 'sessions' && (type === 'new' || type === 'error')) scheduleSessions();
  if (state.view === 'stats' && (type === 'new' || type === 'error')) els.stats.soon();
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

// -- wiring ------------------------------------------------------------------------------------

function wire() {
  wireList();
  wireSessions();
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
  wirePrefs();
  wireTagChips();
  wireBulk();
  wireAbout();
  wireBoxes();
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
      renderActions();
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
  refreshBoxes();
  // Each reload of the view from the API (on connecting, and while polling) reads the mailboxes'
  // counts too: the events that kept them live may have been missed meanwhile.
  const poll = () => {
    refreshBoxes();
    return loadList();
  };
  const live = new Live({ onEvent, onState: setConnState, poll });
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

// Back, forward and the keys are listened to from the start, before the first page of mail loads.
window.addEventListener('popstate', onPopState);
wireKeyboard();
init();
