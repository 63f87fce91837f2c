// Saved runs (seed 003): the table with filters and paging, a selection to compare,
// and a form for a new synchronous backtest.

import { api, vocabulary } from '../api.js';
import { clear, errorBox, formValues, h, num, numberOrUndefined, show, signClass, sortableTable, when } from '../dom.js';

const DEFAULT_PAGE = 20;
export const BUILTINS = {
  sma_crossover: { fast_period: 10, slow_period: 30 },
  ema_crossover: { fast_period: 12, slow_period: 26 },
  macd_crossover: { fast_period: 12, slow_period: 26, signal_period: 9 },
  rsi_reversion: { period: 14, oversold: 30, overbought: 70 },
  buy_and_hold: {},
};

export async function render(root, { query, navigate }) {
  const { intervals } = await vocabulary();
  const filters = { ticker: query.get('ticker') || '', strategy: query.get('strategy') || '', kind: query.get('kind') || '' };
  let offset = Math.max(0, Number(query.get('offset')) || 0);
  const PAGE = Math.min(1000, Math.max(1, Number(query.get('limit')) || DEFAULT_PAGE));
  const picked = new Set();
  const msg = h('div');
  const pager = h('div', { class: 'pager' });
  const compareBtn = h('button', { class: 'secondary', id: 'runs-compare', disabled: true, onclick: () => {
    navigate(`/ui/runs/compare?ids=${[...picked].join(',')}`);
  } }, 'Compare selected');

  const filterForm = h('form', { class: 'actions', id: 'runs-filters' },
    h('label', { class: 'inline' }, 'Ticker', h('input', { name: 'ticker', value: filters.ticker, size: 10 })),
    h('label', { class: 'inline' }, 'Strategy', h('input', { name: 'strategy', value: filters.strategy, size: 14 })),
    h('label', { class: 'inline' }, 'Kind', h('select', { name: 'kind' },
      ['', 'backtest', 'sweep', 'day_by_day'].map((k) => h('option', { value: k, selected: k === filters.kind }, k || 'all')))),
    h('button', { type: 'submit', class: 'secondary small' }, 'Filter'),
    compareBtn);
  filterForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    Object.assign(filters, formValues(filterForm));
    offset = 0;
    load();
  });

  const table = sortableTable([
    { key: 'pick', label: '', sortable: false, format: (r) => h('input', {
      type: 'checkbox', checked: picked.has(r.id), dataset: { run: String(r.id) }, title: 'select to compare',
      onchange: (ev) => {
        if (ev.target.checked) picked.add(r.id); else picked.delete(r.id);
        compareBtn.disabled = picked.size < 2;
        compareBtn.textContent = picked.size ? `Compare selected (${picked.size})` : 'Compare selected';
      },
    }) },
    { key: 'id', label: 'Run', num: true, format: (r) => h('a', { href: `/ui/runs/${r.id}`, 'data-link': true }, `#${r.id}`) },
    { key: 'kind', label: 'Kind' },
    { key: 'ticker', label: 'Ticker' },
    { key: 'strategy', label: 'Strategy' },
    { key: 'interval', label: 'Interval' },
    { key: 'dates', label: 'Period', value: (r) => r.start_date, format: (r) => `${r.start_date || '…'} → ${r.end_date || '…'}` },
    { key: 'return_pct', label: 'Return %', num: true, format: (r) => h('span', { class: signClass(r.return_pct) }, num(r.return_pct, 2)) },
    { key: 'pnl', label: 'P&L', num: true, format: (r) => h('span', { class: signClass(r.pnl) }, num(r.pnl, 2)) },
    { key: 'sharpe_ratio', label: 'Sharpe', num: true, format: (r) => num(r.sharpe_ratio, 2) },
    { key: 'total_trades', label: 'Trades', num: true },
    { key: 'replay_of', label: 'Replay of', format: (r) => (r.replay_of ? h('a', { href: `/ui/runs/${r.replay_of}`, 'data-link': true }, `#${r.replay_of}`) : '') },
    { key: 'created_at', label: 'Created (UTC)', format: (r) => when(r.created_at) },
  ], [], { onRowClick: (r) => navigate(`/ui/runs/${r.id}`) });
  table.id = 'runs-table';

  // ---- new backtest
  const btMsg = h('div', { id: 'backtest-msg' });
  const strategySelect = h('select', { name: 'strategy', id: 'bt-strategy' }, Object.keys(BUILTINS).map((s) => h('option', { value: s }, s)));
  const params = h('textarea', { name: 'parameters', rows: 3, id: 'bt-parameters' });
  const tickerSelect = h('select', { name: 'ticker', id: 'bt-ticker' });
  const syncParams = () => { params.value = JSON.stringify(BUILTINS[strategySelect.value]); };
  strategySelect.addEventListener('change', syncParams);
  syncParams();
  const btForm = h('form', { class: 'grid', id: 'backtest-form' },
    h('label', {}, 'Ticker', tickerSelect),
    h('label', {}, 'Strategy', strategySelect),
    h('label', { class: 'full' }, 'Parameters (JSON)', params),
    h('label', {}, 'Start date', h('input', { type: 'date', name: 'start_date' })),
    h('label', {}, 'End date', h('input', { type: 'date', name: 'end_date' })),
    h('label', {}, 'Cash', h('input', { type: 'number', name: 'cash', value: '10000', step: 'any' })),
    h('label', {}, 'Interval', h('select', { name: 'interval' }, ['', ...intervals].map((i) => h('option', { value: i }, i || 'dataset\'s')))),
    h('label', {}, 'Commission %', h('input', { type: 'number', name: 'commission_pct', value: '0', step: 'any' })),
    h('label', {}, 'Slippage %', h('input', { type: 'number', name: 'slippage_pct', value: '0', step: 'any' })),
    h('div', { class: 'full actions' }, h('button', { type: 'submit', id: 'bt-run' }, 'Run backtest')),
    h('div', { class: 'full' }, btMsg));
  btForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(btMsg, null);
    const v = formValues(btForm);
    let parameters;
    try { parameters = v.parameters ? JSON.parse(v.parameters) : {}; } catch (err) {
      show(btMsg, errorBox(new Error(`Parameters must be JSON: ${err.message}`))); return;
    }
    const button = btForm.querySelector('#bt-run');
    button.disabled = true;
    try {
      const run = await api('/api/v1/runs/backtest', { method: 'POST', json: {
        ticker: v.ticker, strategy: v.strategy, parameters, start_date: v.start_date || undefined, end_date: v.end_date || undefined,
        cash: numberOrUndefined(v.cash), interval: v.interval || undefined,
        commission_pct: numberOrUndefined(v.commission_pct), slippage_pct: numberOrUndefined(v.slippage_pct),
      } });
      navigate(`/ui/runs/${run.id}`);
    } catch (err) { show(btMsg, errorBox(err)); } finally { button.disabled = false; }
  });

  root.append(
    h('h1', {}, 'Runs'),
    h('div', { class: 'card' }, filterForm, h('div', { class: 'small muted', style: { margin: '.4rem 0' }, id: 'runs-total' }), msg, table, pager),
    h('details', { class: 'card', id: 'backtest-details', open: query.get('new') === '1' },
      h('summary', {}, 'New backtest (synchronous; saved as a run)'), h('div', { style: { marginTop: '.6rem', maxWidth: '640px' } }, btForm)));

  api('/api/v1/datasets').then((out) => {
    for (const t of [...new Set(out.datasets.filter((d) => d.kind !== 'option_chain').map((d) => d.ticker))].sort()) tickerSelect.append(h('option', { value: t }, t));
  }).catch((err) => show(btMsg, errorBox(err)));

  async function load() {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (offset) q.set('offset', String(offset));
    if (PAGE !== DEFAULT_PAGE) q.set('limit', String(PAGE));
    history.replaceState({}, '', `/ui/runs${q.toString() ? `?${q}` : ''}`);
    try {
      const out = await api('/api/v1/runs', { query: { ...filters, limit: PAGE, offset } });
      show(msg, null);
      table.setRows(out.runs);
      root.querySelector('#runs-total').textContent = `${out.total} run${out.total === 1 ? '' : 's'}${Object.values(filters).some(Boolean) ? ' matching' : ''}`;
      clear(pager).append(
        h('button', { class: 'secondary small', disabled: offset === 0, id: 'runs-prev', onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, '‹ Newer'),
        h('span', { class: 'small muted', id: 'runs-range' }, out.total ? `${Math.min(offset + 1, out.total)}–${Math.min(offset + PAGE, out.total)} of ${out.total}` : ''),
        h('button', { class: 'secondary small', disabled: offset + PAGE >= out.total, id: 'runs-next', onclick: () => { offset += PAGE; load(); } }, 'Older ›'));
    } catch (err) {
      show(msg, errorBox(err));
    }
  }
  await load();
}
