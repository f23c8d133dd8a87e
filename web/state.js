// The UI's shared state (what is shown, the page of messages, the open message), the page's
// fixed elements, and the small helpers every view uses: icons, toasts.

import { $ } from './dom.js';
import { statsView } from './stats.js';

export const PAGE = 50;

export const ICONS = {
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

export const state = {
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

export const els = {
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

export function icon(path, cls = 'i') {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', cls);
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', path);
  svg.append(p);
  return svg;
}

let toastTimer = 0;
export function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.hidden = true;
  }, 3500);
}

export function showError(err) {
  toast(err?.message ? `Error: ${err.message}` : 'Something went wrong');
}
