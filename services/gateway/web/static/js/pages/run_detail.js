// One saved run: metrics, parameters, its report (equity against buy-and-hold, underwater
// curve and worst drawdowns, monthly returns, price and trades, rolling Sharpe, exposure,
// return distributions: one GET /api/v1/runs/{id}/report), a "Download report" link to the
// same as one HTML file, a Monte Carlo of the run (POST /api/v1/runs/{id}/montecarlo, on
// request), the trades, CSV exports, and replay with overrides.

import { api, vocabulary } from '../api.js';
import { loadPlotly, purge } from '../charts.js';
import { errorBox, formValues, h, infoBox, int, num, numberOrUndefined, pct, show, signClass, sortableTable, when } from '../dom.js';
import { drawdownTable, drawReport, monteCarloChart, monteCarloTable, rollingSharpeChart, setLogScale } from '../report_charts.js';

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

  if (!links.equity_csv) {
    // A sweep's run keeps its best combination's metrics only: its report comes with a replay.
    root.append(h('div', { class: 'card', id: 'run-no-report' }, h('h2', {}, 'Report'),
      infoBox(run.kind === 'sweep'
        ? 'A sweep keeps only its best combination\'s metrics, no equity curve or trades. Replay this run (above) for a run with the full report.'
        : 'This run keeps no equity curve or trades, so it has no report.')));
    return () => closers.forEach((c) => c());
  }

  // ---- the report: every chart from one GET /api/v1/runs/{id}/report (charts in report_charts.js,
  // shared with the downloadable report.html)
  const reportUrl = `/api/v1/runs/${run.id}/report`;
  const node = (id, cls = 'chart') => h('div', { class: cls, id });
  const charts = {
    equity: node('run-equity-chart'), underwater: node('run-underwater-chart', 'chart small'),
    calendar: node('run-calendar-chart'), price: node('run-price-chart'), rolling: node('run-rolling-chart', 'chart small'),
    exposure: node('run-exposure-chart', 'chart exposure'), trades: node('run-trade-returns-chart', 'chart small'),
    daily: node('run-daily-returns-chart', 'chart small'),
  };
  const logScale = h('input', { type: 'checkbox', id: 'run-log-scale' });
  const windowInput = h('input', { type: 'number', id: 'run-window', min: '2', max: '2520', step: '1', style: { width: '6rem' } });
  const windowMsg = h('span', { id: 'run-window-msg' });
  const drawdowns = h('div', { id: 'run-drawdowns' });
  const notes = h('div', { id: 'run-report-notes' });
  const exposureText = h('p', { id: 'run-exposure', class: 'small' });
  const calendarTitle = h('h2', {}, 'Monthly returns');
  const rollingTitle = h('h2', {}, 'Rolling Sharpe ratio');
  const tradesTitle = h('h2', {}, 'Trade returns');
  const dailyTitle = h('h2', {}, 'Daily returns');
  const download = h('a', { href: `${reportUrl}.html`, download: `run_${run.id}_report.html`, id: 'run-report-download', class: 'button' }, 'Download report');
  const card = (...children) => h('div', { class: 'card' }, ...children);
  root.append(
    h('div', { class: 'actions report-actions' }, download, h('span', { class: 'small muted' }, 'one HTML file with every chart: it opens offline')),
    notes,
    card(h('div', { class: 'card-head' }, h('h2', {}, 'Equity vs buy-and-hold'), h('label', { class: 'inline' }, logScale, 'log scale')), charts.equity),
    card(h('h2', {}, 'Underwater: drawdown below the running peak'), charts.underwater, h('h3', {}, 'Worst drawdowns'), drawdowns),
    card(calendarTitle, charts.calendar),
    card(h('h2', {}, 'Price and trades'), charts.price),
    h('div', { class: 'report-grid' },
      card(h('div', { class: 'card-head' }, rollingTitle, h('form', { class: 'inline', id: 'run-window-form' },
        h('label', { class: 'inline' }, 'window (days)', windowInput), h('button', { type: 'submit', class: 'small secondary' }, 'Apply'))),
      windowMsg, charts.rolling),
      card(h('h2', {}, 'Exposure'), exposureText, charts.exposure),
      card(tradesTitle, charts.trades),
      card(dailyTitle, charts.daily)));
  const mc = monteCarloCard(run, closers);
  root.append(mc.card);
  const tradesCard = h('div', { class: 'card' }, h('h2', {}, 'Trades'));
  root.append(tradesCard);

  let Plotly;
  try {
    const [report, P] = await Promise.all([api(reportUrl), loadPlotly()]);
    Plotly = P;
    closers.push(() => Object.values(charts).forEach((c) => purge(c)));
    calendarTitle.textContent = report.calendar === 'daily' ? 'Daily P&L (a run shorter than two months)' : 'Monthly returns (%), yearly in the last column';
    rollingTitle.textContent = `Rolling Sharpe ratio (${report.rolling_sharpe.window} days)`;
    tradesTitle.textContent = `Trade returns (${int(report.trades_total)} trades)`;
    dailyTitle.textContent = `Daily returns (${int(report.daily_returns.count)} days)`;
    windowInput.value = String(report.rolling_sharpe.window);
    exposureText.textContent = report.exposure_pct === null ? 'Not counted for this run: replay it.'
      : `${num(report.exposure_pct, 1)} % of bars in the market: ${num(report.exposure.long_pct, 1)} % long, ${num(report.exposure.short_pct, 1)} % short.`;
    if (report.notes.length) notes.append(...report.notes.map((n) => infoBox(n)));
    let bars = null;
    if (report.links.bars) {
      try { bars = (await api(report.links.bars, { query: { limit: 2000 } })).bars; } catch { bars = null; }
    }
    await drawReport(Plotly, charts, report, bars);
    drawdowns.replaceChildren(drawdownTable(document, report));
    logScale.addEventListener('change', () => setLogScale(Plotly, charts.equity, logScale.checked));
  } catch (err) {
    charts.equity.replaceWith(errorBox(err));
  }
  root.querySelector('#run-window-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(windowMsg, null);
    try {
      const again = await api(reportUrl, { query: { window: windowInput.value } });
      rollingTitle.textContent = `Rolling Sharpe ratio (${again.rolling_sharpe.window} days)`;
      charts.rolling.classList.remove('chart-empty');
      charts.rolling.replaceChildren();
      await rollingSharpeChart(Plotly || await loadPlotly(), charts.rolling, again);
    } catch (err) { show(windowMsg, errorBox(err)); }
  });
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

/** The Monte Carlo card: method, resamples, seed (and block length), Run; then the
 *  percentiles of total return and max drawdown and their histograms. Nothing is stored. */
function monteCarloCard(run, closers) {
  const method = h('select', { name: 'method', id: 'run-mc-method' },
    h('option', { value: 'trades' }, 'trades (resample the trades)'),
    h('option', { value: 'block_bootstrap' }, 'block bootstrap (blocks of daily returns)'));
  const blockLabel = h('label', {}, 'Block (days)', h('input', { type: 'number', name: 'block_days', id: 'run-mc-block', min: '1', step: '1', value: '20' }));
  const sync = () => { blockLabel.style.display = method.value === 'block_bootstrap' ? '' : 'none'; };
  method.addEventListener('change', sync);
  sync();
  const msg = h('div', { id: 'run-mc-msg' });
  const result = h('div', { id: 'run-mc-result' });
  const charts = { total_return_pct: h('div', { class: 'chart small', id: 'run-mc-return-chart' }),
    max_drawdown_pct: h('div', { class: 'chart small', id: 'run-mc-drawdown-chart' }) };
  const button = h('button', { type: 'submit', id: 'run-mc-run' }, 'Run');
  const form = h('form', { class: 'grid', id: 'run-mc-form' },
    h('label', {}, 'Method', method),
    h('label', {}, 'Resamples', h('input', { type: 'number', name: 'resamples', id: 'run-mc-resamples', min: '1', max: '10000', step: '1', value: '1000' })),
    h('label', {}, 'Seed', h('input', { type: 'number', name: 'seed', id: 'run-mc-seed', min: '0', step: '1', value: '1' })),
    blockLabel,
    h('div', { class: 'full actions' }, button,
      h('span', { class: 'small muted' }, 'Computed on request, not saved: the same seed gives the same numbers.')),
    h('div', { class: 'full' }, msg));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(msg, null);
    const v = formValues(form);
    const body = { method: v.method, resamples: numberOrUndefined(v.resamples), seed: numberOrUndefined(v.seed) };
    if (v.method === 'block_bootstrap') body.block_days = numberOrUndefined(v.block_days);
    button.disabled = true;
    try {
      const out = await api(`/api/v1/runs/${run.id}/montecarlo`, { method: 'POST', json: body });
      const Plotly = await loadPlotly();
      const what = out.method === 'trades' ? `${int(out.path_length)} trades a path` : `${int(out.path_length)} days a path in ${out.block_days}-day blocks`;
      result.replaceChildren(h('p', { class: 'small', id: 'run-mc-summary' }, `${int(out.resamples)} paths (${what}), seed ${out.seed}.`),
        monteCarloTable(document, out), h('div', { class: 'report-grid' }, charts.total_return_pct, charts.max_drawdown_pct),
        ...out.notes.map((n) => infoBox(n)));
      closers.push(() => Object.values(charts).forEach((c) => purge(c)));
      await monteCarloChart(Plotly, charts.total_return_pct, out, 'total_return_pct', 'total return');
      await monteCarloChart(Plotly, charts.max_drawdown_pct, out, 'max_drawdown_pct', 'max drawdown');
      result.dataset.runs = String(Number(result.dataset.runs || 0) + 1);
    } catch (err) { show(msg, errorBox(err)); }
    button.disabled = false;
  });
  const card = h('div', { class: 'card', id: 'run-mc' }, h('h2', {}, 'Monte Carlo'),
    h('p', { class: 'small muted' }, 'Other paths the same trades, or blocks of the same days, could have taken: percentiles of their total return and max drawdown.'),
    form, result);
  return { card };
}
