// Keyboard shortcuts: j/k or arrows, Enter, Delete, u, /, ?, n/p, Escape, and the bulk actions
// x, Shift+A, Shift+I, Shift+U, t, Shift+T, Shift+R (the ? dialog in index.html lists them).
// Keys typed into a field or a dialog are left to it.

import { bulk, checkAllMatching, checkPage, clearChecks, hasChecks, toggle } from './bulk.js';
import { $, isTyping } from './dom.js';
import { goPage, select, setSearch } from './list.js';
import { closeMessage, deleteMessage, moveOpen, openMessage, openTagDialog, toggleRead } from './message.js';
import { closeNav, showView, toggleHelp, writeUrl } from './nav.js';
import { openSession } from './sessions.js';
import { els, state } from './state.js';

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

export function wireKeyboard() {
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
        if (state.view === 'inbox' && hasChecks()) bulk.remove();
        else if (state.view === 'inbox') deleteMessage(state.openId || state.selected);
        break;
      case 'x':
        if (state.view === 'inbox' && (state.selected || state.openId)) toggle(state.selected || state.openId);
        break;
      case 'A': {
        if (state.view !== 'inbox') return;
        const page = $('#check-page');
        if (page.checked && !$('#bulk-all').hidden) checkAllMatching();
        else checkPage(true);
        break;
      }
      case 'I':
        if (hasChecks()) bulk.read();
        break;
      case 'U':
        if (hasChecks()) bulk.unread();
        break;
      case 't':
        if (hasChecks()) bulk.tag();
        else if (state.message) openTagDialog();
        break;
      case 'T':
        if (hasChecks()) bulk.untag();
        break;
      case 'R':
        if (hasChecks() && state.config?.MessageRelay?.Enabled) bulk.release();
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
        else if (state.view === 'inbox' && clearChecks()) break;
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
}
