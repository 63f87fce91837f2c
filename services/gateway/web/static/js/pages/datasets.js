// Datasets: the tenant's datasets, CSV upload with a progress bar, a price chart of
// the selected one (GET /api/v1/datasets/{id}/bars, downsampled), delete.

import { api, uploadWithProgress, vocabulary } from '../api.js';
import { candleChart, lineChart, purge } from '../charts.js';
import { badge, clear, errorBox, h, int, okBox, progressBar, show, sortableTable, when } from '../dom.js';

const CHART_BARS = 1500;

export async function render(root, { query }) {
  const vocab = await vocabulary();
  const INTERVALS = [...vocab.intervals].reverse();
  const closers = [];
  const listMsg = h('div');
  const upMsg = h('div', { id: 'upload-msg' });
  const chartCard = h('div', { class: 'card hidden', id: 'dataset-chart-card' });
  const upProgress = h('div');

  const FORMAT_LABELS = { generic: 'generic (timestamp,open,high,low,close,volume; TradingView)', yahoo: 'Yahoo Finance',
    binance: 'Binance klines', metatrader: 'MetaTrader 4/5 export' };
  const form = h('form', { class: 'grid', id: 'upload-form' },
    h('label', { class: 'full' }, 'File (CSV; see README "Bring your own data")',
      h('input', { type: 'file', name: 'file', accept: '.csv,.txt,text/csv,text/plain', required: true, id: 'upload-file' })),
    h('label', {}, 'Format', h('select', { name: 'format', id: 'upload-format' },
      (vocab.dataset_formats || ['generic']).map((f) => h('option', { value: f }, FORMAT_LABELS[f] || f)))),
    h('label', {}, 'Columns (generic only, optional)', h('input', { name: 'columns', id: 'upload-columns', placeholder: 'timestamp:Date,close:Last' })),
    h('label', {}, 'Ticker', h('input', { name: 'ticker', required: true, placeholder: 'BTC-USD', maxlength: vocab.ticker.max_length, title: 'letters, digits or . _ ^ = / -', id: 'upload-ticker' })),
    h('label', {}, 'Interval', h('select', { name: 'interval', id: 'upload-interval' }, INTERVALS.map((i) => h('option', { value: i }, i)))),
    h('label', {}, 'Calendar', h('select', { name: 'calendar' },
      h('option', { value: 'continuous' }, 'continuous (24/7)'), h('option', { value: 'sessions' }, 'sessions (exchange hours)'))),
    h('label', {}, 'Timezone of naive times', h('input', { name: 'timezone', placeholder: 'UTC' })),
    h('div', { class: 'full actions' }, h('button', { type: 'submit', id: 'upload-submit' }, 'Upload')),
    h('div', { class: 'full' }, upProgress, upMsg));

  const table = sortableTable([
    { key: 'ticker', label: 'Ticker', format: (d) => [h('strong', {}, d.ticker), d.demo ? [' ', badge('demo')] : null] },
    { key: 'interval', label: 'Interval' },
    { key: 'bars', label: 'Bars', num: true, format: (d) => int(d.kind === 'option_chain' ? d.rows : d.bars) },
    { key: 'start', label: 'From (UTC)', format: (d) => when(d.start).slice(0, 16) },
    { key: 'end', label: 'To (UTC)', format: (d) => when(d.end).slice(0, 16) },
    { key: 'calendar', label: 'Calendar', format: (d) => (d.kind === 'option_chain'
      ? `chain of ${d.underlying}` : `${d.calendar} · ${d.timezone}`) },
    { key: 'version', label: 'Ver.', num: true },
    { key: 'actions', label: '', sortable: false, format: (d) => h('button', {
      class: 'danger small', dataset: { delete: d.dataset_id },
      onclick: async (ev) => {
        if (!window.confirm(`Delete ${d.ticker} ${d.interval} with all its versions?`)) return;
        ev.target.disabled = true;
        try {
          await api(`/api/v1/datasets/${encodeURIComponent(d.dataset_id)}`, { method: 'DELETE' });
          show(listMsg, okBox(`Deleted ${d.ticker} ${d.interval}.`));
        } catch (err) { show(listMsg, errorBox(err)); }
        load();
      } }, 'Delete') },
  ], [], { onRowClick: (d) => showChart(d), rowClass: (d) => (d.dataset_id === selected ? 'selected' : '') });
  table.id = 'datasets-table';
  let selected = query.get('dataset');

  root.append(
    h('h1', {}, 'Datasets'),
    h('div', { class: 'split' },
      h('div', { class: 'card' }, h('h2', {}, 'Import a CSV'), form,
        h('p', { class: 'small muted' }, 'Importing a ticker and interval that exist adds a new version; jobs use the latest.')),
      h('div', {},
        h('div', { class: 'card' }, h('h2', {}, 'Your datasets'), h('div', { class: 'small muted' }, 'Click a row for its price chart.'), listMsg, table),
        chartCard)));

  let datasets = [];
  async function load() {
    try {
      datasets = (await api('/api/v1/datasets')).datasets;
      table.setRows(datasets);
    } catch (err) { show(listMsg, errorBox(err)); }
  }

  async function showChart(d) {
    selected = d.dataset_id;
    table.setRows(datasets);
    history.replaceState({}, '', `/ui/datasets?dataset=${encodeURIComponent(d.dataset_id)}`);
    clear(chartCard).classList.remove('hidden');
    chartCard.append(h('h2', {}, `${d.ticker} · ${d.interval}`));
    if (d.kind === 'option_chain') {
      // A chain has no single price series: what it holds instead.
      chartCard.append(h('p', {}, `Option chain on ${d.underlying}: ${int(d.rows)} bars of ${int(d.contracts)} contracts over ${d.days} days; `
        + `expiries ${d.expiries[0]} … ${d.expiries[d.expiries.length - 1]} (${d.expiries.length}); strike step ${d.strike_steps.join(', ')}.`
        + (d.demo ? ' Synthetic (Black–Scholes), not market data.' : '')));
      if (d.demo) {
        chartCard.append(h('p', {}, h('a', { href: '/ui/days?demo=straddle', id: 'dataset-demo-straddle', 'data-link': true },
          'Run the demo straddle on it'), h('span', { class: 'small muted' }, ' (day by day, on the Day-by-day page)')));
      }
      return;
    }
    const note = h('div', { class: 'small muted' }, 'Loading bars…');
    const chart = h('div', { class: 'chart', id: 'dataset-chart' });
    chartCard.append(note, chart);
    try {
      const out = await api(`/api/v1/datasets/${encodeURIComponent(d.dataset_id)}/bars`, { query: { limit: CHART_BARS } });
      note.textContent = out.downsampled
        ? `${int(out.total_bars)} bars, merged into ${int(out.returned)} for the chart (each keeps its range's high and low). Times in UTC.`
        : `${int(out.total_bars)} bars. Times in UTC.`;
      if (out.bars.length > 400) {
        await lineChart(chart, [{ name: 'close', x: out.bars.map((b) => b.timestamp), y: out.bars.map((b) => b.close), color: '#2563eb' },
          { name: 'high', x: out.bars.map((b) => b.timestamp), y: out.bars.map((b) => b.high), color: '#86efac', dash: 'dot' },
          { name: 'low', x: out.bars.map((b) => b.timestamp), y: out.bars.map((b) => b.low), color: '#fca5a5', dash: 'dot' }],
        { yTitle: 'price' });
      } else {
        await candleChart(chart, out.bars, {});
      }
      closers.push(() => purge(chart));
    } catch (err) {
      note.replaceWith(errorBox(err));
      chart.remove();
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(upMsg, null);
    const data = new FormData(form);
    const file = data.get('file');
    if (!file || !file.size) { show(upMsg, errorBox(new Error('Choose a CSV file first.'))); return; }
    if (!data.get('timezone')) data.delete('timezone');
    if (!data.get('columns')) data.delete('columns');
    const bar = progressBar();
    bar.id = 'upload-progress';
    show(upProgress, bar);
    const button = form.querySelector('#upload-submit');
    button.disabled = true;
    try {
      const ds = await uploadWithProgress('/api/v1/datasets', data, (f) => bar.set(f * 100, f < 1 ? 'Uploading…' : 'Importing…'));
      bar.finish(true, 'Imported');
      const dropped = ds.rows_dropped ? ` ${int(ds.rows_dropped)} row${ds.rows_dropped === 1 ? '' : 's'} dropped.` : '';
      const notes = (ds.notes || []).length ? ` ${ds.notes.join(' ')}` : '';
      show(upMsg, okBox(`Imported ${ds.ticker} ${ds.interval} (${ds.format || 'generic'}): ${int(ds.bars)} bars, version ${ds.version}.${dropped}${notes}`));
      await load();
      showChart(ds);
    } catch (err) {
      bar.finish(false, 'Upload failed');
      show(upMsg, errorBox(err));
    } finally {
      button.disabled = false;
    }
  });

  await load();
  const pre = datasets.find((d) => d.dataset_id === selected);
  if (pre) showChart(pre);
  return () => closers.forEach((c) => c());
}
