// The about and settings panel: version, listeners, database, retention, links to the docs
// (GET /api/v1/info and /api/v1/webui), and the chaos triggers when chaos is on (GET and PUT
// /api/v1/chaos): each SMTP stage's error code and probability, the drop and the delay.

import { api, url } from './api.js';
import { boxesSection } from './boxes.js';
import { $, formatSize, h, plural } from './dom.js';
import { toast } from './state.js';

function duration(seconds) {
  if (!seconds) return 'no age limit';
  const units = [['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]];
  const [name, size] = units.find(([, s]) => seconds % s === 0 && seconds >= s);
  return `older than ${plural(seconds / size, name)} pruned`;
}

function facts(rows) {
  return h('dl', { class: 'about-facts' }, rows.filter(([, v]) => v !== null && v !== undefined && v !== '').flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]));
}

function number(id, label, value, min, max) {
  return h(
    'label',
    { class: 'chaos-field' },
    h('span', { class: 'muted small', text: label }),
    h('input', { type: 'number', id, value: String(value), min: String(min), max: String(max), step: '1', required: true }),
  );
}

// The chaos form, built from the triggers the server reports (its stages are its own to name).
function chaosForm(triggers) {
  const stages = Object.keys(triggers).filter((k) => 'ErrorCode' in triggers[k]);
  const error = h('p', { class: 'error', id: 'chaos-error', role: 'alert', hidden: true });
  const form = h(
    'form',
    { id: 'chaos-form', class: 'chaos-form' },
    h(
      'div',
      { class: 'chaos-grid' },
      stages.map((s) =>
        h(
          'fieldset',
          { class: 'chaos-stage' },
          h('legend', { text: s }),
          number(`chaos-${s}-code`, 'Error code', triggers[s].ErrorCode, 400, 599),
          number(`chaos-${s}-prob`, 'Probability %', triggers[s].Probability, 0, 100),
        ),
      ),
      h('fieldset', { class: 'chaos-stage' }, h('legend', { text: 'Drop the connection' }), number('chaos-drop-prob', 'Probability %', triggers.Drop?.Probability ?? 0, 0, 100)),
      h(
        'fieldset',
        { class: 'chaos-stage' },
        h('legend', { text: 'Delay each reply' }),
        number('chaos-delay-ms', 'Milliseconds', triggers.Delay?.Milliseconds ?? 0, 0, 60000),
        number('chaos-delay-prob', 'Probability %', triggers.Delay?.Probability ?? 0, 0, 100),
      ),
    ),
    error,
    h('div', { class: 'dialog-actions' }, h('button', { class: 'btn primary', type: 'submit', id: 'chaos-save', text: 'Apply triggers' })),
  );
  const int = (id) => parseInt($(`#${id}`, form).value, 10) || 0;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {};
    for (const s of stages) body[s] = { ErrorCode: int(`chaos-${s}-code`), Probability: int(`chaos-${s}-prob`) };
    body.Drop = { Probability: int('chaos-drop-prob') };
    body.Delay = { Milliseconds: int('chaos-delay-ms'), Probability: int('chaos-delay-prob') };
    error.hidden = true;
    try {
      await api.setChaos(body);
      toast('Chaos triggers applied');
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  return form;
}

async function render() {
  const body = $('#about-body');
  body.replaceChildren(h('p', { class: 'loading', text: 'Loading…' }));
  const [info, cfg] = await Promise.all([api.info(), api.webui()]);
  const l = cfg.Listeners || {};
  const r = cfg.Retention || {};
  const parts = [
    h('h3', { class: 'section-title', text: 'This instance' }),
    facts([
      ['Version', `mailpit_py ${info.Version}`],
      ['Label', cfg.Label],
      ['SMTP', l.SMTP],
      ['Web UI and API', l.HTTP],
      ['POP3', l.POP3 || 'off'],
      ['IMAP', l.IMAP || 'off'],
      ['Database', info.Database ? `${info.Database} (${formatSize(info.DatabaseSize || 0)})` : `in memory (${formatSize(info.DatabaseSize || 0)})`],
      ['Messages', `${info.Messages.toLocaleString()}, ${info.Unread.toLocaleString()} unread`],
      ['Retention', `${r.MaxMessages ? `the newest ${r.MaxMessages.toLocaleString()} kept` : 'no count limit'}; ${duration(r.MaxAge || 0)}`],
      ['Relay', cfg.MessageRelay?.Enabled ? `through ${cfg.MessageRelay.SMTPServer}` : 'off'],
    ]),
    ...boxesSection(),
    h('h3', { class: 'section-title', text: 'Documentation' }),
    h(
      'ul',
      { class: 'about-links' },
      h('li', {}, h('a', { href: url('api/v1/swagger.json').href, target: '_blank', rel: 'noopener', text: 'The REST API (OpenAPI description)' })),
      h('li', { text: 'The guides ship with the source, in its docs/ folder: web-ui.md, api.md (search syntax), options.md, smtp.md, relay.md, checks.md; mailpit-py --help lists every option.' }),
    ),
  ];
  if (cfg.ChaosEnabled) {
    parts.push(
      h('h3', { class: 'section-title', text: 'Chaos: SMTP fault injection' }),
      h('p', { class: 'muted small', text: 'Each stage fails with its error code at the given probability; applied at once to new SMTP commands.' }),
      chaosForm(await api.chaos()),
    );
  }
  body.replaceChildren(...parts);
}

export function openAbout() {
  const dlg = $('#about-dialog');
  if (!dlg.open) dlg.showModal();
  render().catch((err) => $('#about-body').replaceChildren(h('p', { class: 'error', text: `Could not load: ${err.message}` })));
}

export function wireAbout() {
  $('#about-btn').addEventListener('click', openAbout);
}
