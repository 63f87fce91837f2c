// Jobs: every job of the tenant with its state and progress, filter by state, paging,
// cancel for queued and running ones. Refreshes itself while any job is active.

import { api } from '../api.js';
import { badge, clear, duration, errorBox, h, num, show, sortableTable, when } from '../dom.js';

const STATES = ['', 'queued', 'running', 'completed', 'failed', 'cancelled'];
const PAGE = 25;
const REFRESH_MS = 2000;

// Strategy names by id, for the day-by-day jobs (whose parameters keep only the id).
const strategyNames = new Map();

function describe(job) {
  const p = job.parameters || {};
  if (job.kind === 'trading-sweep') {
    return `${p.strategy_type || ''} ${p.ticker || ''} fast ${JSON.stringify(p.fast_range)} slow ${JSON.stringify(p.slow_range)} step ${p.step}`;
  }
  if (job.kind === 'day-backtest') {
    const name = strategyNames.get(p.strategy_id) || `strategy ${String(p.strategy_id || '').slice(0, 8)}…`;
    return `${name} ${p.start_date || ''} → ${p.end_date || ''}${p.user_id ? ` (user ${p.user_id})` : ''}`;
  }
  if (job.kind === 'walk-forward-optimization') {
    const sw = p.sweep || {};
    return `walk-forward ${sw.strategy_type || ''} ${sw.ticker || ''} train ${p.train_bars} test ${p.test_bars} step ${p.step_bars}${p.anchored ? ' anchored' : ''}`;
  }
  return job.kind;
}

function openLink(job) {
  if (job.kind === 'trading-sweep') return `/ui/sweeps?job=${encodeURIComponent(job.job_id)}`;
  if (job.kind === 'day-backtest') return `/ui/days?job=${encodeURIComponent(job.job_id)}`;
  if (job.kind === 'walk-forward-optimization') return `/ui/walkforward?job=${encodeURIComponent(job.job_id)}`;
  return null;
}

export async function render(root, { query }) {
  let status = query.get('status') || '';
  let offset = Math.max(0, Number(query.get('offset')) || 0);
  let timer = null;
  const msg = h('div');
  const tableBox = h('div');
  const pager = h('div', { class: 'pager' });
  const filter = h('select', { id: 'jobs-status' }, STATES.map((s) => h('option', { value: s }, s || 'all states')));
  filter.value = status;
  filter.addEventListener('change', () => { status = filter.value; offset = 0; syncUrl(); load(); });

  root.append(
    h('h1', {}, 'Jobs'),
    h('div', { class: 'card' },
      h('div', { class: 'actions', style: { marginBottom: '.6rem' } },
        h('label', { class: 'inline' }, 'State', filter),
        h('button', { class: 'secondary small', onclick: () => load() }, 'Refresh'),
        h('span', { class: 'small muted', id: 'jobs-total' })),
      msg, tableBox, pager));

  function syncUrl() {
    const q = new URLSearchParams();
    if (status) q.set('status', status);
    if (offset) q.set('offset', String(offset));
    history.replaceState({}, '', `/ui/jobs${q.toString() ? `?${q}` : ''}`);
  }

  async function cancel(job, button) {
    button.disabled = true;
    try {
      await api(`/api/v1/jobs/${encodeURIComponent(job.job_id)}`, { method: 'DELETE' });
      show(msg, h('div', { class: 'ok-box' }, `Cancelled ${job.job_id}.`));
    } catch (err) {
      show(msg, errorBox(err));
    }
    load();
  }

  const columns = [
    { key: 'job_id', label: 'Job', format: (j) => {
      const link = openLink(j);
      return link ? h('a', { href: link, 'data-link': true, class: 'mono' }, j.job_id) : h('span', { class: 'mono' }, j.job_id);
    } },
    { key: 'kind', label: 'Kind' },
    { key: 'what', label: 'What', wrap: true, value: describe, format: (j) => h('span', { class: 'small' }, describe(j)) },
    { key: 'status', label: 'State', format: (j) => badge(j.status) },
    { key: 'percent', label: 'Progress', num: true, value: (j) => j.progress.percent,
      format: (j) => (j.status === 'completed' ? '100 %' : `${num(j.progress.percent, 0)} %`) },
    { key: 'created_at', label: 'Created (UTC)', format: (j) => when(j.created_at) },
    { key: 'took', label: 'Took', sortable: false, format: (j) => duration(j.started_at, j.completed_at) },
    { key: 'error_message', label: 'Error', wrap: true, format: (j) => (j.error_message
      ? h('span', {}, h('span', { class: 'neg small' }, j.error_message), j.hint ? h('div', { class: 'small muted job-hint' }, j.hint) : '')
      : '') },
    { key: 'actions', label: '', sortable: false, format: (j) => (j.status === 'queued' || j.status === 'running'
      ? h('button', { class: 'danger small', dataset: { cancel: j.job_id }, onclick: (ev) => cancel(j, ev.target) }, 'Cancel') : '') },
  ];
  const table = sortableTable(columns, [], {});
  table.id = 'jobs-table';
  tableBox.append(table);

  async function load() {
    clearTimeout(timer);
    try {
      const out = await api('/api/v1/jobs', { query: { limit: PAGE, offset, status } });
      const unnamed = out.jobs.map((j) => (j.parameters || {}).strategy_id)
        .filter((id, i, all) => id && all.indexOf(id) === i && !strategyNames.has(id));
      if (unnamed.length) {
        try {
          const list = await api('/api/v1/strategies', { query: { limit: 1000 } });
          for (const st of list.strategies) strategyNames.set(st.strategy_id, st.name);
        } catch { /* the ids will do */ }
        // A deleted strategy keeps its id: asked once, not at every refresh.
        for (const id of unnamed) if (!strategyNames.has(id)) strategyNames.set(id, null);
      }
      table.setRows(out.jobs);
      root.querySelector('#jobs-total').textContent = `${out.total} job${out.total === 1 ? '' : 's'}`;
      clear(pager).append(
        h('button', { class: 'secondary small', disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); syncUrl(); load(); } }, '‹ Newer'),
        h('span', { class: 'small muted' }, out.total ? `${offset + 1}–${Math.min(offset + PAGE, out.total)} of ${out.total}` : ''),
        h('button', { class: 'secondary small', disabled: offset + PAGE >= out.total, onclick: () => { offset += PAGE; syncUrl(); load(); } }, 'Older ›'));
      if (out.jobs.some((j) => j.status === 'queued' || j.status === 'running')) timer = setTimeout(load, REFRESH_MS);
    } catch (err) {
      show(msg, errorBox(err));
    }
  }
  await load();
  return () => clearTimeout(timer);
}
