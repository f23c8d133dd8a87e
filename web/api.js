// REST API client: every URL is relative to the page's <base>, so a --webroot prefix just works.

export const base = new URL(document.baseURI);

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
  if (!resp.ok) throw new ApiError(resp.status, (await resp.text()).trim());
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
