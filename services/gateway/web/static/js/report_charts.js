// The run report's charts and tables, drawn from one `GET /runs/{id}/report` answer.
// Shared by the dashboard's run page (an ES module import) and the self-contained
// report.html file (inlined by the gateway), so this file imports nothing: plotly.js is
// passed in, and tables are built with the plain DOM.

// No plotly logo link and no "Share chart..." button: a chart never sends its data anywhere.
export const CONFIG = {
  displaylogo: false,
  showSendToCloud: false,
  plotlyServerURL: '',
  responsive: true,
  modeBarButtonsToRemove: ['lasso2d', 'select2d', 'sendDataToCloud', 'sendChartToCloud'],
};

const GREEN = '#15803d';
const RED = '#b91c1c';
const BLUE = '#2563eb';
const GREY = '#9ca3af';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DIVERGING = [[0, RED], [0.25, '#f19a8f'], [0.5, '#f5f5f4'], [0.75, '#86d4a0'], [1, GREEN]];

function layout(extra = {}) {
  return {
    margin: { l: 60, r: 20, t: 16, b: 40 },
    font: { family: 'system-ui, -apple-system, Segoe UI, Roboto, sans-serif', size: 12, color: '#1b2430' },
    paper_bgcolor: '#fff',
    plot_bgcolor: '#fff',
    hovermode: 'closest',
    legend: { orientation: 'h', x: 0, y: 1.12 },
    ...extra,
  };
}

function fmt(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(Number(x))) return '—';
  return Number(x).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** "2024-01-02T09:30:00Z" -> "2024-01-02 09:30" (or the date alone at midnight). */
export function shortTime(iso) {
  if (!iso) return '—';
  const s = String(iso).replace('T', ' ').replace(/:00Z$|Z$/, '');
  return s.endsWith(' 00:00') ? s.slice(0, 10) : s;
}

function el(doc, tag, attrs = {}, ...children) {
  const node = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : doc.createTextNode(String(c)));
  return node;
}

/** A note in place of a chart that has nothing to draw. */
function empty(node, text) {
  node.replaceChildren(node.ownerDocument.createTextNode(text));
  node.classList.add('chart-empty');
}

/** Equity against buy-and-hold; `log` draws the y axis on a log scale. */
export async function equityChart(Plotly, node, report, { log = false } = {}) {
  const e = report.equity;
  if (!e.timestamps.length) { empty(node, 'No equity curve stored.'); return; }
  await Plotly.react(node, [
    { type: 'scatter', mode: 'lines', name: `run #${report.run_id}`, x: e.timestamps, y: e.equity, line: { width: 1.6, color: BLUE } },
    { type: 'scatter', mode: 'lines', name: 'buy and hold', x: e.timestamps, y: e.buy_and_hold, line: { width: 1.4, color: GREY, dash: 'dot' } },
  ], layout({ xaxis: { type: 'date' }, yaxis: { title: { text: 'equity' }, type: log ? 'log' : 'linear' }, hovermode: 'x unified' }), CONFIG);
}

export function setLogScale(Plotly, node, log) {
  return Plotly.relayout(node, { 'yaxis.type': log ? 'log' : 'linear' });
}

/** The underwater curve: % below the running peak, with the worst drawdowns shaded. */
export async function underwaterChart(Plotly, node, report) {
  const e = report.equity;
  if (!e.timestamps.length) { empty(node, 'No equity curve stored.'); return; }
  const shapes = report.drawdowns.map((d, i) => ({
    type: 'rect', xref: 'x', yref: 'paper', x0: d.start, x1: d.recovery || e.timestamps[e.timestamps.length - 1], y0: 0, y1: 1,
    fillcolor: i === 0 ? 'rgba(185, 28, 28, 0.12)' : 'rgba(185, 28, 28, 0.06)', line: { width: 0 }, layer: 'below',
  }));
  await Plotly.react(node, [{
    type: 'scatter', mode: 'lines', name: 'drawdown', x: e.timestamps, y: e.drawdown_pct, fill: 'tozeroy',
    line: { width: 1.2, color: RED }, fillcolor: 'rgba(185, 28, 28, 0.25)', hovertemplate: '%{y:.2f} %<extra>%{x}</extra>',
  }], layout({ xaxis: { type: 'date' }, yaxis: { title: { text: '% below peak' }, ticksuffix: ' %' }, shapes, showlegend: false }), CONFIG);
}

/** The worst drawdowns as a table. */
export function drawdownTable(doc, report) {
  const head = el(doc, 'tr', {}, ...['#', 'Start (peak)', 'Trough', 'Recovery', 'Depth', 'Length'].map((t) => el(doc, 'th', {}, t)));
  const rows = report.drawdowns.map((d, i) => el(doc, 'tr', {},
    el(doc, 'td', { class: 'num' }, i + 1), el(doc, 'td', {}, shortTime(d.start)), el(doc, 'td', {}, shortTime(d.trough)),
    el(doc, 'td', {}, d.recovery ? shortTime(d.recovery) : 'not recovered'),
    el(doc, 'td', { class: 'num neg' }, `${fmt(d.depth_pct)} %`), el(doc, 'td', { class: 'num' }, `${fmt(d.length_days, 1)} days`)));
  if (!rows.length) rows.push(el(doc, 'tr', {}, el(doc, 'td', { colspan: '6' }, 'The equity never fell below its peak.')));
  return el(doc, 'table', { class: 'drawdowns', id: 'report-drawdowns' }, el(doc, 'thead', {}, head), el(doc, 'tbody', {}, ...rows));
}

/** Years x months heatmap of monthly returns, yearly totals in the last column; or, for a
 *  run shorter than two months, each day's P&L as bars. */
export async function calendarChart(Plotly, node, report) {
  if (report.calendar === 'daily') {
    const d = report.daily_pnl || [];
    if (!d.length) { empty(node, 'No days.'); return; }
    await Plotly.react(node, [{
      type: 'bar', name: 'daily P&L', x: d.map((p) => p.date), y: d.map((p) => p.pnl),
      marker: { color: d.map((p) => (p.pnl > 0 ? GREEN : p.pnl < 0 ? RED : GREY)) },
      customdata: d.map((p) => p.return_pct), hovertemplate: 'P&L %{y:,.2f} (%{customdata:.2f} %)<extra>%{x}</extra>',
    }], layout({ xaxis: { type: 'date' }, yaxis: { title: { text: 'P&L' } }, showlegend: false }), CONFIG);
    return;
  }
  const months = report.monthly_returns;
  if (!months.length) { empty(node, 'No months.'); return; }
  const years = [...new Set(months.map((m) => m.year))].sort((a, b) => a - b);
  const cols = [...MONTHS, 'Year'];
  const z = years.map(() => cols.map(() => null));
  for (const m of months) z[years.indexOf(m.year)][m.month - 1] = m.return_pct;
  for (const y of report.yearly_returns) z[years.indexOf(y.year)][12] = y.return_pct;
  const values = z.flat().filter((v) => v !== null);
  const amp = Math.max(...values.map(Math.abs), 0.01);
  const height = Math.max(180, 60 + 28 * years.length);
  node.style.height = `${height}px`;
  await Plotly.react(node, [{
    type: 'heatmap', x: cols, y: years.map(String), z, zmid: 0, zmin: -amp, zmax: amp, colorscale: DIVERGING, xgap: 2, ygap: 2,
    texttemplate: '%{z:.1f}', hovertemplate: '%{y} %{x}: %{z:.2f} %<extra></extra>', colorbar: { ticksuffix: ' %', thickness: 12 },
  }], layout({ xaxis: { type: 'category', side: 'top' }, yaxis: { type: 'category', autorange: 'reversed' },
    margin: { l: 50, r: 20, t: 30, b: 10 }, height }), CONFIG);
}

/** The rolling Sharpe ratio over the report's window. */
export async function rollingSharpeChart(Plotly, node, report) {
  const r = report.rolling_sharpe;
  if (!r.points.length) { empty(node, `Fewer than ${r.window} days: no ${r.window}-day window.`); return; }
  await Plotly.react(node, [{
    type: 'scatter', mode: 'lines', name: `${r.window}-day Sharpe`, x: r.points.map((p) => p[0]), y: r.points.map((p) => p[1]),
    line: { width: 1.5, color: BLUE }, connectgaps: false, hovertemplate: '%{y:.2f}<extra>%{x}</extra>',
  }], layout({ xaxis: { type: 'date' }, yaxis: { title: { text: `Sharpe (${r.window} days)` }, zeroline: true }, showlegend: false }), CONFIG);
}

/** Histograms: every trade's return, and the daily returns. */
export async function tradeReturnsChart(Plotly, node, report) {
  const v = report.trade_returns_pct.filter((x) => x !== null);
  if (!v.length) { empty(node, 'No trades.'); return; }
  await Plotly.react(node, [{ type: 'histogram', x: v, nbinsx: 40, marker: { color: BLUE, line: { color: '#fff', width: 0.5 } },
    hovertemplate: '%{x} %: %{y} trades<extra></extra>' }],
  layout({ xaxis: { title: { text: 'trade return' }, ticksuffix: ' %' }, yaxis: { title: { text: 'trades' } }, bargap: 0.02, showlegend: false }), CONFIG);
}

export async function dailyReturnsChart(Plotly, node, report) {
  const d = report.daily_returns;
  if (!d.count) { empty(node, 'No days.'); return; }
  const edges = d.histogram.edges_pct;
  const mids = d.histogram.counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
  await Plotly.react(node, [{ type: 'bar', x: mids, y: d.histogram.counts, width: edges[1] - edges[0],
    // A bin is green above zero, red below, grey when it holds zero (the flat days).
    marker: { color: mids.map((_, i) => (edges[i] >= 0 ? GREEN : edges[i + 1] <= 0 ? RED : GREY)), line: { color: '#fff', width: 0.5 } },
    hovertemplate: '%{x:.2f} %: %{y} days<extra></extra>' }],
  layout({ xaxis: { title: { text: 'daily return' }, ticksuffix: ' %' }, yaxis: { title: { text: 'days' } }, bargap: 0, showlegend: false }), CONFIG);
}

/** Exposure: the share of bars long, short and flat. */
export async function exposureChart(Plotly, node, report) {
  const x = report.exposure;
  if (report.exposure_pct === null) { empty(node, 'Exposure not counted for this run (replay it).'); return; }
  const flat = Math.max(0, 100 - report.exposure_pct);
  const bar = (name, value, color) => ({ type: 'bar', orientation: 'h', name, y: ['bars'], x: [value], marker: { color },
    hovertemplate: `${name}: %{x:.1f} %<extra></extra>` });
  await Plotly.react(node, [bar('long', x.long_pct, GREEN), bar('short', x.short_pct, RED), bar('flat', flat, '#d1d5db')],
    layout({ barmode: 'stack', height: 140, margin: { l: 40, r: 20, t: 30, b: 30 }, xaxis: { range: [0, Math.max(100, x.long_pct + x.short_pct + flat)], ticksuffix: ' %' },
      yaxis: { showticklabels: false } }), CONFIG);
}

/** Price (candles, or the close when there are many bars) with each trade's entry and exit. */
export async function priceChart(Plotly, node, report, bars) {
  if (!bars || !bars.length) { empty(node, 'The price of this run is not available (its dataset is gone).'); return; }
  const x = bars.map((b) => b.timestamp);
  const traces = [bars.length > 600
    ? { type: 'scatter', mode: 'lines', name: 'close', x, y: bars.map((b) => b.close), line: { width: 1, color: '#475569' } }
    : { type: 'candlestick', name: 'price', x, open: bars.map((b) => b.open), high: bars.map((b) => b.high),
      low: bars.map((b) => b.low), close: bars.map((b) => b.close), increasing: { line: { color: GREEN } }, decreasing: { line: { color: RED } } }];
  const marks = (name, list, key, symbol, color) => ({
    type: 'scatter', mode: 'markers', name, x: list.map((t) => t[`${key}_time`]), y: list.map((t) => t[`${key}_price`]),
    marker: { symbol, size: 8, color, line: { width: 1, color: '#fff' } },
    customdata: list.map((t) => t.return_pct), hovertemplate: `${name} %{y:,.4f}<br>trade %{customdata:.2f} %<extra>%{x}</extra>`,
  });
  const longs = report.trades.filter((t) => t.side === 'long');
  const shorts = report.trades.filter((t) => t.side !== 'long');
  if (longs.length) traces.push(marks('long entry', longs, 'entry', 'triangle-up', GREEN));
  if (shorts.length) traces.push(marks('short entry', shorts, 'entry', 'triangle-down', RED));
  if (report.trades.length) traces.push(marks('exit', report.trades, 'exit', 'x-thin-open', '#111827'));
  await Plotly.react(node, traces, layout({ xaxis: { type: 'date', rangeslider: { visible: false } }, yaxis: { title: { text: 'price' } } }), CONFIG);
}

/** Every chart of the report into `nodes` ({equity, underwater, calendar, rolling, trades, daily, exposure, price}). */
export async function drawReport(Plotly, nodes, report, bars) {
  const jobs = [
    ['equity', equityChart], ['underwater', underwaterChart], ['calendar', calendarChart], ['rolling', rollingSharpeChart],
    ['trades', tradeReturnsChart], ['daily', dailyReturnsChart], ['exposure', exposureChart],
  ];
  for (const [key, draw] of jobs) if (nodes[key]) await draw(Plotly, nodes[key], report);
  if (nodes.price) await priceChart(Plotly, nodes.price, report, bars);
}

// ---- a run's Monte Carlo (POST /runs/{id}/montecarlo): drawn on the run page only

export const MC_FIGURES = [['total_return_pct', 'Total return'], ['max_drawdown_pct', 'Max drawdown']];
export const MC_PERCENTILES = ['p5', 'p25', 'p50', 'p75', 'p95'];

/** The percentiles of both figures as a table; each cell keeps the API's exact value in data-value. */
export function monteCarloTable(doc, mc) {
  const heads = ['', '5th', '25th', 'median', '75th', '95th', 'this run'];
  const cell = (figure, key, value) => {
    const td = el(doc, 'td', { class: 'num', 'data-figure': figure, 'data-key': key }, `${fmt(value)} %`);
    if (value !== null && value !== undefined) td.dataset.value = String(value);
    return td;
  };
  const rows = MC_FIGURES.map(([figure, label]) => el(doc, 'tr', {}, el(doc, 'th', {}, label),
    ...MC_PERCENTILES.map((p) => cell(figure, p, mc[figure].percentiles[p])), cell(figure, 'run', mc.run[figure])));
  return el(doc, 'table', { class: 'montecarlo', id: 'run-mc-table' },
    el(doc, 'thead', {}, el(doc, 'tr', {}, ...heads.map((t) => el(doc, 'th', {}, t)))), el(doc, 'tbody', {}, ...rows));
}

/** One figure's distribution over the resampled paths: its histogram, the 5th/50th/95th
 *  percentiles dashed, the run's own value as a solid line. */
export async function monteCarloChart(Plotly, node, mc, figure, label) {
  const d = mc[figure];
  const edges = d.histogram.edges;
  const mids = d.histogram.counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
  const line = (x, color, dash, text) => ({
    type: 'line', xref: 'x', yref: 'paper', x0: x, x1: x, y0: 0, y1: 1, line: { color, width: dash ? 1.2 : 2, dash },
    label: { text, textposition: 'end', font: { size: 10, color } },
  });
  const shapes = [['p5', '5th'], ['p50', 'median'], ['p95', '95th']]
    .filter(([p]) => d.percentiles[p] !== null).map(([p, t]) => line(d.percentiles[p], '#475569', 'dash', t));
  if (mc.run[figure] !== null) shapes.push(line(mc.run[figure], RED, null, 'this run'));
  await Plotly.react(node, [{
    type: 'bar', x: mids, y: d.histogram.counts, width: edges[1] - edges[0], marker: { color: BLUE, line: { color: '#fff', width: 0.5 } },
    hovertemplate: '%{x:.2f} %: %{y} paths<extra></extra>',
  }], layout({ xaxis: { title: { text: label }, ticksuffix: ' %' }, yaxis: { title: { text: 'paths' } }, bargap: 0, shapes, showlegend: false }), CONFIG);
}
