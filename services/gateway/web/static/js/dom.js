// Small DOM helpers: element building, number/date formatting, a sortable table,
// progress bars and message boxes.

import { describeError } from './api.js';

/** h('div', {class: 'x', onclick: fn}, 'text', child, [more]) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

export const DASH = '—';

export function num(x, digits = 2) {
  if (x === null || x === undefined || x === '' || Number.isNaN(Number(x))) return DASH;
  return Number(x).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
export function int(x) { return x === null || x === undefined ? DASH : Number(x).toLocaleString('en-US'); }
export function pct(x, digits = 2) { return x === null || x === undefined ? DASH : `${num(x, digits)} %`; }
export function signClass(x) { return x > 0 ? 'pos' : x < 0 ? 'neg' : ''; }

/** 2025-01-27T10:30:45Z -> "2025-01-27 10:30:45" (UTC, as the API writes it). */
export function when(iso) {
  if (!iso) return DASH;
  return String(iso).replace('T', ' ').replace(/(\.\d+)?Z$/, '').replace(/\+00:00$/, '');
}

export function duration(startIso, endIso) {
  if (!startIso || !endIso) return DASH;
  const s = (Date.parse(endIso) - Date.parse(startIso)) / 1000;
  if (!Number.isFinite(s)) return DASH;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function badge(status) { return h('span', { class: `badge ${status}` }, status); }

export function errorBox(err) { return h('div', { class: 'error-box', role: 'alert' }, describeError(err)); }
export function okBox(text) { return h('div', { class: 'ok-box' }, text); }
export function infoBox(text) { return h('div', { class: 'info-box' }, text); }

/** Put one message (error, ok, info) into a container, replacing what was there. */
export function show(container, node) { clear(container); if (node) container.appendChild(node); }

/** A progress bar: `.set(percent, message)`, `.finish(ok, message)`. */
export function progressBar() {
  const bar = h('div', { class: 'bar' });
  const label = h('div', { class: 'label' }, '0 %');
  const box = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, bar, label);
  const msg = h('div', { class: 'progress-msg' });
  const el = h('div', {}, box, msg);
  el.set = (percent, message) => {
    const p = Math.max(0, Math.min(100, Number(percent) || 0));
    bar.style.width = `${p}%`;
    label.textContent = `${p.toFixed(p % 1 ? 1 : 0)} %`;
    box.setAttribute('aria-valuenow', String(p));
    if (message) msg.textContent = message;
  };
  el.finish = (ok, message) => {
    box.classList.add(ok ? 'done' : 'failed');
    if (ok) el.set(100, message);
    else if (message) msg.textContent = message;
  };
  return el;
}

/**
 * A table sortable by clicking a header. columns: [{key, label, num, format(row) -> node|text,
 * value(row) -> sort value, title}]. Options: sort {key, dir}, onRowClick(row, tr), rowClass(row).
 * Returns the wrapper element; `.setRows(rows)` replaces the rows.
 */
export function sortableTable(columns, rows, { sort = null, onRowClick = null, rowClass = null, maxHeight = null } = {}) {
  let state = sort ? { ...sort } : null;
  let data = rows.slice();
  const thead = h('thead');
  const tbody = h('tbody');
  const table = h('table', {}, thead, tbody);
  const wrap = h('div', { class: 'table-wrap', style: maxHeight ? { maxHeight } : null }, table);

  const valueOf = (col, row) => (col.value ? col.value(row) : row[col.key]);
  function sorted() {
    if (!state) return data;
    const col = columns.find((c) => c.key === state.key);
    if (!col) return data;
    const dir = state.dir === 'asc' ? 1 : -1;
    return data.slice().sort((a, b) => {
      const va = valueOf(col, a), vb = valueOf(col, b);
      const na = va === null || va === undefined, nb = vb === null || vb === undefined;
      if (na || nb) return na === nb ? 0 : na ? 1 : -1; // nulls last either way
      if (typeof va === 'number' && typeof vb === 'number') return (va - vb) * dir;
      return String(va).localeCompare(String(vb), 'en', { numeric: true }) * dir;
    });
  }
  function renderHead() {
    clear(thead);
    thead.appendChild(h('tr', {}, columns.map((c) => {
      const cls = [c.num ? 'num' : '', c.sortable === false ? '' : 'sortable'];
      if (state && state.key === c.key) cls.push(state.dir === 'asc' ? 'sorted-asc' : 'sorted-desc');
      return h('th', {
        class: cls.join(' ').trim(), title: c.title || null, dataset: { key: c.key },
        onclick: c.sortable === false ? null : () => {
          state = state && state.key === c.key ? { key: c.key, dir: state.dir === 'asc' ? 'desc' : 'asc' }
            : { key: c.key, dir: c.num ? 'desc' : 'asc' };
          renderHead(); renderBody();
        },
      }, c.label);
    })));
  }
  function renderBody() {
    clear(tbody);
    const list = sorted();
    if (!list.length) {
      tbody.appendChild(h('tr', {}, h('td', { colspan: String(columns.length), class: 'muted' }, 'Nothing to show.')));
      return;
    }
    for (const row of list) {
      const tr = h('tr', { class: [onRowClick ? 'clickable' : '', rowClass ? rowClass(row) : ''].join(' ').trim() || null },
        columns.map((c) => {
          const out = c.format ? c.format(row) : row[c.key];
          return h('td', { class: [c.num ? 'num' : '', c.wrap ? 'wrap' : ''].join(' ').trim() || null }, out === null || out === undefined ? DASH : out);
        }));
      if (onRowClick) tr.addEventListener('click', (ev) => { if (!ev.target.closest('button, a, input')) onRowClick(row, tr); });
      tbody.appendChild(tr);
    }
  }
  wrap.setRows = (next) => { data = next.slice(); renderBody(); };
  wrap.table = table;
  renderHead();
  renderBody();
  return wrap;
}

/** Read a form's named fields as an object of trimmed strings. */
export function formValues(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) out[k] = typeof v === 'string' ? v.trim() : v;
  return out;
}

/** A number field value: '' -> undefined, otherwise Number (NaN left for the API to reject). */
export function numberOrUndefined(v) { return v === undefined || v === '' ? undefined : Number(v); }

export function field(label, input, extra = {}) {
  return h('label', extra, label, input);
}
