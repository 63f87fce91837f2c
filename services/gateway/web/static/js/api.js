// Talking to the gateway: JSON in and out, errors as readable messages.
// Every request goes to this page's own origin (the gateway); credentials are the
// session cookie set by POST /api/v1/auth/login (or none: standalone on loopback).

export class ApiError extends Error {
  constructor(status, code, message, details = {}, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.retryAfter = retryAfter;
  }
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}${path.includes('?') ? '&' : '?'}${qs}` : path;
}

function errorFrom(status, body, headers) {
  const e = body && typeof body === 'object' ? body.error : null;
  if (e && typeof e === 'object') {
    return new ApiError(status, e.code || `http_${status}`, e.message || `HTTP ${status}`, e.details || {},
      headers.get('Retry-After'));
  }
  const text = typeof body === 'string' && body.trim() ? body.trim().slice(0, 300) : `the gateway answered HTTP ${status}`;
  return new ApiError(status, `http_${status}`, text, {}, headers.get('Retry-After'));
}

let unauthorizedHandler = null;
/** Called with the error when any request answers 401 (the app sends the user to the login page). */
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

/**
 * A request to the gateway. `json` sends a JSON body, `form` a FormData; `query` adds
 * query parameters (empty values left out). Resolves to the parsed JSON (or text with
 * `text: true`); rejects with an ApiError carrying the API's error message.
 */
/** The CSRF token the gateway keeps in the `hindsight_csrf` cookie next to the session (sent on writes). */
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)hindsight_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : '';
}

export async function api(path, { method = 'GET', json, form, query, signal, text = false } = {}) {
  const headers = { Accept: text ? '*/*' : 'application/json' };
  if (method !== 'GET' && csrfToken()) headers['X-CSRF-Token'] = csrfToken();
  const opts = { method, headers, credentials: 'same-origin', signal };
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(json);
  } else if (form !== undefined) {
    opts.body = form;
  }
  let resp;
  try {
    resp = await fetch(withQuery(path, query), opts);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'unreachable', 'The gateway did not answer. Is Hindsight running (make run)?');
  }
  const raw = await resp.text();
  let body = raw;
  if (!text || !resp.ok) {
    try { body = raw ? JSON.parse(raw) : null; } catch { body = raw; }
  }
  if (!resp.ok) {
    const err = errorFrom(resp.status, body, resp.headers);
    if (resp.status === 401 && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  return body;
}

/** Upload a FormData with XMLHttpRequest (fetch cannot report upload progress). */
export function uploadWithProgress(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Accept', 'application/json');
    if (csrfToken()) xhr.setRequestHeader('X-CSRF-Token', csrfToken());
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) onProgress(ev.loaded / ev.total); };
    xhr.onerror = () => reject(new ApiError(0, 'unreachable', 'The upload did not reach the gateway.'));
    xhr.onload = () => {
      let body = xhr.responseText;
      try { body = body ? JSON.parse(body) : null; } catch { /* keep text */ }
      if (xhr.status >= 200 && xhr.status < 300) { resolve(body); return; }
      const headers = { get: (n) => xhr.getResponseHeader(n) };
      const err = errorFrom(xhr.status, body, headers);
      if (xhr.status === 401 && unauthorizedHandler) unauthorizedHandler(err);
      reject(err);
    };
    xhr.send(form);
  });
}

/** A readable, multi-line description of an error (the API's message and each field problem). */
export function describeError(err) {
  if (!(err instanceof ApiError)) return String((err && err.message) || err);
  const lines = [err.message];
  const problems = err.details && Array.isArray(err.details.errors) ? err.details.errors : [];
  for (const p of problems) {
    const field = p.field ? `${String(p.field).replace(/^(body|query|path)\./, '')}: ` : '';
    const at = p.position !== undefined ? ` (at position ${p.position})` : '';
    if (p.message && !err.message.includes(p.message)) lines.push(`• ${field}${p.message}${at}`);
  }
  if (err.status === 503) lines.push(`A backend service is unavailable; retry in ${err.retryAfter || 'a few'} seconds.`);
  if (err.status === 401) lines.push('Log in with an API key to continue.');
  return lines.join('\n');
}

let vocabularyPromise = null;
/** The domain's vocabulary (intervals, ticker syntax, limits) from GET /api/v1/vocabulary, fetched once. */
export function vocabulary() {
  if (!vocabularyPromise) vocabularyPromise = api('/api/v1/vocabulary').catch((err) => { vocabularyPromise = null; throw err; });
  return vocabularyPromise;
}
