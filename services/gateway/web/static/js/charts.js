// Charts with plotly.js, served by the gateway from the installed `plotly` package
// (/ui/vendor/plotly.min.js). Loaded on first use, so pages without charts stay light.

let loading = null;

export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/ui/vendor/plotly.min.js';
      s.async = true;
      s.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error('plotly.js did not load')));
      s.onerror = () => {
        loading = null;
        reject(new Error('Could not load the charting library from the gateway (/ui/vendor/plotly.min.js).'));
      };
      document.head.appendChild(s);
    });
  }
  return loading;
}

// Pages talk to the gateway only: no plotly logo link, and no "Share chart..." button (the
// installed plotly.js shows one by default; it opens Plotly Cloud and posts the chart's data there).
const CONFIG = {
  displaylogo: false,
  showSendToCloud: false,
  plotlyServerURL: '',
  responsive: true,
  modeBarButtonsToRemove: ['lasso2d', 'select2d', 'sendDataToCloud', 'sendChartToCloud'],
};

function layout(extra = {}) {
  return {
    margin: { l: 60, r: 20, t: extra.title ? 36 : 16, b: 44 },
    font: { family: 'system-ui, -apple-system, Segoe UI, Roboto, sans-serif', size: 12, color: '#1b2430' },
    paper_bgcolor: '#fff',
    plot_bgcolor: '#fff',
    hovermode: 'closest',
    legend: { orientation: 'h', x: 0, y: 1.1 },
    ...extra,
    title: extra.title ? { text: extra.title, font: { size: 14 }, x: 0, xanchor: 'left' } : undefined,
  };
}

export async function purge(el) {
  if (window.Plotly && el) window.Plotly.purge(el);
}

/**
 * The fast × slow heatmap of a sweep's score. rows: the best-results rows. Cells without a
 * row (fast >= slow, or below min_trades) stay empty. onPick({fast, slow}) on a click.
 */
export async function scoreHeatmap(el, rows, { onPick, metric = 'score', label = 'score' } = {}) {
  const Plotly = await loadPlotly();
  const fasts = [...new Set(rows.map((r) => r.fast_period))].sort((a, b) => a - b);
  const slows = [...new Set(rows.map((r) => r.slow_period))].sort((a, b) => a - b);
  const z = fasts.map(() => slows.map(() => null));
  const text = fasts.map(() => slows.map(() => ''));
  for (const r of rows) {
    const i = fasts.indexOf(r.fast_period), j = slows.indexOf(r.slow_period);
    z[i][j] = r[metric];
    text[i][j] = `trades ${r.total_trades} · return ${r.total_return_pct === null ? '—' : r.total_return_pct.toFixed(1) + ' %'}`;
  }
  const values = rows.map((r) => r[metric]).filter((v) => v !== null && v !== undefined);
  const amp = values.length ? Math.max(...values.map(Math.abs)) || 1 : 1;
  const trace = {
    type: 'heatmap', x: slows, y: fasts, z, text,
    colorscale: [[0, '#b91c1c'], [0.25, '#f19a8f'], [0.5, '#f5f5f4'], [0.75, '#86d4a0'], [1, '#15803d']], zmid: 0, zmin: -amp, zmax: amp, xgap: 1, ygap: 1,
    colorbar: { title: { text: label, side: 'right' }, thickness: 14 },
    hovertemplate: `fast %{y} · slow %{x}<br>${label} %{z:.3f}<br>%{text}<extra>click for the equity curve</extra>`,
  };
  await Plotly.react(el, [trace], layout({
    // automargin: with many periods the (rotated) tick labels get room instead of covering the titles.
    xaxis: { title: { text: 'slow period' }, type: 'category', automargin: true },
    yaxis: { title: { text: 'fast period' }, type: 'category', automargin: true },
  }), CONFIG);
  if (onPick && !el.__pickBound) {
    el.__pickBound = true;
    el.on('plotly_click', (ev) => {
      const p = ev && ev.points && ev.points[0];
      if (p && p.z !== null && p.z !== undefined) el.__onPick({ fast: Number(p.y), slow: Number(p.x) });
    });
  }
  el.__onPick = onPick;
}

/** Outline the heatmap cell of (fast, slow), the one last clicked (categorical axes: cells sit at their index). */
export async function markHeatmapCell(el, fast, slow) {
  const Plotly = await loadPlotly();
  const trace = el.data && el.data[0];
  if (!trace) return;
  const j = trace.x.indexOf(slow), i = trace.y.indexOf(fast);
  if (i < 0 || j < 0) return;
  await Plotly.relayout(el, { shapes: [{ type: 'rect', xref: 'x', yref: 'y', x0: j - 0.5, x1: j + 0.5, y0: i - 0.5, y1: i + 0.5,
    line: { color: '#111827', width: 2.5 }, fillcolor: 'rgba(0,0,0,0)', name: 'picked' }] });
}

/**
 * The histogram of a sweep's CSCV logits (λ of every split); λ <= 0 (the in-sample best fell
 * to the bottom half out of sample) on the left of the line at 0, in red.
 */
export async function logitHistogram(el, logits) {
  const Plotly = await loadPlotly();
  const overfit = logits.filter((x) => x <= 0), held = logits.filter((x) => x > 0);
  const lo = Math.min(0, ...logits), hi = Math.max(0, ...logits);
  const size = Math.max((hi - lo) / 30, 1e-3);
  const bins = { start: lo - size / 2, end: hi + size / 2, size };
  const bar = (name, x, color) => ({
    type: 'histogram', name, x, xbins: bins, autobinx: false, marker: { color },
    hovertemplate: `λ %{x}<br>%{y} splits<extra>${name}</extra>`,
  });
  await Plotly.react(el, [bar('λ ≤ 0 (overfit)', overfit, '#dc2626'), bar('λ > 0', held, '#16a34a')], layout({
    barmode: 'overlay', bargap: 0.05,
    xaxis: { title: { text: 'logit λ of each split' }, zeroline: true, zerolinecolor: '#1b2430', zerolinewidth: 2 },
    yaxis: { title: { text: 'splits' } },
  }), CONFIG);
}

/** Lines over time. series: [{name, x: [iso], y: [number|null], dash?, color?}] */
export async function lineChart(el, series, { title, yTitle, yType } = {}) {
  const Plotly = await loadPlotly();
  const traces = series.map((s) => ({
    type: 'scatter', mode: 'lines', name: s.name, x: s.x, y: s.y, connectgaps: false,
    line: { width: 1.6, dash: s.dash || 'solid', color: s.color },
    hovertemplate: `${s.name}: %{y:,.2f}<extra>%{x}</extra>`,
  }));
  await Plotly.react(el, traces, layout({
    title, xaxis: { type: 'date' }, yaxis: { title: { text: yTitle || '' }, type: yType || 'linear', tickformat: ',.0f' },
    hovermode: 'x unified',
  }), CONFIG);
}

/** Candlesticks from [{timestamp, open, high, low, close}]. Markers and `lines` ({name, x: [...],
 * y: [...], color}) with `premium: true` go on a second axis at the right (an option leg's
 * premium beside the underlying's price). */
export async function candleChart(el, bars, { title, markers = [], lines = [] } = {}) {
  const Plotly = await loadPlotly();
  const traces = [{
    type: 'candlestick', name: 'price',
    x: bars.map((b) => b.timestamp), open: bars.map((b) => b.open), high: bars.map((b) => b.high),
    low: bars.map((b) => b.low), close: bars.map((b) => b.close),
    increasing: { line: { color: '#15803d' } }, decreasing: { line: { color: '#b91c1c' } },
  }];
  for (const l of lines) {
    traces.push({
      type: 'scatter', mode: 'lines', name: l.name, x: l.x, y: l.y, yaxis: l.premium ? 'y2' : 'y',
      line: { width: 1.4, dash: 'dot', color: l.color || '#7c3aed' },
      hovertemplate: `${l.name} %{y:,.2f}<extra>%{x}</extra>`,
    });
  }
  for (const m of markers) {
    traces.push({
      type: 'scatter', mode: 'markers', name: m.name, x: [m.x], y: [m.y], yaxis: m.premium ? 'y2' : 'y',
      marker: { size: 11, symbol: m.symbol || 'circle', color: m.color || '#2563eb', line: { width: 1, color: '#fff' } },
      hovertemplate: `${m.name} %{y:,.2f}<extra>%{x}</extra>`,
    });
  }
  const premium = markers.some((m) => m.premium) || lines.some((l) => l.premium);
  await Plotly.react(el, traces, layout({
    title, showlegend: false,
    xaxis: { type: 'date', rangeslider: { visible: false } },
    yaxis: { tickformat: ',.2f' },
    ...(premium ? {
      yaxis2: { title: { text: 'premium' }, overlaying: 'y', side: 'right', tickformat: ',.2f', showgrid: false },
      margin: { l: 60, r: 60, t: title ? 36 : 16, b: 44 },
    } : {}),
  }), CONFIG);
}

/** Grouped bars. categories: [label]; series: [{name, y: [number|null], color?}] */
export async function barChart(el, categories, series, { yTitle, title } = {}) {
  const Plotly = await loadPlotly();
  const traces = series.map((s) => ({
    type: 'bar', name: s.name, x: categories, y: s.y, marker: { color: s.color },
    hovertemplate: `${s.name}: %{y:,.2f}<extra>%{x}</extra>`,
  }));
  await Plotly.react(el, traces, layout({
    title, barmode: 'group', xaxis: { type: 'category' }, yaxis: { title: { text: yTitle || '' }, zeroline: true },
  }), CONFIG);
}
