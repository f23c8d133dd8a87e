// Relay and release in the message view: the release dialog, which stays open to show
// a refused recipient, and the Relay tab listing every relay attempt of the message.

import { api, url } from './api.js';
import { $, formatFullTime, h } from './dom.js';

// Whether this instance relays or forwards at all (GET /api/v1/webui).
export function relayShown(config) {
  const r = config?.MessageRelay;
  return Boolean(r?.Enabled || r?.Forwarding);
}

// Open the release dialog for message `m`, or a list of messages (each is released in turn);
// `done(text)` reports the outcome (a toast).
export function openRelease(m, config, done) {
  const relay = config?.MessageRelay;
  const many = Array.isArray(m) ? m : [m];
  if (!many.length || !many[0] || !relay?.Enabled) return;
  [m] = many;
  $('#release-title').textContent = many.length > 1 ? `Release ${many.length.toLocaleString()} messages` : 'Release message';
  const dlg = $('#release-dialog');
  const form = $('#release-form');
  const input = $('#release-to');
  const error = $('#release-error');
  const submit = $('button[value="ok"]', form);
  const rules = [
    relay.SMTPServer ? `Through ${relay.SMTPServer}.` : '',
    relay.AllowedRecipients ? `Allowed: ${relay.AllowedRecipients}.` : '',
    relay.BlockedRecipients ? `Blocked: ${relay.BlockedRecipients}.` : '',
  ].filter(Boolean);
  $('#release-server').textContent = rules.join(' ');
  input.value = localStorage.getItem('mp.releaseTo') || (m.To || []).map((a) => a.Address).join(', ');
  error.hidden = true;
  error.textContent = '';
  submit.disabled = false;

  // The form is method="dialog": intercept Release so a refusal keeps the dialog open.
  const onSubmit = async (e) => {
    if (e.submitter?.value !== 'ok') return;
    e.preventDefault();
    const to = input.value.split(/[,;\s]+/).map((a) => a.trim()).filter(Boolean);
    if (!to.length) return;
    submit.disabled = true;
    error.hidden = true;
    let sent = 0;
    try {
      let answer = '';
      for (const one of many) {
        answer = await api.release(one.ID, to);
        sent += 1;
      }
      localStorage.setItem('mp.releaseTo', to.join(', '));
      dlg.close('ok');
      const what = many.length > 1 ? `${sent} messages` : '';
      done(answer === 'ok' ? `Released ${what ? `${what} ` : ''}to ${to.join(', ')}` : `Release ${answer}`);
      refreshRelayTab(m.ID);
    } catch (err) {
      error.textContent = many.length > 1 ? `${sent} of ${many.length} released, then: ${err.message}` : err.message;
      error.hidden = false;
      submit.disabled = false;
      refreshRelayTab(m.ID);
    }
  };
  // Enter in the field means Release (the form's first button, its default, is Cancel).
  const onKey = (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    submit.click();
  };
  input.addEventListener('keydown', onKey);
  form.addEventListener('submit', onSubmit);
  dlg.addEventListener(
    'close',
    () => {
      form.removeEventListener('submit', onSubmit);
      input.removeEventListener('keydown', onKey);
    },
    { once: true },
  );
  dlg.returnValue = '';
  dlg.showModal();
}

async function history(id) {
  const resp = await fetch(url(`api/v1/message/${encodeURIComponent(id)}/relay`));
  if (!resp.ok) throw new Error((await resp.text()).trim() || `HTTP ${resp.status}`);
  return resp.json();
}

// The Relay tab's content: queue entries, then every attempt, oldest first.
export async function relayPanel(m) {
  const data = await history(m.ID);
  return h('div', { class: 'relay-panel', id: 'relay-panel', dataset: { id: m.ID } }, renderHistory(data));
}

function renderHistory(data) {
  if (!data.Queue.length && !data.Attempts.length) {
    return h('p', { class: 'muted', text: 'This message has not been relayed.' });
  }
  const queue = h(
    'ul',
    { class: 'relay-queue' },
    data.Queue.map((q) =>
      h(
        'li',
        { class: `relay-state-${q.State}` },
        h('strong', { text: `${q.Kind}: ${q.State}` }),
        ` to ${q.To.join(', ')} after ${q.Attempts} attempt${q.Attempts === 1 ? '' : 's'}`,
        q.NextAttempt ? `, next ${formatFullTime(q.NextAttempt)}` : '',
      ),
    ),
  );
  const table = h(
    'table',
    { class: 'transcript relay-attempts' },
    h('thead', {}, h('tr', {}, ['When', 'Kind', 'To', 'Server', 'Reply', 'Outcome'].map((t) => h('th', { text: t })))),
    h(
      'tbody',
      {},
      data.Attempts.map((a) =>
        h(
          'tr',
          { class: `relay-outcome-${a.Outcome}` },
          h('td', { text: formatFullTime(a.Time) }),
          h('td', { text: a.Kind }),
          h('td', { text: a.To.join(', ') }),
          h('td', { text: a.Server }),
          h('td', { class: 'line', text: a.Reply }),
          h('td', { class: 'outcome', text: a.Outcome }),
        ),
      ),
    ),
  );
  return [queue, table];
}

// Re-render the Relay tab if it is showing this message (after a release).
async function refreshRelayTab(id) {
  const panel = document.getElementById('relay-panel');
  if (!panel || panel.dataset.id !== id) return;
  try {
    panel.replaceChildren(...[renderHistory(await history(id))].flat());
  } catch {
    // The tab keeps what it showed; the next visit reloads it.
  }
}
