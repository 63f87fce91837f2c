// One saved run: metrics, parameters, equity curve against buy-and-hold, trades,
// CSV exports, and replay with overrides (a new run linked to this one).

import { api, vocabulary } from '../api.js';
import { lineChart, purge } from '../charts.js';
import { clear, errorBox, formValues, h, int, num, numberOrUndefined, pct, show, signClass, sortableTable, when } from '../dom.js';

/** A small CSV parser (quoted fields allowed) -> array of objects keyed by the header. */
export function parseCsv(text) {
  const rows = [];
  let row = [], cell = '', quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; } else if (c === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; } else if (c !== '\r') cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  const [head, ...body] = rows;
  return body.filter((r) => r.length === head.length).map((r) => Object.fromEntries(head.map((k, i) => [k, r[i]])));
}

const METRICS = [
  ['total_return_pct', 'Total return', (v) => pct(v, 2)],
  ['buy_and_hold_return_pct', 'Buy & hold', (v) => pct(v, 2)],
  ['annualized_return', 'CAGR', (v) => pct(v, 2)],
  ['sharpe_ratio', 'Sharpe', (v) => num(v, 2)],
  ['sortino_ratio', 'Sortino', (v) => num(v, 2)],
  ['max_drawdown_pct', 'Max drawdown', (v) => pct(v, 2)],
  ['win_rate_pct', 'Win rate', (v) => pct(v, 1)],
  ['profit_factor', 'Profit factor', (v) => num(v, 2)],
  ['total_trades', 'Trades', (v) => int(v)],
  ['trades_per_month', 'Trades / month', (v) => num(v, 2)],
  ['avg_trade_duration', 'Avg trade', (v) => v || '—'],
  ['score', 'Score', (v) => num(v, 3)],
  ['pnl', 'P&L', (v) => num(v, 2)],
  ['final_equity', 'Final equity', (v) => num(v, 2)],
];

export function metricCards(metrics) {
  const signed = new Set(['total_return_pct', 'annualized_return', 'pnl']);
  return h('div', { class: 'metrics' }, METRICS.map(([k, label, fmt]) => h('div', { class: 'metric', dataset: { metric: k } },
    h('div', { class: 'k' }, label), h('div', { class: `v ${signed.has(k) ? signClass(metrics[k]) : ''}` }, fmt(metrics[k])))));
}

export async function render(root, { params, navigate }) {
  const { intervals } = await vocabulary();
  const id = params[0];
  const closers = [];
  let run;
  try {
    run = await api(`/api/v1/runs/${id}`);
  } catch (err) {
    root.append(h('h1', {}, `Run #${id}`), errorBox(err), h('a', { href: '/ui/runs', 'data-link': true }, '‹ All runs'));
    return undefined;
  }
  const links = run.links || {};
  const title = `Run #${run.id}: ${run.strategy} on ${run.ticker}`;
  const extra = [];
  if (run.replay_of) extra.push(h('span', {}, 'replay of ', h('a', { href: `/ui/runs/${run.replay_of}`, 'data-link': true }, `#${run.replay_of}`)));
  if (run.sweep && run.sweep.job_id) extra.push(h('a', { href: `/ui/sweeps?job=${encodeURIComponent(run.sweep.job_id)}`, 'data-link': true }, 'sweep results'));
  if (run.kind === 'day_by_day' && run.job_id) extra.push(h('a', { href: `/ui/days?job=${encodeURIComponent(run.job_id)}`, 'data-link': true }, 'day-by-day calendar'));

  root.append(
    h('div', { class: 'actions' }, h('a', { href: '/ui/runs', 'data-link': true }, '‹ All runs')),
    h('h1', { id: 'run-title' }, title),
    h('div', { class: 'small muted', style: { marginBottom: '.6rem' } },
      `${run.kind} · ${run.interval || '?'} · ${run.start_date || '…'} → ${run.end_date || '…'} · created ${when(run.created_at)} UTC`,
      extra.map((e) => [' · ', e])),
    h('div', { class: 'card' }, h('h2', {}, 'Metrics'), metricCards(run.metrics || {})));

  const paramBox = h('dl', { class: 'kv' },
    Object.entries(run.parameters || {}).filter(([, v]) => typeof v !== 'object' || v === null).map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]),
    [['cash', run.cash], ['direction', run.direction], ['fill', run.fill], ['commission %', run.commission_pct], ['slippage %', run.slippage_pct],
      ['bars', run.bars], ['dataset', run.dataset ? `${run.dataset.dataset_id} v${run.dataset.version}` : null]]
      .filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));

  // ---- replay
  const replayMsg = h('div', { id: 'replay-msg' });
  // A day-by-day run replays its saved strategy as a new job: dates, cash, costs and user only.
  const dayByDay = run.kind === 'day_by_day';
  const replayForm = h('form', { class: 'grid', id: 'replay-form' },
    h('label', {}, 'Start date', h('input', { type: 'date', name: 'start_date', value: run.start_date || '' })),
    h('label', {}, 'End date', h('input', { type: 'date', name: 'end_date', value: run.end_date || '' })),
    dayByDay
      ? h('label', {}, 'User', h('input', { type: 'text', name: 'user_id', placeholder: (run.parameters && run.parameters.user_id) || 'none' }))
      : h('label', {}, 'Interval', h('select', { name: 'interval' }, ['', ...intervals].map((i) => h('option', { value: i }, i || `same (${run.interval})`)))),
    h('label', {}, 'Cash', h('input', { type: 'number', name: 'cash', step: 'any', placeholder: String(run.cash) })),
    h('label', {}, 'Commission %', h('input', { type: 'number', name: 'commission_pct', step: 'any', placeholder: String(run.commission_pct) })),
    h('label', {}, 'Slippage %', h('input', { type: 'number', name: 'slippage_pct', step: 'any', placeholder: String(run.slippage_pct) })),
    dayByDay ? null : h('label', { class: 'full' }, 'Parameters to change (JSON, merged into the run\'s)', h('textarea', { name: 'parameters', rows: 2, id: 'replay-parameters', placeholder: '{"fast_period": 12}' })),
    h('div', { class: 'full actions' }, h('button', { type: 'submit', id: 'replay-run', disabled: !run.replayable }, 'Replay'),
      run.replayable ? null : h('span', { class: 'small muted' }, 'This run keeps no backtest spec to replay.')),
    h('div', { class: 'full' }, replayMsg));
  replayForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(replayMsg, null);
    const v = formValues(replayForm);
    const body = {};
    if (v.start_date && v.start_date !== run.start_date) body.start_date = v.start_date;
    if (v.end_date && v.end_date !== run.end_date) body.end_date = v.end_date;
    if (v.interval) body.interval = v.interval;
    if (v.user_id) body.user_id = v.user_id;
    for (const k of ['cash', 'commission_pct', 'slippage_pct']) if (v[k] !== '') body[k] = numberOrUndefined(v[k]);
    if (v.parameters) {
      try { body.parameters = JSON.parse(v.parameters); } catch (err) { show(replayMsg, errorBox(new Error(`Parameters must be JSON: ${err.message}`))); return; }
    }
    const button = replayForm.querySelector('#replay-run');
    button.disabled = true;
    try {
      const out = await api(`/api/v1/runs/${run.id}/replay`, { method: 'POST', json: body });
      if (out.job_id) { // a day-by-day replay: a job that saves its run when it ends
        show(replayMsg, h('div', { class: 'ok-box' }, `Queued day-by-day job ${out.job_id}; its run appears in Runs when it ends. `,
          h('a', { href: '/ui/jobs', 'data-link': true }, 'Follow it in Jobs')));
        button.disabled = false;
        return;
      }
      navigate(`/ui/runs/${out.id}`);
    } catch (err) { show(replayMsg, errorBox(err)); button.disabled = false; }
  });

  root.append(h('div', { class: 'row' },
    h('div', { class: 'card grow' }, h('h2', {}, 'Parameters'), paramBox,
      h('div', { class: 'actions', style: { marginTop: '.6rem' } },
        links.trades_csv ? h('a', { href: links.trades_csv, download: true, id: 'run-trades-csv' }, 'trades.csv') : null,
        links.equity_csv ? h('a', { href: links.equity_csv, download: true, id: 'run-equity-csv' }, 'equity.csv') : null)),
    h('div', { class: 'card grow' }, h('h2', {}, 'Replay with overrides'), replayForm)));

  if (!links.equity_csv) return () => closers.forEach((c) => c());

  const chartCard = h('div', { class: 'card' }, h('h2', {}, 'Equity vs buy-and-hold'));
  const chart = h('div', { class: 'chart', id: 'run-equity-chart' });
  const tradesCard = h('div', { class: 'card' }, h('h2', {}, 'Trades'));
  chartCard.append(chart);
  root.append(chartCard, tradesCard);
  try {
    const points = parseCsv(await api(links.equity_csv, { text: true }));
    const x = points.map((p) => p.timestamp);
    await lineChart(chart, [
      { name: `run #${run.id}`, x, y: points.map((p) => Number(p.equity)), color: '#2563eb' },
      { name: 'buy and hold', x, y: points.map((p) => Number(p.buy_and_hold)), color: '#9ca3af', dash: 'dot' },
    ], { yTitle: 'equity' });
    closers.push(() => purge(chart));
  } catch (err) { chart.replaceWith(errorBox(err)); }
  try {
    const trades = parseCsv(await api(links.trades_csv, { text: true }));
    const numeric = (k) => (t) => Number(t[k]);
    tradesCard.append(h('div', { class: 'small muted' }, `${trades.length} trades`), sortableTable([
      { key: 'trade', label: '#', num: true, value: numeric('trade') },
      { key: 'side', label: 'Side' },
      { key: 'entry_time', label: 'Entry (UTC)', format: (t) => when(t.entry_time) },
      { key: 'entry_price', label: 'Entry', num: true, value: numeric('entry_price'), format: (t) => num(t.entry_price, 2) },
      { key: 'exit_time', label: 'Exit (UTC)', format: (t) => when(t.exit_time) },
      { key: 'exit_price', label: 'Exit', num: true, value: numeric('exit_price'), format: (t) => num(t.exit_price, 2) },
      { key: 'pnl', label: 'P&L', num: true, value: numeric('pnl'), format: (t) => h('span', { class: signClass(Number(t.pnl)) }, num(t.pnl, 2)) },
      { key: 'return_pct', label: 'Return %', num: true, value: numeric('return_pct'), format: (t) => num(t.return_pct, 2) },
      { key: 'exit_reason', label: 'Exit reason' },
    ], trades, { maxHeight: '360px' }));
  } catch (err) { tradesCard.append(errorBox(err)); }
  return () => closers.forEach((c) => c());
}
