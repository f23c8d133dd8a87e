// The SMTP sessions page: recent sessions (including those that delivered nothing), one
// session's details and its transcript; the transcript table is shared with the SMTP tab.

import { api } from './api.js';
import { $, formatFullTime, formatTime, h, later, plural } from './dom.js';
import { goMessage } from './message.js';
import { showView, writeUrl } from './nav.js';
import { ICONS, PAGE, els, icon, showError, state } from './state.js';

const sessionsSoon = later(() => loadSessions().catch(() => {}));
export function scheduleSessions() {
  sessionsSoon(300);
}

export function showSessions(id = null) {
  state.view = 'sessions';
  state.sessionId = id;
  writeUrl(true);
  showView();
  loadSessions().catch(showError);
}

export async function loadSessions() {
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

export async function openSession(id) {
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

export function transcript(entries) {
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

export function wireSessions() {
  $('#sessions-refresh').addEventListener('click', () => loadSessions().catch(showError));
  $('#sessions-prev').addEventListener('click', () => {
    state.sessionsStart = Math.max(0, state.sessionsStart - PAGE);
    loadSessions().catch(showError);
  });
  $('#sessions-next').addEventListener('click', () => {
    state.sessionsStart += PAGE;
    loadSessions().catch(showError);
  });
}
