// The message's Checks tab: authentication (DKIM, SPF, DMARC), header requirements,
// blocklists, spam score, HTML compatibility, and a link check run on request.

import { url } from './api.js';
import { h } from './dom.js';

// A note names the flag that changes what it says (--checks-client-ip): the flag is kept on one
// line, which the browser broke after its first hyphen ("set -" and "-checks-client-ip").
function noteParts(text) {
  return text.split(/(--[a-z][a-z0-9-]*)/).map((part, i) => (i % 2 ? h('code', { class: 'flag', text: part }) : part));
}

async function getJson(path, params) {
  const resp = await fetch(url(path, params));
  if (!resp.ok) throw new Error((await resp.text()).trim() || `HTTP ${resp.status}`);
  return resp.json();
}

const msgPath = (id, what) => `api/v1/message/${encodeURIComponent(id)}/${what}`;

const GOOD = new Set(['pass', 'yes']);
const BAD = new Set(['fail', 'permerror', 'no']);

function verdict(result, label, text) {
  const kind = GOOD.has(result) ? 'ok' : BAD.has(result) ? 'bad' : 'warn';
  const shown = text ?? (label ? `${label} ${result}` : result);
  return h('span', { class: `verdict verdict-${kind}`, dataset: { result }, text: shown });
}

function section(title, ...body) {
  return h('section', { class: 'check-section' }, h('h2', { class: 'section-title', text: title }), ...body);
}

function table(head, rows) {
  return h(
    'table',
    { class: 'check-table' },
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))),
  );
}

function pairs(items) {
  return h(
    'dl',
    { class: 'envelope' },
    items.filter(([, v]) => v !== undefined && v !== '').flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]),
  );
}

function authSection(auth) {
  const spf = auth.SPF;
  const dmarc = auth.DMARC;
  const dkimRows = auth.DKIM.map((s) => [
    verdict(s.Result),
    s.Domain,
    s.Selector,
    s.Algorithm,
    s.Canonicalization,
    s.BodyHashOK ? 'ok' : 'no',
    s.SignatureOK ? 'ok' : 'no',
    s.Reason || '—',
  ]);
  return section(
    'Authentication',
    h(
      'div',
      { class: 'verdicts', id: 'auth-verdicts' },
      auth.DKIM.length ? auth.DKIM.map((s) => verdict(s.Result, `DKIM (${s.Domain})`)) : verdict('none', 'DKIM'),
      verdict(spf.Result, 'SPF'),
      verdict(dmarc.Result, 'DMARC'),
    ),
    auth.Note ? h('p', { class: 'check-note' }, noteParts(auth.Note)) : null,
    dkimRows.length
      ? table(['DKIM', 'Domain', 'Selector', 'Algorithm', 'Canon.', 'Body hash', 'Signature', 'Why'], dkimRows)
      : h('p', { class: 'muted', text: 'No DKIM signature.' }),
    h('h3', { class: 'check-sub', text: 'SPF' }),
    pairs([
      ['Result', verdict(spf.Result)],
      ['Domain', spf.Domain],
      ['Client', spf.ClientIP],
      ['Record', spf.Record],
      ['Matched', spf.Mechanism],
      ['Why', spf.Reason],
    ]),
    h('h3', { class: 'check-sub', text: 'DMARC' }),
    pairs([
      ['Result', verdict(dmarc.Result)],
      ['From domain', dmarc.FromDomain],
      ['Policy', dmarc.Policy],
      ['Record', dmarc.Record ? `_dmarc.${dmarc.RecordDomain}: ${dmarc.Record}` : ''],
      ['Alignment', `DKIM ${dmarc.DKIMAlignment}: ${dmarc.DKIMAligned ? 'aligned' : 'not aligned'}; SPF ${dmarc.SPFAlignment}: ${dmarc.SPFAligned ? 'aligned' : 'not aligned'}`],
      ['Why', dmarc.Reason],
    ]),
    h('h3', { class: 'check-sub', text: 'Authentication-Results a receiver would add' }),
    h('pre', { class: 'code', id: 'auth-results', text: auth.AuthenticationResults }),
  );
}

function headerSection(hc) {
  const lu = hc.ListUnsubscribe;
  return section(
    `Bulk-sender requirements (${hc.Passed}/${hc.Total})`,
    h(
      'ul',
      { class: 'requirements', id: 'requirements' },
      hc.Requirements.map((r) =>
        h('li', { class: r.OK ? 'req-ok' : 'req-bad', dataset: { name: r.Name } }, h('span', { class: 'req-mark', text: r.OK ? '✓' : '✗', 'aria-label': r.OK ? 'met' : 'not met' }), h('strong', { text: r.Name }), ' ', h('span', { class: 'muted', text: r.Detail })),
      ),
    ),
    lu.Header
      ? pairs([
          ['List-Unsubscribe', lu.Header],
          ['List-Unsubscribe-Post', lu.HeaderPost],
          ['Links', lu.Links.join(' ')],
          ['Errors', lu.Errors ? h('span', { class: 'error', text: lu.Errors }) : ''],
        ])
      : null,
  );
}

function blocklistSection(bl) {
  if (!bl.Zones.length) return null;
  const rows = bl.Results.map((r) => [
    r.Listed ? verdict('fail', '', 'listed') : verdict(r.Error ? 'temperror' : 'pass', '', r.Error ? 'error' : 'not listed'),
    r.Zone,
    `${r.Kind}: ${r.Subject}`,
    r.Codes.map((c) => `${c.Code} ${c.Meaning}`).join('; ') || r.Error || '—',
    r.Text || '',
  ]);
  return section(
    `Blocklists (${bl.Listed} listed)`,
    bl.Note ? h('p', { class: 'check-note' }, noteParts(bl.Note)) : null,
    rows.length ? table(['', 'Zone', 'Looked up', 'Answer', 'Text'], rows) : h('p', { class: 'muted', text: 'Nothing to look up.' }),
  );
}

function spamSection(sa) {
  if (sa.Error) return section('Spam score', h('p', { class: 'error', id: 'sa-error', text: sa.Error }));
  return section(
    'Spam score',
    h('p', { id: 'sa-score' }, verdict(sa.IsSpam ? 'fail' : 'pass', '', sa.IsSpam ? 'spam' : 'not spam'), ` score ${sa.Score}`),
    table(['Score', 'Rule', 'Description'], sa.Rules.map((r) => [String(r.Score), r.Name, r.Description])),
  );
}

function htmlSection(hc) {
  const t = hc.Total;
  const rows = hc.Warnings.map((w) => {
    const no = [...new Set(w.Results.filter((r) => r.Support === 'no').map((r) => r.Name.replace(/ \(.*\)$/, '')))];
    const partial = [...new Set(w.Results.filter((r) => r.Support === 'partial').map((r) => r.Name.replace(/ \(.*\)$/, '')))];
    const places = (w.Places || []).slice(0, 3).map((p) => `line ${p.Line}: ${p.Text}`).join('\n');
    return [
      w.URL ? h('a', { href: w.URL, target: '_blank', rel: 'noopener noreferrer', text: w.Title }) : w.Title,
      String(w.Score.Found),
      `${Math.round(w.Score.Unsupported)}% no, ${Math.round(w.Score.Partial)}% partly`,
      h('span', { class: 'small', title: [no.length ? `Not supported: ${no.join(', ')}` : '', partial.length ? `Partly: ${partial.join(', ')}` : ''].filter(Boolean).join('\n'), text: no.slice(0, 4).join(', ') + (no.length > 4 ? ` +${no.length - 4}` : '') || partial.slice(0, 4).join(', ') }),
      h('code', { class: 'small', text: places }),
    ];
  });
  return section(
    'HTML compatibility',
    h('p', { id: 'html-score' }, h('strong', { text: `${t.Supported.toFixed(1)}% supported` }), ` · ${t.Partial.toFixed(1)}% partly · ${t.Unsupported.toFixed(1)}% not supported (${t.Nodes} elements)`),
    rows.length
      ? table(['Feature', 'Found', 'Clients', 'Not supported by', 'Where'], rows)
      : h('p', { class: 'muted', text: 'Nothing in this HTML lacks support.' }),
  );
}

function linkSection(m) {
  const out = h('div', { id: 'link-results' });
  const follow = h('input', { type: 'checkbox', id: 'link-follow' });
  const run = async () => {
    out.replaceChildren(h('p', { class: 'loading', text: 'Checking links…' }));
    try {
      const res = await getJson(msgPath(m.ID, 'link-check'), { follow: follow.checked ? 'true' : 'false' });
      out.replaceChildren(
        h('p', { text: `${res.Links.length} links, ${res.Errors} with errors` }),
        res.Links.length
          ? table(['Status', 'URL'], res.Links.map((l) => [verdict(l.StatusCode >= 200 && l.StatusCode < 400 ? 'pass' : 'fail', '', l.StatusCode ? String(l.StatusCode) : 'error'), h('span', {}, h('span', { text: l.URL }), h('div', { class: 'muted small', text: l.Status }))]))
          : null,
      );
    } catch (err) {
      out.replaceChildren(h('p', { class: 'error', text: err.message }));
    }
  };
  return section(
    'Links',
    h('p', { class: 'muted small', text: 'Fetches each link and image URL (HEAD) from this machine; private and loopback addresses are refused unless the server allows internal requests.' }),
    h('div', { class: 'tab-bar' }, h('button', { class: 'btn small', type: 'button', id: 'link-check-btn', onclick: run, text: 'Check links' }), h('label', { class: 'small' }, follow, ' follow redirects')),
    out,
  );
}

// The Checks tab's content for message `m`; `config` is /api/v1/webui's answer. With
// `refresh` the stored checks run again (after a DNS record or the override file changed).
export async function renderChecks(m, config, refresh = false) {
  const settle = (p) => p.then((v) => ({ v }), (e) => ({ e }));
  const again = refresh ? { refresh: 'true' } : undefined;
  // The stored checks are one computation: ask for one first so a refresh runs once.
  const auth = await settle(getJson(msgPath(m.ID, 'auth-check'), again));
  const [headers, blocklists, html, spam] = await Promise.all([
    settle(getJson(msgPath(m.ID, 'header-check'))),
    settle(getJson(msgPath(m.ID, 'blocklist-check'))),
    m.HTML ? settle(getJson(msgPath(m.ID, 'html-check'))) : Promise.resolve(null),
    config?.SpamAssassin ? settle(getJson(msgPath(m.ID, 'sa-check'))) : Promise.resolve(null),
  ]);
  const show = (res, fn, title) => {
    if (!res) return null;
    if (res.e) return section(title, h('p', { class: 'error', text: `Could not check: ${res.e.message}` }));
    return fn(res.v);
  };
  const rerun = h('button', {
    class: 'btn small',
    type: 'button',
    id: 'checks-rerun',
    text: 'Run the checks again',
    title: 'Look the DNS records up again (after publishing a key or editing the override file)',
    onclick: async () => {
      rerun.disabled = true;
      rerun.textContent = 'Checking…';
      try {
        view.replaceWith(await renderChecks(m, config, true));
      } catch (err) {
        rerun.disabled = false;
        rerun.textContent = `Failed: ${err.message}`;
      }
    },
  });
  const view = h(
    'div',
    { class: 'checks-view', id: 'checks-view' },
    h('div', { class: 'tab-bar' }, h('span', { class: 'muted small', text: 'As a receiving mail server would judge this message' }), rerun),
    show(auth, authSection, 'Authentication'),
    show(headers, headerSection, 'Bulk-sender requirements'),
    show(spam, spamSection, 'Spam score'),
    show(blocklists, blocklistSection, 'Blocklists'),
    show(html, htmlSection, 'HTML compatibility'),
    linkSection(m),
  );
  return view;
}
