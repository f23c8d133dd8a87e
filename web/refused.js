// Receiver simulation (--receiver): the mark of a refused message in the list, and the box in
// the SMTP tab that says which rule refused it, with the reply the client heard. A refused
// message is kept so that "why was my mail rejected" is one click; is:refused lists them.

import { h } from './dom.js';

const STAGES = { connect: 'at connect', mail: 'at MAIL FROM', rcpt: 'at RCPT TO', data: 'at the end of DATA' };

// The list's mark: nothing for an accepted message.
export function refusedMark(m) {
  if (!m.Refused) return null;
  return h('span', { class: 'refused-mark', title: 'Refused by the receiver profile (the SMTP tab says why)', text: 'refused' });
}

// The SMTP tab's explanation; `refused` is the message's Refused object (null when accepted).
export function refusedPanel(refused) {
  if (!refused) return null;
  const rows = [
    ['Rule', `${refused.Rule} (${refused.Profile} profile, ${STAGES[refused.Stage] || refused.Stage})`],
    ['Why', refused.Detail],
    ['Client', `${refused.ClientIP}${refused.Simulated ? ' (simulated: not the real client)' : ''}`],
  ];
  return h(
    'section',
    { class: 'refused-box', role: 'note' },
    h('h2', { class: 'section-title', text: 'Refused by the receiver' }),
    h('pre', { class: 'refused-reply', text: refused.Reply.replace(/\r\n/g, '\n') }),
    h('dl', { class: 'envelope' }, rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
    refused.Source
      ? h('p', { class: 'small' }, h('a', { href: refused.Source, target: '_blank', rel: 'noopener noreferrer', text: 'The rule\'s public source' }))
      : null,
  );
}
