// Walk-forward optimization (issue 14): a form (a sweep and its windows), the job's progress
// fold by fold from its SSE stream, then the folds table, the in-sample vs out-of-sample
// returns of each fold as bars, and the stitched out-of-sample equity against buy-and-hold.
// A result is at /ui/walkforward?job=ID, so it can be reloaded and shared.

import { api } from '../api.js';
import { barChart, lineChart, purge } from '../charts.js';
import {
  clear, errorBox, formValues, h, infoBox, int, num, numberOrUndefined, progressBar, show, signClass, sortableTable,
} from '../dom.js';
import { followJob } from '../stream.js';

const OBJECTIVES = ['score', 'sharpe_ratio', 'sortino_ratio', 'total_return_pct', 'annualized_return', 'profit_factor',
  'win_rate_pct'];

const signed = (x, digits = 2) => h('span', { class: signClass(x) }, num(x, digits));

const FOLD_COLUMNS = [
  { key: 'fold', label: 'Fold', num: true, format: (f) => String(f.fold + 1) },
  { key: 'test_start_time', label: 'Test window', title: 'first and last day of the test window (train: the bars before it)',
    format: (f) => `${f.test_start_time.slice(0, 10)} → ${f.test_end_time.slice(0, 10)}` },
  { key: 'fast', label: 'Fast', num: true, value: (f) => f.parameters && f.parameters.fast_period,
    format: (f) => (f.parameters ? String(f.parameters.fast_period) : '—') },
  { key: 'slow', label: 'Slow', num: true, value: (f) => f.parameters && f.parameters.slow_period,
    format: (f) => (f.parameters ? String(f.parameters.slow_period) : '—') },
  { key: 'is_ret', label: 'IS return %', num: true, value: (f) => f.in_sample && f.in_sample.total_return_pct,
    format: (f) => (f.in_sample ? signed(f.in_sample.total_return_pct) : '—') },
  { key: 'oos_ret', label: 'OOS return %', num: true, value: (f) => f.out_of_sample && f.out_of_sample.total_return_pct,
    format: (f) => (f.out_of_sample ? signed(f.out_of_sample.total_return_pct) : '—') },
  { key: 'is_cagr', label: 'IS CAGR %', num: true, value: (f) => f.in_sample && f.in_sample.annualized_return,
    format: (f) => (f.in_sample ? num(f.in_sample.annualized_return, 1) : '—') },
  { key: 'oos_cagr', label: 'OOS CAGR %', num: true, value: (f) => f.out_of_sample && f.out_of_sample.annualized_return,
    format: (f) => (f.out_of_sample ? num(f.out_of_sample.annualized_return, 1) : '—') },
  { key: 'oos_sharpe', label: 'OOS Sharpe', num: true, value: (f) => f.out_of_sample && f.out_of_sample.sharpe_ratio,
    format: (f) => (f.out_of_sample ? num(f.out_of_sample.sharpe_ratio, 2) : '—') },
];

function numberInput(name, value, attrs = {}) {
  return h('input', { type: 'number', name, value: String(value), step: '1', required: true, ...attrs });
}

function summary(wf) {
  const m = (wf.stitched && wf.stitched.metrics) || {};
  const items = [
    ['Walk-forward efficiency', num(wf.walk_forward_efficiency, 3), 'efficiency', 'mean out-of-sample CAGR / mean in-sample CAGR'],
    ['Stitched OOS return %', num(m.total_return_pct, 2), 'return', 'the test windows compounded fold to fold'],
    ['Stitched OOS CAGR %', num(m.annualized_return, 2), 'cagr', ''],
    ['Stitched OOS Sharpe', num(m.sharpe_ratio, 2), 'sharpe', ''],
    ['Stitched OOS max DD %', num(m.max_drawdown_pct, 2), 'maxdd', 'over the test windows\' day ends'],
    ['OOS trades', int(m.total_trades), 'trades', ''],
  ];
  return h('dl', { class: 'stats wf', id: 'wf-summary' }, items.flatMap(([label, value, key, title]) => [
    h('dt', { title }, label), h('dd', { dataset: { stat: key } }, value)]));
}

async function showResult(card, jobId) {
  const wf = await api(`/api/v1/walkforward/${encodeURIComponent(jobId)}`);
  const bars = h('div', { class: 'chart', id: 'wf-bars' });
  const equity = h('div', { class: 'chart', id: 'wf-equity' });
  clear(card).append(
    h('h2', {}, `Walk-forward ${wf.ticker} · ${wf.strategy_type} · ${wf.folds_total} folds`),
    h('p', { class: 'small muted' }, `train ${int(wf.train_bars)} · test ${int(wf.test_bars)} · step ${int(wf.step_bars)} bars`,
      wf.anchored ? ' · anchored' : '', ` · chosen on ${wf.objective} with at least ${wf.min_trades} trades · job ${wf.job_id}`),
    summary(wf),
    h('h3', {}, 'Folds'),
    sortableTable(FOLD_COLUMNS, wf.folds, { sort: { key: 'fold', dir: 'asc' } }),
    h('h3', {}, 'In-sample vs out-of-sample return by fold'), bars,
    h('h3', {}, 'Stitched out-of-sample equity vs buy-and-hold'), equity);
  card.querySelector('table').id = 'wf-folds';
  const labels = wf.folds.map((f) => `fold ${f.fold + 1}`);
  try {
    await barChart(bars, labels, [
      { name: 'in sample', y: wf.folds.map((f) => (f.in_sample ? f.in_sample.total_return_pct : null)), color: '#94a3b8' },
      { name: 'out of sample', y: wf.folds.map((f) => (f.out_of_sample ? f.out_of_sample.total_return_pct : null)), color: '#2563eb' },
    ], { yTitle: 'return %' });
    if (wf.stitched) {
      const pts = wf.stitched.equity;
      await lineChart(equity, [
        { name: 'walk-forward (out of sample)', x: pts.map((p) => p.timestamp), y: pts.map((p) => p.equity), color: '#2563eb' },
        { name: 'buy and hold', x: pts.map((p) => p.timestamp), y: pts.map((p) => p.buy_and_hold), color: '#64748b', dash: 'dot' },
      ], { yTitle: 'equity' });
    } else {
      equity.replaceWith(infoBox(`${wf.folds_completed} of ${wf.folds_total} folds done; the stitched curve comes with the last.`));
    }
  } catch (err) {
    card.append(errorBox(err));
  }
  return [bars, equity];
}

export async function render(root, { query, navigate }) {
  const closers = [];
  const charts = [];
  const formMsg = h('div', { id: 'wf-form-msg' });
  const tickerSelect = h('select', { name: 'ticker', id: 'wf-ticker', required: true });
  const form = h('form', { class: 'grid', id: 'wf-form', novalidate: true },
    h('label', { class: 'full' }, 'Ticker', tickerSelect),
    h('label', {}, 'Strategy', h('select', { name: 'strategy_type' }, ['SMA', 'EMA', 'MACD'].map((s) => h('option', { value: s }, s)))),
    h('label', {}, 'Objective', h('select', { name: 'objective', id: 'wf-objective' }, OBJECTIVES.map((o) => h('option', { value: o }, o)))),
    h('fieldset', { class: 'full' }, h('legend', {}, 'Fast period: from – to'),
      h('div', { class: 'pair' }, numberInput('fast_min', 5, { min: 1, max: 500 }), '–', numberInput('fast_max', 20, { min: 1, max: 500 }))),
    h('fieldset', { class: 'full' }, h('legend', {}, 'Slow period: from – to'),
      h('div', { class: 'pair' }, numberInput('slow_min', 20, { min: 1, max: 500 }), '–', numberInput('slow_max', 60, { min: 1, max: 500 }))),
    h('label', {}, 'Step', numberInput('step', 5, { min: 1, max: 50 })),
    h('label', {}, 'Min trades', numberInput('min_trades', 10, { min: 10, max: 1000 })),
    h('label', {}, 'Train bars', numberInput('train_bars', 500, { min: 2, id: 'wf-train' })),
    h('label', {}, 'Test bars', numberInput('test_bars', 250, { min: 2, id: 'wf-test' })),
    h('label', {}, 'Step bars', numberInput('step_bars', 250, { min: 1, id: 'wf-step' })),
    h('label', {}, h('input', { type: 'checkbox', name: 'anchored', value: '1', id: 'wf-anchored' }), ' anchored (train from the first bar)'),
    h('div', { class: 'full actions' }, h('button', { type: 'submit', id: 'wf-start' }, 'Start walk-forward')),
    h('div', { class: 'full' }, formMsg));
  const progressCard = h('div', { class: 'card hidden', id: 'wf-progress' });
  const resultCard = h('div', { class: 'card', id: 'wf-result' }, h('h2', {}, 'Results'),
    h('p', { class: 'muted' }, 'Each fold chooses the sweep\'s best combination on its training window and runs it on the ',
      'test window after it. The folds table, in- vs out-of-sample returns and the stitched out-of-sample equity ',
      'against buy-and-hold show here. Definitions: /docs.'));
  root.append(h('h1', {}, 'Walk-forward optimization'),
    h('div', { class: 'split' }, h('div', {}, h('div', { class: 'card' }, h('h2', {}, 'New walk-forward'), form)),
      h('div', {}, progressCard, resultCard)));

  try {
    const tickers = [...new Set((await api('/api/v1/datasets')).datasets.map((d) => d.ticker))].sort();
    for (const t of tickers) tickerSelect.append(h('option', { value: t }, t));
    if (!tickers.length) show(formMsg, infoBox('No datasets yet: import bars on the Datasets page first.'));
  } catch (err) {
    show(formMsg, errorBox(err));
  }

  async function follow(jobId) {
    progressCard.classList.remove('hidden');
    const bar = progressBar();
    clear(progressCard).append(h('h2', {}, 'Progress'), bar);
    closers.push(followJob(jobId, {
      onProgress: (p, m) => bar.set(p, m),
      onDone: async () => {
        bar.finish(true, 'Completed');
        try { charts.push(...(await showResult(resultCard, jobId))); } catch (err) { show(resultCard, errorBox(err)); }
      },
      onError: (message) => bar.finish(false, message),
    }).close);
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const body = {
      sweep: {
        ticker: v.ticker, strategy_type: v.strategy_type, step: numberOrUndefined(v.step),
        fast_range: [numberOrUndefined(v.fast_min), numberOrUndefined(v.fast_max)],
        slow_range: [numberOrUndefined(v.slow_min), numberOrUndefined(v.slow_max)],
        min_trades: numberOrUndefined(v.min_trades),
      },
      train_bars: numberOrUndefined(v.train_bars), test_bars: numberOrUndefined(v.test_bars),
      step_bars: numberOrUndefined(v.step_bars), anchored: v.anchored === '1', objective: v.objective,
    };
    show(formMsg, null);
    try {
      const job = await api('/api/v1/walkforward', { method: 'POST', json: body });
      navigate(`/ui/walkforward?job=${encodeURIComponent(job.job_id)}`);
    } catch (err) {
      show(formMsg, errorBox(err));
    }
  });

  const jobId = query.get('job');
  if (jobId) await follow(jobId);

  return () => { for (const c of closers) c(); for (const el of charts) purge(el); };
}
