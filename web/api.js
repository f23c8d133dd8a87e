// REST API client: every URL is relative to `base`, the page's <base> (the --webroot) plus the
// mailbox prefix the page is under (/mailbox/NAME/), so the UI of a mailbox reads and changes
// only that mailbox, and its websocket hears only that mailbox's events.

const BOX_PATH = /^(.*\/)mailbox\/([^/]+)\/$/;

// The page is always served at the root of its prefix, so its own path names the mailbox. The
// server's <base> is the webroot, with the mailbox prefix or without it: both are accepted, and
// the <base> is then set to the prefixed address, so the page's relative links stay in it too.
function locate() {
  const served = new URL(document.baseURI);
  const m = BOX_PATH.exec(location.pathname);
  if (m && (served.pathname === location.pathname || served.pathname === m[1])) {
    let name = m[2];
    try {
      name = decodeURIComponent(name);
    } catch {
      /* a malformed escape: the server has answered this address, keep it as it is */
    }
    const root = new URL(m[1], served);
    const here = new URL(`mailbox/${m[2]}/`, root);
    const tag = document.querySelector('base');
    if (tag && tag.href !== here.href) tag.href = here.href;
    return { root, box: name, base: here };
  }
  return { root: served, box: null, base: served };
}

const where = locate();

/** The webroot: the un-prefixed UI, the default mailbox's. */
export const root = where.root;
/** The mailbox the URL names, or null for the un-prefixed UI (the default mailbox). */
export const box = where.box;
/** The address every API call, websocket and link of this page is relative to. */
export const base = where.base;
export const DEFAULT_BOX = 'default';

/** The UI's address for a mailbox: the webroot for the default one, else its prefix. */
export function boxUrl(name) {
  if (name === DEFAULT_BOX) return new URL('./', root).href;
  return new URL(`mailbox/${pathName(name)}/`, root).href;
}

// A name's @ and + are kept readable in the path (they need no escape there); the rest of what a
// name may hold (a-z 0-9 . _ -) never needs one, and anything else is escaped.
const pathName = (name) => encodeURIComponent(name).replace(/%40/g, '@').replace(/%2B/g, '+');

export function url(path, params) {
  const u = new URL(path, base);
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
    }
  }
  return u;
}

export class ApiError extends Error {
  constructor(status, text) {
    super(text || `HTTP ${status}`);
    this.status = status;
  }
}

async function request(method, path, { params, body, as = 'json', signal } = {}) {
  const init = { method, signal, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const resp = await fetch(url(path, params), init);
  if (!resp.ok) {
    const err = new ApiError(resp.status, (await resp.text()).trim());
    // Under a renamed mailbox's old address the server's 404 names the new one.
    err.renamedTo = resp.headers.get('X-Mailbox-Renamed-To');
    throw err;
  }
  if (as === 'json') return resp.json();
  return resp.text();
}

export const api = {
  webui: () => request('GET', 'api/v1/webui'),
  info: () => request('GET', 'api/v1/info'),
  chaos: () => request('GET', 'api/v1/chaos'),
  setChaos: (triggers) => request('PUT', 'api/v1/chaos', { body: triggers }),
  list: (query, start, limit, signal) =>
    query
      ? request('GET', 'api/v1/search', { params: { query, start, limit, tz: timezone() }, signal })
      : request('GET', 'api/v1/messages', { params: { start, limit }, signal }),
  message: (id) => request('GET', `api/v1/message/${encodeURIComponent(id)}`),
  headers: (id) => request('GET', `api/v1/message/${encodeURIComponent(id)}/headers`),
  raw: (id) => request('GET', `api/v1/message/${encodeURIComponent(id)}/raw`, { as: 'text' }),
  html: (id) => request('GET', `view/${encodeURIComponent(id)}.html`, { as: 'text' }),
  smtp: (id) => request('GET', `api/v1/message/${encodeURIComponent(id)}/smtp`),
  sessions: (start, limit) => request('GET', 'api/v1/sessions', { params: { start, limit } }),
  session: (id) => request('GET', `api/v1/session/${encodeURIComponent(id)}`),
  markRead: (ids, read) => request('PUT', 'api/v1/messages', { body: { IDs: ids, Read: read }, as: 'text' }),
  markAllRead: (query) => api.markAll(query, true),
  markAll: (query, read) =>
    request('PUT', 'api/v1/messages', {
      body: query ? { Search: query, Read: read, TZ: timezone() } : { Read: read },
      as: 'text',
    }),
  remove: (ids) => request('DELETE', 'api/v1/messages', { body: { IDs: ids }, as: 'text' }),
  removeAll: () => request('DELETE', 'api/v1/messages', { as: 'text' }),
  removeSearch: (query) =>
    request('DELETE', 'api/v1/search', { params: { query, tz: timezone() }, as: 'text' }),
  tags: () => request('GET', 'api/v1/tags'),
  setTags: (ids, tags) => request('PUT', 'api/v1/tags', { body: { IDs: ids, Tags: tags }, as: 'text' }),
  mailboxes: () => request('GET', 'api/v1/mailboxes'),
  createMailbox: (name) => request('POST', 'api/v1/mailboxes', { body: { Name: name }, as: 'text' }),
  renameMailbox: (name, to) =>
    request('PUT', `api/v1/mailboxes/${encodeURIComponent(name)}`, {
      body: { Name: to },
      as: 'text',
    }),
  emptyMailbox: (name) =>
    request('DELETE', `api/v1/mailboxes/${encodeURIComponent(name)}/messages`, { as: 'text' }),
  deleteMailbox: (name) =>
    request('DELETE', `api/v1/mailboxes/${encodeURIComponent(name)}`, { as: 'text' }),
  release: (id, to) =>
    request('POST', `api/v1/message/${encodeURIComponent(id)}/release`, { body: { To: to }, as: 'text' }),
};

export const partUrl = (id, partId) =>
  url(`api/v1/message/${encodeURIComponent(id)}/part/${encodeURIComponent(partId)}`).href;
export const partPrefix = (id) => url(`api/v1/message/${encodeURIComponent(id)}/part/`).href;
export const rawDownloadUrl = (id) =>
  url(`api/v1/message/${encodeURIComponent(id)}/raw`, { dl: 1 }).href;
export const eventsUrl = () => {
  const u = url('api/events');
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
};

function timezone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    return '';
  }
}
