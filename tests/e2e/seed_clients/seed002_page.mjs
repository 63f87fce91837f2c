// A minimal "page" for seed 002's frontend code in Node (>= 18): the globals a browser page
// served by the gateway would give it, and nothing more.
//   - fetch: relative URLs resolve against the page's origin (argv[2]);
//   - EventSource: the WHATWG behaviour the seed relies on (named events, `id:` kept as
//     lastEventId and sent back as Last-Event-ID on reconnect, `retry:`, close(), a non-200
//     answer such as 204 ends it for good);
//   - in the distributed mode only, the API key (env HINDSIGHT_TEST_API_KEY) on every
//     request, as a logged-in browser carries its session cookie.
// Then it runs the seed's code unchanged, "clicks" a day once the seed has closed its
// EventSource (downloadDayDetails('2024-10-25'), the seed's own example date), and prints
// one last line: HARNESS {json} with every request the page made.
import { readFile } from 'node:fs/promises';

const ORIGIN = process.argv[2];
const SEED = process.argv[3];
const KEY = process.env.HINDSIGHT_TEST_API_KEY || '';
const requests = [];
const nativeFetch = globalThis.fetch;

function withKey(headers) {
  const h = new Headers(headers || {});
  if (KEY) h.set('X-API-Key', KEY);
  return h;
}

globalThis.fetch = async (input, init = {}) => {
  const url = new URL(String(input), ORIGIN).href;
  const resp = await nativeFetch(url, { ...init, headers: withKey(init.headers) });
  requests.push({ method: init.method || 'GET', url, status: resp.status,
                  contentType: resp.headers.get('content-type'),
                  disposition: resp.headers.get('content-disposition') });
  return resp;
};

const sources = [];

class EventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  constructor(url) {
    this.url = new URL(String(url), ORIGIN).href;
    this.readyState = EventSource.CONNECTING;
    this.lastEventId = '';
    this.retry = 1000;
    this.listeners = new Map();
    this.controller = null;
    this.closed = new Promise((resolve) => { this._resolveClosed = resolve; });
    sources.push(this);
    this._connect();
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  close() {
    this.readyState = EventSource.CLOSED;
    if (this.controller) this.controller.abort();
    this._resolveClosed();
  }

  _dispatch(type, init = {}) {
    const event = { type, target: this, ...init };
    for (const fn of this.listeners.get(type) || []) fn(event);
  }

  async _connect() {
    while (this.readyState !== EventSource.CLOSED) {
      this.controller = new AbortController();
      const headers = withKey({ Accept: 'text/event-stream', 'Cache-Control': 'no-cache' });
      if (this.lastEventId) headers.set('Last-Event-ID', this.lastEventId);
      let resp;
      try {
        resp = await nativeFetch(this.url, { headers, signal: this.controller.signal });
      } catch (err) {
        if (this.readyState === EventSource.CLOSED) return;
        this._dispatch('error');
        await new Promise((r) => setTimeout(r, this.retry));
        continue;
      }
      requests.push({ method: 'GET', url: this.url, status: resp.status, contentType: resp.headers.get('content-type'),
                      lastEventId: headers.get('Last-Event-ID') });
      if (resp.status !== 200 || !(resp.headers.get('content-type') || '').startsWith('text/event-stream')) {
        // "fail the connection": no reconnection.
        this.readyState = EventSource.CLOSED;
        this._dispatch('error');
        this._resolveClosed();
        return;
      }
      this.readyState = EventSource.OPEN;
      this._dispatch('open');
      try {
        await this._read(resp.body);
      } catch (err) {
        if (this.readyState === EventSource.CLOSED) return;
      }
      if (this.readyState === EventSource.CLOSED) return;
      // The server ended the stream: reconnect after `retry`, sending Last-Event-ID.
      this.readyState = EventSource.CONNECTING;
      this._dispatch('error');
      await new Promise((r) => setTimeout(r, this.retry));
    }
  }

  async _read(body) {
    const decoder = new TextDecoder();
    let buffer = '';
    let type = '';
    let data = [];
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      let m;
      while ((m = /\r\n|\r|\n/.exec(buffer)) !== null) {
        const line = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        if (line === '') {
          if (data.length) {
            this._dispatch(type || 'message', { data: data.join('\n'), lastEventId: this.lastEventId });
            if (this.readyState === EventSource.CLOSED) return;
          }
          type = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? '' : line.slice(i + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') type = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
        else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
      }
    }
  }
}

globalThis.EventSource = EventSource;

const seed = await readFile(SEED, 'utf8');
// The seed's code as a module of its own; one line appended hands its click handler to the page.
const source = `${seed}\nexport { downloadDayDetails };\n`;
const mod = await import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);
const timer = setTimeout(() => { console.log('HARNESS ' + JSON.stringify({ timeout: true, requests })); process.exit(3); }, 120000);
await Promise.all(sources.map((s) => s.closed));
await mod.downloadDayDetails('2024-10-25');
clearTimeout(timer);
console.log('HARNESS ' + JSON.stringify({ sources: sources.length, requests }));
