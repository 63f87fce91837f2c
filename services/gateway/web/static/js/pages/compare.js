// Runs side by side: equity curves overlaid on a common time axis, metrics and
// parameters in columns (GET /api/v1/runs/compare?ids=...).

import { api } from '../api.js';
import { lineChart, purge } from '../charts.js';
import { errorBox, h, num } from '../dom.js';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563', '#ca8a04'];
const BETTER_HIGH = new Set(['total_return_pct', 'annualized_return', 'sharpe_ratio', 'sortino_ratio', 'max_drawdown_pct',
  'win_rate_pct', 'profit_factor', 'score', 'final_equity', 'pnl']);

function cell(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : num(v, 3);
  if (typeof v === 'object') return JSON.stringify(v).slice(0, 80);
  return String(v);
}

export async function render(root, { query, navigate }) {
  const ids = (query.get('ids') || '').split(',').map((s) => s.trim()).filter(Boolean);
  root.append(h('div', { class: 'actions' }, h('a', { href: '/ui/runs', 'data-link': true }, '‹ All runs')),
    h('h1', {}, `Compare runs ${ids.map((i) => `#${i}`).join(', ')}`));
  if (ids.length < 2) {
    root.append(errorBox(new Error('Pick at least two runs on the Runs page to compare them.')));
    return undefined;
  }
  let cmp;
  try {
    cmp = await api('/api/v1/runs/compare', { query: { ids: ids.join(',') } });
  } catch (err) {
    root.append(errorBox(err));
    return undefined;
  }
  const label = (r) => `#${r.id} ${r.strategy} ${r.ticker}`;
  const chart = h('div', { class: 'chart', id: 'compare-chart' });
  const mode = h('select', { id: 'compare-mode' }, h('option', { value: 'equity' }, 'equity'), h('option', { value: 'pct' }, 'return % on initial cash'));
  async function draw() {
    const x = cmp.equity.timestamps;
    const series = cmp.equity.series.map((s, i) => {
      const run = cmp.runs[i];
      const y = mode.value === 'pct' ? s.equity.map((v) => (v === null ? null : (v / run.cash - 1) * 100)) : s.equity;
      return { name: label(run), x, y, color: COLORS[i % COLORS.length] };
    });
    await lineChart(chart, series, { yTitle: mode.value === 'pct' ? 'return %' : 'equity' });
  }
  mode.addEventListener('change', draw);
  root.append(h('div', { class: 'card' }, h('div', { class: 'actions' }, h('h2', { style: { margin: 0 } }, 'Equity curves'),
    h('label', { class: 'inline' }, 'Show', mode)), chart,
    h('div', { class: 'small muted' }, 'Runs without a stored curve (sweeps, day-by-day runs) have no line.')));
  try { await draw(); } catch (err) { chart.replaceWith(errorBox(err)); }

  const head = h('tr', {}, h('th', {}, ''), cmp.runs.map((r, i) => h('th', { class: 'num' },
    h('a', { href: `/ui/runs/${r.id}`, 'data-link': true, style: { color: COLORS[i % COLORS.length] } }, label(r)))));
  const rows = [];
  const section = (title) => rows.push(h('tr', {}, h('td', { colspan: String(cmp.runs.length + 1), class: 'muted small' }, h('strong', {}, title))));
  section('Metrics');
  for (const [name, values] of Object.entries(cmp.metrics)) {
    const nums = values.filter((v) => typeof v === 'number');
    const best = nums.length > 1 && BETTER_HIGH.has(name) ? Math.max(...nums) : null;
    rows.push(h('tr', {}, h('td', {}, name), values.map((v) => h('td', { class: `num${best !== null && v === best ? ' pos' : ''}` }, cell(v)))));
  }
  section('Parameters');
  for (const [name, values] of Object.entries(cmp.parameters)) {
    if (values.every((v) => v === null || typeof v === 'object')) continue;
    rows.push(h('tr', {}, h('td', {}, name), values.map((v) => h('td', { class: 'num' }, cell(v)))));
  }
  section('Setup');
  for (const key of ['kind', 'interval', 'start_date', 'end_date', 'cash', 'commission_pct', 'slippage_pct', 'direction', 'fill']) {
    rows.push(h('tr', {}, h('td', {}, key), cmp.runs.map((r) => h('td', { class: 'num' }, cell(r[key])))));
  }
  const table = h('div', { class: 'table-wrap', id: 'compare-table' }, h('table', {}, h('thead', {}, head), h('tbody', {}, rows)));
  root.append(h('div', { class: 'card' }, h('h2', {}, 'Side by side'), h('div', { class: 'small muted' }, 'Best value of each metric in green (higher is better; drawdowns are ≤ 0).'), table));
  void navigate;
  return () => purge(chart);
}
