// Sweeps (seed 001's dashboard flow): a "New sweep" form, live progress from the job's
// SSE stream, then the best results as a sortable table and a fast × slow heatmap of
// the score, with the grid's overfitting statistics beside it (DSR, PBO, a plain-language
// reading and the histogram of the CSCV logits); a click on a cell (or a row) backtests
// that combination synchronously and shows its equity curve against buy-and-hold.
// A universe sweep (issue 11: a saved universe instead of one ticker) shows its tickers
// table instead, sortable, best score first; a click on a ticker opens its heatmap.

import { api, vocabulary } from '../api.js';
import { lineChart, logitHistogram, markHeatmapCell, purge, scoreHeatmap } from '../charts.js';
import {
  badge, clear, duration, errorBox, formValues, h, infoBox, int, num, numberOrUndefined, pct, progressBar, show,
  signClass, sortableTable, when,
} from '../dom.js';
import { followJob } from '../stream.js';

const STRATEGIES = ['SMA', 'EMA', 'MACD'];
// The synchronous backtest's name of each sweep strategy type.
const BACKTEST_STRATEGY = { SMA: 'sma_crossover', EMA: 'ema_crossover', MACD: 'macd_crossover' };

export function countCombos(fmin, fmax, smin, smax, step) {
  if (![fmin, fmax, smin, smax, step].every(Number.isInteger) || step < 1) return 0;
  let n = 0;
  for (let f = fmin; f <= fmax; f += step) for (let s = smin; s <= smax; s += step) if (f < s) n += 1;
  return n;
}

const RESULT_COLUMNS = [
  { key: 'fast_period', label: 'Fast', num: true },
  { key: 'slow_period', label: 'Slow', num: true },
  { key: 'score', label: 'Score', num: true, format: (r) => num(r.score, 3), title: 'sharpe × (1 + max drawdown / 100)' },
  { key: 'sharpe_ratio', label: 'Sharpe', num: true, format: (r) => num(r.sharpe_ratio, 2) },
  { key: 'sortino_ratio', label: 'Sortino', num: true, format: (r) => num(r.sortino_ratio, 2) },
  { key: 'total_return_pct', label: 'Return %', num: true,
    format: (r) => h('span', { class: signClass(r.total_return_pct) }, num(r.total_return_pct, 1)) },
  { key: 'annualized_return', label: 'CAGR %', num: true, format: (r) => num(r.annualized_return, 1) },
  { key: 'max_drawdown_pct', label: 'Max DD %', num: true, format: (r) => num(r.max_drawdown_pct, 1) },
  { key: 'win_rate_pct', label: 'Win %', num: true, format: (r) => num(r.win_rate_pct, 1) },
  { key: 'profit_factor', label: 'PF', num: true, format: (r) => num(r.profit_factor, 2) },
  { key: 'total_trades', label: 'Trades', num: true },
  { key: 'trades_per_month', label: 'Trades/mo', num: true, format: (r) => num(r.trades_per_month, 1) },
  { key: 'avg_trade_duration', label: 'Avg trade', title: 'average trade duration', value: (r) => parseFloat(r.avg_trade_duration) },
];

// The overfitting statistics of a sweep run (`best`'s `overfitting`): the numbers, the
// reading the API gives in plain words, and the histogram of the logits of every split.
function overfittingPanel(o) {
  const panel = h('div', { class: 'overfitting', id: 'sweep-overfitting' }, h('h3', {}, 'Overfitting'));
  const chart = h('div', { class: 'chart small', id: 'sweep-logits' });
  const noDraw = { panel, draw: async () => {} };
  if (!o) {
    panel.append(h('p', { class: 'small muted' }, 'Not computed for this run (it was stored before the statistics existed).'));
    return noDraw;
  }
  if (o.reading) panel.append(h('p', { class: 'reading', id: 'sweep-overfitting-reading' }, o.reading));
  if (o.reason) panel.append(h('p', { class: 'small muted', id: 'sweep-overfitting-reason' }, o.reason));
  const splits = o.logits ? o.logits.length : null;
  const items = [
    ['Deflated Sharpe ratio (DSR)', num(o.deflated_sharpe_ratio, 3), 'dsr',
      'probability that the best row\'s true Sharpe ratio beats the best of N trials without skill (SR₀)'],
    ['Probability of backtest overfitting (PBO)', num(o.pbo, 3), 'pbo',
      'share of CSCV splits where the in-sample best fell to the bottom half out of sample'],
    ['Probabilistic Sharpe ratio (PSR)', num(o.probabilistic_sharpe_ratio, 3), 'psr', 'probability that the best row\'s true Sharpe ratio is above 0'],
    ['Expected max Sharpe SR₀ (per day)', num(o.expected_max_sharpe, 4), 'sr0', 'the best per-day Sharpe ratio N trials without skill would show'],
    ['Trials N', int(o.trials), 'trials', 'every combination of the grid, including those under min trades'],
    ['Daily returns T', int(o.days), 'days', 'daily returns of each trial'],
    ['CSCV blocks S / splits', `${o.pbo_blocks} / ${splits === null ? '—' : int(splits)}`, 'blocks', 'C(S, S/2) splits'],
  ];
  panel.append(h('dl', { class: 'stats' }, items.flatMap(([label, value, key, title]) => [
    h('dt', { title }, label), h('dd', { dataset: { stat: key } }, value)])));
  if (!o.logits || !o.logits.length) return noDraw;
  panel.append(h('div', { class: 'small muted' }, 'Logits λ of the splits: λ ≤ 0 (red) means the in-sample best was below the median out of sample.'), chart);
  return {
    panel,
    draw: async () => {
      try { await logitHistogram(chart, o.logits); } catch (err) { chart.replaceWith(errorBox(err)); }
    },
  };
}

const TICKER_COLUMNS = [
  { key: 'ticker', label: 'Ticker' },
  { key: 'status', label: 'Status', format: (t) => badge(t.status) },
  { key: 'best_score', label: 'Best score', num: true, format: (t) => num(t.best_score, 3) },
  { key: 'best_pair', label: 'Fast/slow', value: (t) => (t.best ? t.best.fast_period * 10000 + t.best.slow_period : null),
    format: (t) => (t.best ? `${t.best.fast_period}/${t.best.slow_period}` : '—') },
  { key: 'best_return', label: 'Return %', num: true, value: (t) => (t.best ? t.best.total_return_pct : null),
    format: (t) => (t.best ? h('span', { class: signClass(t.best.total_return_pct) }, num(t.best.total_return_pct, 1)) : '—') },
  { key: 'buy_and_hold_return_pct', label: 'Buy & hold %', num: true,
    format: (t) => h('span', { class: signClass(t.buy_and_hold_return_pct) }, num(t.buy_and_hold_return_pct, 1)) },
  { key: 'dsr', label: 'DSR', num: true, title: 'deflated Sharpe ratio of its own grid',
    value: (t) => (t.overfitting ? t.overfitting.deflated_sharpe_ratio : null),
    format: (t) => num(t.overfitting ? t.overfitting.deflated_sharpe_ratio : null, 3) },
  { key: 'error_message', label: 'Note', format: (t) => t.error_message || '' },
];

// What a sweep's parameters name: its ticker, or its universe (or list) of tickers.
function sweepTarget(p) {
  if (p.ticker) return p.ticker;
  if (p.universe) return `universe ${p.universe}`;
  return Array.isArray(p.tickers) ? `${p.tickers.length} tickers` : '?';
}

function numberInput(name, value, attrs = {}) {
  return h('input', { type: 'number', name, value: String(value), step: '1', required: true, ...attrs });
}

export async function render(root, { query, navigate }) {
  const closers = [];
  // The API's own default (seed 001: 50), so an omitted and a shown value agree.
  const minTradesDefault = (await vocabulary()).sweep.min_trades_default;
  const formMsg = h('div', { id: 'sweep-form-msg' });
  const tickerSelect = h('select', { name: 'ticker', id: 'sweep-ticker', required: true });
  const universeSelect = h('select', { name: 'universe', id: 'sweep-universe' }, h('option', { value: '' }, '— one ticker —'));
  const intervalSelect = h('select', { name: 'interval', id: 'sweep-interval' });
  const comboInfo = h('div', { class: 'small muted', id: 'sweep-combos' });

  const form = h('form', { class: 'grid', id: 'sweep-form', novalidate: true },
    h('label', { class: 'full' }, 'Ticker', tickerSelect),
    h('label', { class: 'full' }, 'Or every ticker of a universe', universeSelect),
    h('label', {}, 'Strategy', h('select', { name: 'strategy_type', id: 'sweep-strategy' },
      STRATEGIES.map((s) => h('option', { value: s }, s)))),
    h('label', {}, 'Interval', intervalSelect),
    h('fieldset', { class: 'full' }, h('legend', {}, 'Fast period: from – to'),
      h('div', { class: 'pair' }, numberInput('fast_min', 10, { min: 1, max: 500 }), '–', numberInput('fast_max', 20, { min: 1, max: 500 }))),
    h('fieldset', { class: 'full' }, h('legend', {}, 'Slow period: from – to'),
      h('div', { class: 'pair' }, numberInput('slow_min', 20, { min: 1, max: 500 }), '–', numberInput('slow_max', 30, { min: 1, max: 500 }))),
    h('label', {}, 'Step', numberInput('step', 5, { min: 1, max: 50 })),
    h('label', {}, 'Min trades', numberInput('min_trades', minTradesDefault, { min: 10, max: 1000 })),
    h('details', { class: 'full' }, h('summary', {}, 'Costs, direction, fill, webhook'),
      h('div', { class: 'grid', style: { display: 'grid', gridTemplateColumns: '1fr 1fr', gap: '.6rem .8rem', marginTop: '.5rem' } },
        h('label', {}, 'Commission % per side', h('input', { type: 'number', name: 'commission_pct', value: '0', step: 'any', min: 0 })),
        h('label', {}, 'Slippage % per side', h('input', { type: 'number', name: 'slippage_pct', value: '0', step: 'any', min: 0 })),
        h('label', {}, 'Direction', h('select', { name: 'direction' }, ['long', 'short', 'both'].map((d) => h('option', { value: d }, d)))),
        h('label', {}, 'Fill', h('select', { name: 'fill' }, h('option', { value: 'next_open' }, 'next bar open'), h('option', { value: 'close' }, 'signal bar close'))),
        h('label', {}, 'Initial cash', h('input', { type: 'number', name: 'initial_cash', value: '10000', step: 'any', min: 1 })),
        h('label', {}, 'Webhook URL (optional)', h('input', { type: 'url', name: 'webhook_url', placeholder: 'https://…' })))),
    h('div', { class: 'full' }, comboInfo),
    h('div', { class: 'full actions' }, h('button', { type: 'submit', id: 'sweep-start' }, 'Start sweep')),
    h('div', { class: 'full' }, formMsg));

  const progressCard = h('div', { class: 'card hidden', id: 'sweep-progress' });
  const resultsCard = h('div', { class: 'card hidden', id: 'sweep-results' });
  const equityCard = h('div', { class: 'card hidden', id: 'sweep-equity' });
  const recentCard = h('div', { class: 'card', id: 'sweep-recent' }, h('h2', {}, 'Recent sweeps'));
  const placeholder = h('div', { class: 'card muted', id: 'sweep-placeholder' },
    h('h2', {}, 'Results'),
    h('p', {}, 'Start a sweep: its progress shows here live, then the best combinations as a heatmap of the score ',
      '(fast × slow period) and a sortable table. A click on a cell backtests that combination and draws its equity ',
      'curve against buy-and-hold.'),
    h('p', { class: 'small' }, 'Score = Sharpe ratio × (1 + max drawdown / 100); see /docs.'));

  root.append(
    h('h1', {}, 'Parameter sweeps'),
    h('div', { class: 'split' },
      h('div', {}, h('div', { class: 'card' }, h('h2', {}, 'New sweep'), form), recentCard),
      h('div', {}, placeholder, progressCard, resultsCard, equityCard)));

  // ---- datasets -> ticker / interval choices
  let datasets = [];
  try {
    datasets = (await api('/api/v1/datasets')).datasets.filter((d) => d.kind !== 'option_chain');
  } catch (err) {
    show(formMsg, errorBox(err));
  }
  const tickers = [...new Set(datasets.map((d) => d.ticker))].sort();
  if (!tickers.length) {
    tickerSelect.append(h('option', { value: '' }, 'no datasets: import one first'));
    show(formMsg, infoBox('No datasets yet. Import a CSV on the Datasets page.'));
  }
  for (const t of tickers) tickerSelect.append(h('option', { value: t }, t));
  function fillIntervals() {
    clear(intervalSelect);
    intervalSelect.append(h('option', { value: '' }, 'finest available'));
    for (const d of datasets.filter((x) => x.ticker === tickerSelect.value)) {
      intervalSelect.append(h('option', { value: d.interval }, `${d.interval} (${int(d.bars)} bars)`));
    }
  }
  tickerSelect.addEventListener('change', fillIntervals);
  fillIntervals();
  try {
    for (const u of (await api('/api/v1/universes')).universes) {
      universeSelect.append(h('option', { value: u.name }, `${u.name} (${u.tickers.length} tickers)`));
    }
  } catch { /* no universes: the select keeps its one-ticker choice */ }

  function readForm() {
    const v = formValues(form);
    const ints = (k) => (v[k] === '' ? NaN : Number(v[k]));
    return {
      ...(v.universe ? { universe: v.universe } : { ticker: v.ticker }),
      strategy_type: v.strategy_type,
      interval: v.interval || undefined,
      fast_range: [ints('fast_min'), ints('fast_max')],
      slow_range: [ints('slow_min'), ints('slow_max')],
      step: ints('step'),
      min_trades: ints('min_trades'),
      commission_pct: numberOrUndefined(v.commission_pct),
      slippage_pct: numberOrUndefined(v.slippage_pct),
      direction: v.direction,
      fill: v.fill,
      initial_cash: numberOrUndefined(v.initial_cash),
      webhook_url: v.webhook_url || undefined,
    };
  }
  function updateCombos() {
    const b = readForm();
    const n = countCombos(b.fast_range[0], b.fast_range[1], b.slow_range[0], b.slow_range[1], b.step);
    comboInfo.textContent = n ? `${n} combinations (fast < slow)${b.universe ? ' per ticker' : ''}` : 'no valid combination (fast must be < slow)';
  }
  form.addEventListener('input', updateCombos);
  updateCombos();

  function setForm(p) {
    const set = (name, value) => { const el = form.elements.namedItem(name); if (el && value !== undefined && value !== null) el.value = String(value); };
    if (p.ticker && !tickers.includes(p.ticker)) tickerSelect.append(h('option', { value: p.ticker }, p.ticker));
    set('ticker', p.ticker);
    set('universe', p.universe || '');
    fillIntervals();
    set('interval', p.interval || '');
    set('strategy_type', p.strategy_type);
    if (Array.isArray(p.fast_range)) { set('fast_min', p.fast_range[0]); set('fast_max', p.fast_range[1]); }
    if (Array.isArray(p.slow_range)) { set('slow_min', p.slow_range[0]); set('slow_max', p.slow_range[1]); }
    for (const k of ['step', 'min_trades', 'commission_pct', 'slippage_pct', 'direction', 'fill', 'initial_cash']) set(k, p[k]);
    updateCombos();
  }

  // ---- following a job, then its results
  let follower = null;

  async function watch(jobId, params) {
    if (follower) follower.close();
    placeholder.remove();
    for (const c of [resultsCard, equityCard]) { c.classList.add('hidden'); clear(c); }
    clear(progressCard).classList.remove('hidden');
    const bar = progressBar();
    bar.id = 'sweep-progress-bar';
    const title = `${params.strategy_type || ''} sweep on ${sweepTarget(params)}`;
    progressCard.append(
      h('h2', {}, title),
      h('div', { class: 'small muted' }, 'Job ', h('code', { id: 'sweep-job-id' }, jobId)), bar,
      h('div', { class: 'actions', style: { marginTop: '.5rem' } },
        h('button', { class: 'danger small', id: 'sweep-cancel', onclick: async (ev) => {
          ev.target.disabled = true;
          try { await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`, { method: 'DELETE' }); } catch (err) { progressCard.append(errorBox(err)); }
        } }, 'Cancel')));
    follower = followJob(jobId, {
      onProgress: (p, message) => bar.set(p, message),
      onDone: async (data) => {
        bar.finish(true, 'Completed');
        show(formMsg, null); // "Queued N combinations." is over
        progressCard.querySelector('#sweep-cancel')?.remove();
        let runId = data.sweep_run_id;
        if (!runId) {
          try { runId = (await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`)).sweep_run_id; } catch { /* shown below */ }
        }
        await showResults(runId, params);
        loadRecent();
      },
      onError: (message) => {
        bar.finish(false, message);
        show(formMsg, null);
        progressCard.querySelector('#sweep-cancel')?.remove();
        progressCard.append(h('div', { class: 'error-box', id: 'sweep-error' }, message));
        loadRecent();
      },
    });
    closers.push(() => follower && follower.close());
  }

  // A universe sweep: its tickers, best score first; a click shows that ticker's results below.
  async function showUniverse(runId, params) {
    clear(resultsCard).classList.remove('hidden');
    if (!runId) { resultsCard.append(errorBox(new Error('The job completed without a sweep run id.'))); return; }
    let view;
    try {
      view = await api(`/api/v1/sweeps/${encodeURIComponent(runId)}/tickers`);
    } catch (err) { resultsCard.append(errorBox(err)); return; }
    const tickerBox = h('div', { id: 'sweep-ticker-results' });
    let picked = null;
    const table = sortableTable(TICKER_COLUMNS, view.tickers, {
      sort: { key: 'best_score', dir: 'desc' },
      onRowClick: (t) => {
        if (t.status !== 'completed') return;
        picked = t.ticker;
        table.setRows(view.tickers);
        for (const c of [equityCard]) { c.classList.add('hidden'); clear(c); }
        showResults(runId, { ...params, ticker: t.ticker }, tickerBox);
      },
      rowClass: (t) => (t.ticker === picked ? 'selected' : ''),
    });
    table.id = 'sweep-tickers-table';
    const failed = view.tickers.filter((t) => t.status === 'failed').length;
    resultsCard.append(
      h('h2', {}, `Tickers (${view.tickers.length})`),
      h('div', { class: 'small muted' }, 'Sweep run ', h('code', {}, view.sweep_run_id),
        view.universe ? ` · universe ${view.universe}` : '', failed ? ` · ${failed} failed` : '',
        ' · click a column to sort; click a ticker for its heatmap. Overfitting statistics are per ticker (DSR).'),
      table, tickerBox);
  }

  async function showResults(runId, params, card = resultsCard) {
    if (card === resultsCard && !params.ticker) { await showUniverse(runId, params); return; }
    clear(card).classList.remove('hidden');
    if (!runId) { card.append(errorBox(new Error('The job completed without a sweep run id.'))); return; }
    let best;
    try {
      best = await api(`/api/v1/sweeps/${encodeURIComponent(runId)}/best`, { query: { ticker: params.ticker, limit: 1000 } });
    } catch (err) { card.append(errorBox(err)); return; }
    const heat = h('div', { class: 'chart', id: 'sweep-heatmap' });
    const overfitting = overfittingPanel(best.overfitting);
    const excluded = best.excluded_below_min_trades || 0;
    card.append(
      h(card === resultsCard ? 'h2' : 'h3', {}, card === resultsCard ? 'Results' : `Results for ${params.ticker}`),
      h('div', { class: 'small muted' }, `Sweep run `, h('code', {}, best.sweep_run_id), ` · ${best.total_results} combinations with ≥ ${best.min_trades} trades`,
        excluded ? ` · ${excluded} below min trades (blank cells)` : '',
        best.returned < best.total_results ? ` · the heatmap and table show the best ${best.returned}` : ''),
      h('div', { class: 'beside' },
        h('div', {},
          h('h3', {}, 'Score by fast × slow period'),
          h('div', { class: 'small muted' }, 'Click a cell for that combination\'s equity curve against buy-and-hold.'),
          heat),
        overfitting.panel));
    await overfitting.draw();
    closers.push(() => purge(overfitting.panel.querySelector('#sweep-logits')));
    if (!best.results.length) {
      card.append(infoBox(`No combination reached ${best.min_trades} trades: lower "Min trades" or widen the ranges.`));
      heat.remove();
      return;
    }
    // A click previews the combination (nothing saved) and stays marked in the heatmap and the table.
    let picked = null;
    const pick = ({ fast, slow }) => {
      picked = { fast, slow };
      markHeatmapCell(heat, fast, slow).catch(() => {});
      table.setRows(best.results);
      return showEquity(fast, slow, params, best.results.find((r) => r.fast_period === fast && r.slow_period === slow));
    };
    try {
      await scoreHeatmap(heat, best.results, { onPick: pick });
    } catch (err) { heat.replaceWith(errorBox(err)); }
    closers.push(() => purge(heat));
    const table = sortableTable(RESULT_COLUMNS, best.results, {
      sort: { key: 'score', dir: 'desc' },
      onRowClick: (r) => pick({ fast: r.fast_period, slow: r.slow_period }),
      rowClass: (r) => (picked && r.fast_period === picked.fast && r.slow_period === picked.slow ? 'selected' : ''),
    });
    table.id = 'sweep-table';
    card.append(h('h3', {}, `Best results (${best.returned})`), h('div', { class: 'small muted' }, 'Click a column to sort; click a row for its equity curve.'), table);
  }

  async function showEquity(fast, slow, params, row) {
    clear(equityCard).classList.remove('hidden');
    const strategy = BACKTEST_STRATEGY[params.strategy_type] || 'sma_crossover';
    equityCard.append(h('h2', {}, `${params.strategy_type} ${fast}/${slow} on ${params.ticker}: equity vs buy-and-hold`));
    const status = h('div', { class: 'small muted' }, 'Running the backtest…');
    equityCard.append(status);
    equityCard.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    const request = {
      ticker: params.ticker, strategy, parameters: { fast_period: fast, slow_period: slow },
      interval: params.interval || undefined, cash: params.initial_cash, commission_pct: params.commission_pct,
      slippage_pct: params.slippage_pct, direction: params.direction, fill: params.fill,
    };
    let result;
    try {
      result = await api('/api/v1/runs/backtest/preview', { method: 'POST', json: request });
    } catch (err) {
      status.replaceWith(err.status === 404 && err.code === 'not_found' && /no such resource/.test(err.message)
        ? errorBox(new Error('Equity curves need the synchronous backtest endpoint (POST /api/v1/runs/backtest), which this gateway does not serve.'))
        : errorBox(err));
      return;
    }
    const m = result.metrics || {};
    const saved = h('span', { id: 'sweep-saved' });
    const saveButton = h('button', { type: 'button', class: 'small', id: 'sweep-save-run', onclick: async () => {
      saveButton.disabled = true;
      try {
        const run = await api('/api/v1/runs/backtest', { method: 'POST', json: request });
        saveButton.remove();
        saved.append('Saved as run ', h('a', { href: `/ui/runs/${run.id}`, 'data-link': true }, `#${run.id}`));
      } catch (err) { saveButton.disabled = false; saved.append(errorBox(err)); }
    } }, 'Save as run');
    equityCard.querySelector('h2').after(h('div', { class: 'actions' }, saveButton, saved));
    status.replaceWith(h('div', { class: 'small muted' },
      'Preview (not saved)',
      ` · return ${pct(m.total_return_pct, 1)} vs buy-and-hold ${pct(m.buy_and_hold_return_pct, 1)}`,
      ` · ${m.total_trades} trades · max drawdown ${pct(m.max_drawdown_pct, 1)}`,
      row && row.score !== undefined ? ` · sweep score ${num(row.score, 3)}` : ''));
    const chart = h('div', { class: 'chart', id: 'sweep-equity-chart' });
    equityCard.append(chart);
    const xs = result.equity_curve.map((p) => p.timestamp);
    try {
      await lineChart(chart, [
        { name: `${params.strategy_type} ${fast}/${slow}`, x: xs, y: result.equity_curve.map((p) => p.equity), color: '#2563eb' },
        { name: 'buy and hold', x: xs, y: result.equity_curve.map((p) => p.buy_and_hold), color: '#9ca3af', dash: 'dot' },
      ], { yTitle: 'equity' });
    } catch (err) { chart.replaceWith(errorBox(err)); }
    closers.push(() => purge(chart));
  }

  // ---- recent sweeps (jobs of kind trading-sweep)
  async function loadRecent() {
    const body = recentCard.querySelector('.body') || recentCard.appendChild(h('div', { class: 'body' }));
    try {
      const jobs = (await api('/api/v1/jobs', { query: { limit: 50 } })).jobs.filter((j) => j.kind === 'trading-sweep').slice(0, 8);
      const list = sortableTable([
        { key: 'ticker', label: 'Sweep', value: (j) => sweepTarget(j.parameters),
          format: (j) => h('a', { href: `/ui/sweeps?job=${encodeURIComponent(j.job_id)}`, 'data-link': true },
            `${j.parameters.strategy_type || ''} ${sweepTarget(j.parameters)}`) },
        { key: 'status', label: 'Status', format: (j) => badge(j.status) },
        // Three columns fit the 360 px card at laptop width; the run time is the time's tooltip.
        { key: 'created_at', label: 'Created', title: 'UTC',
          format: (j) => h('span', { title: `UTC; took ${duration(j.started_at, j.completed_at)}` }, when(j.created_at).slice(5, 16)) },
      ], jobs, {});
      clear(body).append(list);
    } catch (err) { show(body, errorBox(err)); }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(formMsg, null);
    const body = readForm();
    const button = form.querySelector('#sweep-start');
    button.disabled = true;
    try {
      const out = await api('/api/v1/strategy/sweep', { method: 'POST', json: body });
      history.replaceState({}, '', `/ui/sweeps?job=${encodeURIComponent(out.job_id)}`);
      show(formMsg, h('div', { class: 'ok-box' }, `Queued ${out.parameters.combinations} combinations.`));
      await watch(out.job_id, { ...body, ...out.parameters, interval: body.interval });
      loadRecent();
    } catch (err) {
      show(formMsg, errorBox(err));
    } finally {
      button.disabled = false;
    }
  });

  loadRecent();
  const jobId = query.get('job');
  if (jobId) {
    try {
      const job = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
      if (job.kind !== 'trading-sweep') {
        navigate(job.kind === 'day-backtest' ? `/ui/days?job=${encodeURIComponent(jobId)}` : '/ui/jobs', { replace: true });
        return () => {};
      }
      setForm(job.parameters);
      await watch(jobId, job.parameters);
    } catch (err) {
      clear(progressCard).classList.remove('hidden');
      progressCard.append(errorBox(err));
    }
  }
  return () => closers.forEach((c) => c());
}
