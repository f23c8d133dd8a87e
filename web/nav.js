// Which view shows (inbox, sessions, statistics), the side navigation and the search help, and
// the URL that mirrors the state, so a reload or a shared link opens the same place.

import { base } from './api.js';
import { $ } from './dom.js';
import { els, state } from './state.js';

// -- URL state: ?q=search&start=50&m=ID&tab=headers or ?view=sessions&s=ID ----------------------

export function readUrl() {
  const p = new URLSearchParams(location.search);
  state.view = ['sessions', 'stats'].includes(p.get('view')) ? p.get('view') : 'inbox';
  state.query = p.get('q') || '';
  state.start = Math.max(0, parseInt(p.get('start') || '0', 10) || 0);
  state.openId = p.get('m') || null;
  // The tab shows only if the message has it (HTML, Relay, Attachments come and go).
  state.tab = (state.openId && p.get('tab')) || state.tab;
  state.sessionId = p.get('s') || null;
}

export function writeUrl(push = false) {
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
    if (state.openId && state.tab) u.searchParams.set('tab', state.tab);
  }
  if (u.href === location.href) return;
  if (push) history.pushState(null, '', u);
  else history.replaceState(null, '', u);
}

// -- views, navigation -------------------------------------------------------------------------

export function showView() {
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

export function toggleHelp(show) {
  const help = $('#search-help');
  help.hidden = !show;
  $('#search-help-btn').setAttribute('aria-expanded', show ? 'true' : 'false');
}

export function closeNav() {
  document.body.classList.remove('nav-open');
  $('#scrim').hidden = true;
  $('#menu-btn').setAttribute('aria-expanded', 'false');
}
