// Day-by-day backtests (seed 004's UI workflow): pick a rule strategy, run it
// (POST /api/v1/backtest/run), watch days complete live on the job's SSE stream, then a
// calendar of daily P&L coloured by sign and size (GET /api/v1/backtest/metadata/...);
// a click on a day shows its positions with the evaluated entry and exit conditions
// and the candles they saw (GET /api/v1/backtest/day/...), over the day's price chart.
// Strategies are created (POST), edited (PUT) and deleted (DELETE /api/v1/strategies/{id})
// in the JSON editor below the form.

import { api } from '../api.js';
import { candleChart, purge } from '../charts.js';
import {
  badge, clear, errorBox, formValues, h, infoBox, int, num, numberOrUndefined, okBox, progressBar, show, signClass,
} from '../dom.js';
import { followJob } from '../stream.js';

const DEFAULT_USER = 'dashboard';
const EXAMPLE_STRATEGY = {
  name: 'RSI reversal (demo)',
  dataset: { ticker: 'DEMO-MINUTE', interval: '1m' },
  session: { timezone: 'Asia/Kolkata', start: '09:15', end: '15:30', square_off: '15:25' },
  entries: [{ id: 'entry-1', condition: 'RSI(14) < 30 and time >= 09:30', side: 'buy', quantity: 1,
    stop_loss: { type: 'percent', value: 0.5 }, target: { type: 'points', value: 10 }, max_reentries: 2 }],
  exits: [{ id: 'exit-1', condition: 'RSI(14) > 70', entries: ['entry-1'] }],
};
// One click for a new user (issue 15): a short ATM straddle of the current week on DEMO-MINUTE,
// its legs traded on the synthetic chain DEMO-OPTIONS; saved once per tenant, then reused.
const DEMO_STRADDLE_LEG = { condition: 'time >= 09:20', side: 'sell', quantity: 50,
  stop_loss: { type: 'percent', value: 30 }, target: { type: 'percent', value: 50 } };
export const DEMO_STRADDLE = {
  name: 'Short straddle (demo)',
  dataset: { ticker: 'DEMO-MINUTE', interval: '1m' },
  session: { square_off: '15:15' },
  entries: ['CE', 'PE'].map((t) => ({ id: `entry-${t.toLowerCase()}`, ...DEMO_STRADDLE_LEG,
    instrument: { type: 'option', option_type: t, strike: 'ATM', expiry: 'current_week' } })),
};
const DOW = ['Mo', 'Tu', 'We', 'Th', 'Fr', 'Sa', 'Su'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** DD-MM-YYYY <-> YYYY-MM-DD */
export const toIso = (dmy) => `${dmy.slice(6, 10)}-${dmy.slice(3, 5)}-${dmy.slice(0, 2)}`;
export const toDmy = (iso) => `${iso.slice(8, 10)}-${iso.slice(5, 7)}-${iso.slice(0, 4)}`;

/** Background colour of a day's P&L: green or red, stronger with size (sqrt scale). */
export function pnlColour(pnl, maxAbs) {
  if (!pnl || !maxAbs) return null;
  const a = 0.18 + 0.72 * Math.sqrt(Math.min(1, Math.abs(pnl) / maxAbs));
  return pnl > 0 ? `rgba(22, 163, 74, ${a.toFixed(3)})` : `rgba(220, 38, 38, ${a.toFixed(3)})`;
}

/**
 * The P&L calendar: month grids from `start` to `end` (ISO dates). `days` maps an ISO date
 * to {pnl, positions, state: 'done'|'pending'}; onPick(isoDate) on a click of a day with positions.
 */
function calendar(start, end, days, selected, onPick) {
  const box = h('div', { class: 'calendar', id: 'pnl-calendar' });
  const values = [...days.values()].filter((d) => d.state === 'done').map((d) => Math.abs(d.pnl || 0));
  const maxAbs = values.length ? Math.max(...values) : 0;
  const first = new Date(`${start}T00:00:00Z`);
  const last = new Date(`${end}T00:00:00Z`);
  for (let m = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth(), 1)); m <= last; m = new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1))) {
    const grid = h('div', { class: 'grid' }, DOW.map((d) => h('div', { class: 'dow' }, d)));
    const lead = (m.getUTCDay() + 6) % 7; // Monday first
    for (let i = 0; i < lead; i += 1) grid.append(h('div', { class: 'day blank' }));
    const daysInMonth = new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 0)).getUTCDate();
    for (let d = 1; d <= daysInMonth; d += 1) {
      const iso = new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth(), d)).toISOString().slice(0, 10);
      const info = days.get(iso);
      const inRange = iso >= start && iso <= end;
      const cls = ['day'];
      let title = iso;
      let colour = null;
      let label = null;
      if (!inRange) cls.push('blank');
      else if (info && info.state === 'pending') { cls.push('pending'); title += ': running…'; }
      else if (info && info.state === 'done') {
        if (info.positions > 0) {
          colour = pnlColour(info.pnl, maxAbs);
          cls.push(colour ? 'traded' : 'flat');
          label = num(info.pnl, Math.abs(info.pnl) >= 100 ? 0 : 1);
          title += `: P&L ${num(info.pnl, 2)} · ${info.positions} position${info.positions === 1 ? '' : 's'}`;
        } else {
          title += ': no positions';
        }
      } else {
        title += ': no session';
      }
      if (iso === selected) cls.push('selected');
      const cell = h('div', { class: cls.join(' '), title, style: colour ? { background: colour } : null, dataset: { date: iso } },
        h('span', {}, String(d)), label !== null ? h('span', { class: 'pnl' }, label) : null);
      if (info && info.state === 'done' && info.positions > 0) cell.addEventListener('click', () => onPick(iso));
      grid.append(cell);
    }
    box.append(h('div', { class: 'month' }, h('h4', {}, `${MONTHS[m.getUTCMonth()]} ${m.getUTCFullYear()}`), grid));
  }
  return box;
}

function conditionsTable(conds) {
  if (!conds || !conds.length) return h('div', { class: 'small muted' }, 'No conditions recorded.');
  const fmt = (v) => (typeof v === 'number' ? num(v, 4) : v === null || v === undefined ? '—' : String(v));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'conditions' },
    h('thead', {}, h('tr', {}, ['Condition', 'LHS', 'LHS value', 'Op', 'RHS', 'RHS value', 'Result'].map((c) => h('th', {}, c)))),
    h('tbody', {}, conds.map((c) => h('tr', {},
      h('td', { class: 'mono' }, c.condition || ''),
      h('td', { class: 'mono' }, c.lhs_expression || ''),
      h('td', { class: 'num' }, fmt(c.lhs_value)),
      h('td', { class: 'mono' }, c.operator),
      h('td', { class: 'mono' }, c.rhs_expression || ''),
      h('td', { class: 'num' }, fmt(c.rhs_value)),
      h('td', {}, h('span', { class: c.result ? 'cond-true' : 'cond-false' }, c.result ? 'true' : 'false'),
        c.condition_type === 'live' ? h('span', { class: 'small muted' }, ' (live)') : null))))));
}

function candleTable(candleData) {
  if (!candleData) return null;
  const rows = [];
  for (const [symbol, pair] of Object.entries(candleData)) {
    for (const which of ['previous', 'current']) {
      const c = pair && pair[which];
      if (!c) continue;
      rows.push(h('tr', {}, h('td', {}, `${symbol} ${which}`), h('td', {}, String(c.timestamp).replace('T', ' ')),
        ['open', 'high', 'low', 'close'].map((k) => h('td', { class: 'num' }, num(c[k], 2))), h('td', { class: 'num' }, int(c.volume))));
    }
  }
  return h('div', { class: 'table-wrap', style: { marginTop: '.4rem' } }, h('table', { class: 'candles' },
    h('thead', {}, h('tr', {}, ['Candle', 'Time', 'Open', 'High', 'Low', 'Close', 'Volume'].map((c) => h('th', {}, c)))), h('tbody', {}, rows)));
}

/** A strategy's session in words, from whichever of its fields are set. */
export function sessionText(session) {
  const s = session || {};
  const parts = [];
  if (s.start || s.end) parts.push(`session ${s.start || 'first bar'}–${s.end || 'last bar'}`);
  else parts.push('whole day');
  if (s.square_off) parts.push(`square off ${s.square_off}`);
  if (s.timezone) parts.push(s.timezone);
  return parts.join(' · ');
}

function positionBlock(p) {
  const entry = p.diagnostic_data || {};
  const exit = p.exit_diagnostic_data || {};
  const t = (s) => String(s || '').replace('T', ' ').slice(11, 19) || '—';
  return h('div', { class: 'position', dataset: { position: String(p.position_num) } },
    h('header', {},
      h('strong', {}, `#${p.position_num} ${p.side} ${p.quantity} ${p.symbol}`),
      h('span', {}, `${p.position_id}${p.re_entry_num ? ` · re-entry ${p.re_entry_num}` : ''}`),
      h('span', {}, `in ${t(p.entry_time)} @ ${num(p.entry_price, 2)} → out ${t(p.exit_time)} @ ${num(p.exit_price, 2)}`),
      h('span', { class: signClass(p.pnl) }, `P&L ${num(p.pnl, 2)} (${num(p.pnl_percent, 2)} %)`),
      badge(p.exit_reason || 'closed')),
    h('div', { class: 'diag' },
      h('div', {}, h('h3', {}, 'Entry: ', h('code', {}, p.condition_preview || '')), conditionsTable(entry.conditions_evaluated), candleTable(entry.candle_data)),
      h('div', {}, h('h3', {}, 'Exit: ', h('code', {}, p.exit_condition_preview || '')), conditionsTable(exit.conditions_evaluated), candleTable(exit.candle_data))));
}

export async function render(root, { query }) {
  const closers = [];
  const formMsg = h('div', { id: 'days-form-msg' });
  const strategySelect = h('select', { name: 'strategy_id', id: 'days-strategy', required: true });
  const strategyInfo = h('div', { class: 'small muted', id: 'days-strategy-info' });
  const strategyMsg = h('div', { id: 'strategy-msg' });
  const editButton = h('button', { type: 'button', class: 'secondary small', id: 'strategy-edit', onclick: () => editStrategy() }, 'Edit');
  const deleteButton = h('button', { type: 'button', class: 'danger small', id: 'strategy-delete', onclick: () => deleteStrategy() }, 'Delete');
  const startInput = h('input', { type: 'date', name: 'start_date', id: 'days-start', required: true });
  const endInput = h('input', { type: 'date', name: 'end_date', id: 'days-end', required: true });
  const demoButton = h('button', { type: 'button', class: 'secondary', id: 'days-demo-straddle', onclick: () => runDemoStraddle() },
    'Run the demo straddle');
  const demoCard = h('div', { class: 'card', id: 'days-demo' }, demoButton,
    h('span', { class: 'small muted' }, ' sells the ATM call and put of the current week on DEMO-MINUTE at 09:20 (stop 30 %, target 50 % of the premium, square-off 15:15), its legs on the synthetic chain DEMO-OPTIONS, over every day of the demo data.'));
  const form = h('form', { class: 'grid', id: 'days-form' },
    h('label', { class: 'full' }, 'Strategy', strategySelect),
    h('div', { class: 'full actions', id: 'strategy-actions' }, editButton, deleteButton,
      h('span', { class: 'small muted' }, 'the selected strategy')),
    h('div', { class: 'full' }, strategyMsg),
    h('div', { class: 'full' }, strategyInfo),
    h('label', {}, 'From', startInput),
    h('label', {}, 'To', endInput),
    h('label', {}, 'User (results partition)', h('input', { name: 'user_id', value: DEFAULT_USER, id: 'days-user', pattern: '[A-Za-z0-9][A-Za-z0-9_.@\\-]{0,63}' })),
    h('label', {}, 'Initial capital', h('input', { type: 'number', name: 'initial_capital', value: '100000', step: 'any' })),
    h('label', {}, 'Slippage %', h('input', { type: 'number', name: 'slippage_percentage', value: '0', step: 'any' })),
    h('label', {}, 'Commission %', h('input', { type: 'number', name: 'commission_percentage', value: '0', step: 'any' })),
    h('div', { class: 'full actions' }, h('button', { type: 'submit', id: 'days-run' }, 'Run backtest')),
    h('div', { class: 'full' }, formMsg));

  const newMsg = h('div');
  const newText = h('textarea', { rows: 26, id: 'strategy-json' });
  newText.value = JSON.stringify(EXAMPLE_STRATEGY, null, 2);
  const editorTitle = h('summary', { id: 'strategy-editor-title' }, 'New strategy (JSON)');
  const saveButton = h('button', { type: 'button', id: 'strategy-save', class: 'hidden', onclick: () => saveStrategy() }, 'Save changes');
  const createButton = h('button', { type: 'button', id: 'strategy-create', onclick: () => createStrategy() }, 'Create strategy');
  const cancelButton = h('button', { type: 'button', id: 'strategy-cancel-edit', class: 'secondary hidden', onclick: () => stopEditing(true) }, 'Cancel editing');
  const newForm = h('details', { class: 'card', id: 'strategy-new' }, editorTitle,
    h('p', { class: 'small muted' }, 'Conditions use the rule language: comparisons (> >= < <= == != crosses_above crosses_below) of prices, numbers and indicators (SMA, EMA, RSI, MACD, BBANDS, ATR, VWAP), time >= 09:30, and/or/not. See /docs (strategies).'),
    newText,
    h('div', { class: 'actions', style: { marginTop: '.5rem' } }, saveButton, createButton, cancelButton),
    newMsg);

  const progressCard = h('div', { class: 'card hidden', id: 'days-progress' });
  const calendarCard = h('div', { class: 'card hidden', id: 'days-calendar' });
  const dayCard = h('div', { class: 'card hidden', id: 'day-detail' });
  // The JSON editor gets the page's whole width below the run form and results.
  root.append(h('h1', {}, 'Day-by-day backtests'),
    h('div', { class: 'split' },
      h('div', {}, demoCard, h('div', { class: 'card' }, h('h2', {}, 'Run a strategy day by day'), form)),
      h('div', {}, progressCard, calendarCard, dayCard)),
    newForm);

  // ---- strategies and datasets
  let strategies = [];
  let datasets = [];
  async function loadStrategies(selectId) {
    try {
      [strategies, datasets] = await Promise.all([
        api('/api/v1/strategies', { query: { limit: 1000 } }).then((o) => o.strategies),
        api('/api/v1/datasets').then((o) => o.datasets.filter((d) => d.kind !== 'option_chain')),
      ]);
    } catch (err) { show(formMsg, errorBox(err)); return; }
    clear(strategySelect);
    editButton.disabled = deleteButton.disabled = !strategies.length;
    if (editing && !strategies.some((s) => s.strategy_id === editing.strategy_id)) stopEditing(true);
    if (!strategies.length) {
      strategySelect.append(h('option', { value: '' }, 'no strategies yet: create one below'));
      newForm.open = true;
    }
    for (const s of strategies) strategySelect.append(h('option', { value: s.strategy_id }, `${s.name} (${s.strategy_id.slice(0, 8)})`));
    if (selectId) strategySelect.value = selectId;
    describeStrategy(true);
  }
  function describeStrategy(setDates) {
    const s = strategies.find((x) => x.strategy_id === strategySelect.value);
    clear(strategyInfo);
    if (!s || !s.definition) return;
    const def = s.definition;
    const ds = datasets.find((d) => d.ticker === def.dataset?.ticker && d.interval === def.dataset?.interval);
    strategyInfo.append(
      `${def.dataset?.ticker} ${def.dataset?.interval} · ${sessionText(def.session)}`,
      h('br'), ...(def.entries || []).map((e) => h('div', {}, 'entry ', h('code', {}, e.condition))),
      ...(def.exits || []).map((e) => h('div', {}, 'exit ', h('code', {}, e.condition))),
      ds ? h('div', {}, `data ${ds.start.slice(0, 10)} → ${ds.end.slice(0, 10)}`) : h('div', { class: 'neg' }, 'no dataset for this ticker and interval yet'));
    if (setDates && ds) {
      startInput.value = ds.start.slice(0, 10);
      endInput.value = ds.end.slice(0, 10);
    }
  }
  strategySelect.addEventListener('change', () => describeStrategy(true));

  /** The editor's JSON object, or null (with the reason shown) when it is not one. */
  function editorJson() {
    let body;
    try { body = JSON.parse(newText.value); } catch (err) { show(newMsg, errorBox(new Error(`Not valid JSON: ${err.message}`))); return null; }
    if (!body || typeof body !== 'object' || Array.isArray(body)) { show(newMsg, errorBox(new Error('A strategy is a JSON object ({"name": ..., "dataset": ..., ...}).'))); return null; }
    return body;
  }

  async function createStrategy() {
    show(newMsg, null);
    const body = editorJson();
    if (!body) return;
    try {
      const s = await api('/api/v1/strategies', { method: 'POST', json: body });
      stopEditing(false);
      await loadStrategies(s.strategy_id);
      show(newMsg, okBox(`Created "${s.name}".`));
    } catch (err) { show(newMsg, errorBox(err)); }
  }

  // ---- editing and deleting the selected strategy
  let editing = null; // the strategy whose definition is in the editor
  const selectedStrategy = () => strategies.find((x) => x.strategy_id === strategySelect.value) || null;

  function editStrategy() {
    show(strategyMsg, null);
    show(newMsg, null);
    const s = selectedStrategy();
    if (!s) { show(strategyMsg, errorBox(new Error('Pick a strategy to edit.'))); return; }
    editing = s;
    newText.value = JSON.stringify(s.definition || { name: s.name }, null, 2);
    editorTitle.textContent = `Edit "${s.name}" (JSON)`;
    saveButton.classList.remove('hidden');
    cancelButton.classList.remove('hidden');
    createButton.textContent = 'Save as a new strategy';
    createButton.classList.add('secondary');
    newForm.open = true;
    newForm.scrollIntoView({ block: 'nearest' });
    newText.focus();
  }

  function stopEditing(resetText) {
    editing = null;
    editorTitle.textContent = 'New strategy (JSON)';
    saveButton.classList.add('hidden');
    cancelButton.classList.add('hidden');
    createButton.textContent = 'Create strategy';
    createButton.classList.remove('secondary');
    if (resetText) { newText.value = JSON.stringify(EXAMPLE_STRATEGY, null, 2); show(newMsg, null); }
  }

  async function saveStrategy() {
    show(newMsg, null);
    if (!editing) return;
    const body = editorJson();
    if (!body) return;
    saveButton.disabled = true;
    try {
      const s = await api(`/api/v1/strategies/${encodeURIComponent(editing.strategy_id)}`, { method: 'PUT', json: body });
      editing = s;
      editorTitle.textContent = `Edit "${s.name}" (JSON)`;
      await loadStrategies(s.strategy_id);
      show(newMsg, okBox(`Saved "${s.name}".`));
    } catch (err) {
      show(newMsg, errorBox(err));
    } finally { saveButton.disabled = false; }
  }

  async function deleteStrategy() {
    show(strategyMsg, null);
    const s = selectedStrategy();
    if (!s) { show(strategyMsg, errorBox(new Error('Pick a strategy to delete.'))); return; }
    if (!window.confirm(`Delete the strategy "${s.name}" (${s.strategy_id})?`)) return;
    deleteButton.disabled = true;
    try {
      await api(`/api/v1/strategies/${encodeURIComponent(s.strategy_id)}`, { method: 'DELETE' });
      await loadStrategies();
      show(strategyMsg, okBox(`Deleted "${s.name}".`));
    } catch (err) {
      show(strategyMsg, errorBox(err));
      deleteButton.disabled = false;
    }
  }

  // ---- a run: stream, calendar, day detail
  let state = null; // {jobId, userId, strategyId, start, end, days: Map, selected}
  let follower = null;

  function drawCalendar(summary) {
    if (!state) return;
    clear(calendarCard).classList.remove('hidden');
    calendarCard.append(h('h2', {}, 'Daily P&L'));
    if (summary) {
      calendarCard.append(h('div', { class: 'small', id: 'days-summary' },
        `${summary.total_positions} positions · P&L `, h('strong', { class: signClass(summary.total_pnl) }, num(summary.total_pnl, 2)),
        ` · win rate ${num(summary.win_rate, 1)} % · ${summary.total_winning_trades} won, ${summary.total_losing_trades} lost`));
    }
    calendarCard.append(
      h('div', { class: 'legend' },
        h('span', {}, h('span', { class: 'swatch', style: { background: 'rgba(22,163,74,.85)' } }), 'profit'),
        h('span', {}, h('span', { class: 'swatch', style: { background: 'rgba(220,38,38,.85)' } }), 'loss'),
        h('span', {}, h('span', { class: 'swatch', style: { background: '#f1f3f6' } }), 'no positions / no session'),
        h('span', {}, 'stronger colour = larger P&L; click a coloured day')),
      calendar(state.start, state.end, state.days, state.selected, openDay));
  }

  async function openDay(iso) {
    if (!state) return;
    state.selected = iso;
    drawCalendar(state.summary);
    clear(dayCard).classList.remove('hidden');
    if (!state.userId) {
      const backtestId = `${state.strategyId}_${state.start}_${state.end}`;
      dayCard.append(h('h2', {}, iso), infoBox('This backtest was started without a user (seed 002): its day files come as a ZIP. '),
        h('a', { href: `/api/v1/backtest/${backtestId}/day/${iso}`, download: true }, `Download backtest_${iso}.zip`));
      return;
    }
    dayCard.append(h('h2', {}, `Day ${toDmy(iso)}`), h('div', { class: 'small muted' }, 'Loading positions…'));
    let day;
    try {
      day = await api(`/api/v1/backtest/day/${encodeURIComponent(state.userId)}/${state.strategyId}/${toDmy(iso)}`);
    } catch (err) { clear(dayCard).append(h('h2', {}, `Day ${toDmy(iso)}`), errorBox(err)); return; }
    if (state.selected !== iso) return;
    const s = day.summary;
    clear(dayCard).append(
      h('h2', {}, `Day ${day.date}`),
      h('div', { class: 'small', id: 'day-summary' }, `${s.total_positions} positions · P&L `,
        h('strong', { class: signClass(s.total_pnl) }, num(s.total_pnl, 2)), ` · ${s.winning_trades} won, ${s.losing_trades} lost · win rate ${num(s.win_rate, 1)} %`));
    const chart = h('div', { class: 'chart small', id: 'day-chart' });
    dayCard.append(chart, h('div', { id: 'day-positions' }, day.positions.map(positionBlock)));
    drawDayChart(chart, iso, day).catch((err) => chart.replaceWith(h('div', { class: 'small muted' }, `No price chart: ${err.message}`)));
  }

  async function drawDayChart(chart, iso, day) {
    const def = strategies.find((x) => x.strategy_id === state.strategyId)?.definition;
    const ds = def && datasets.find((d) => d.ticker === def.dataset?.ticker && d.interval === def.dataset?.interval);
    if (!ds) throw new Error('the strategy\'s dataset is not in the list');
    const bars = await api(`/api/v1/datasets/${encodeURIComponent(ds.dataset_id)}/bars`, { query: { start: iso, end: iso, tz: 'local', limit: 1500 } });
    const markers = [];
    const lines = [];
    for (const p of day.positions) {
      const buy = String(p.side).toUpperCase() === 'BUY';
      // An option leg's prices are premiums: on the right-hand axis, joined entry to exit.
      const premium = Boolean(p.option_type);
      const label = premium ? `#${p.position_num} ${p.symbol}` : `#${p.position_num}`;
      markers.push({ name: `${label} entry`, x: p.entry_time, y: p.entry_price, symbol: buy ? 'triangle-up' : 'triangle-down', color: '#2563eb', premium });
      markers.push({ name: `${label} exit (${p.exit_reason})`, x: p.exit_time, y: p.exit_price, symbol: 'x', color: p.pnl >= 0 ? '#15803d' : '#b91c1c', premium });
      if (premium) lines.push({ name: label, x: [p.entry_time, p.exit_time], y: [p.entry_price, p.exit_price], premium });
    }
    await candleChart(chart, bars.bars, { title: `${ds.ticker} ${ds.interval}, ${toDmy(iso)} (${bars.timezone} time)`, markers, lines });
    closers.push(() => purge(chart));
  }

  async function loadMetadata() {
    if (!state.userId) return;
    try {
      const meta = await api(`/api/v1/backtest/metadata/${encodeURIComponent(state.userId)}/${state.strategyId}`);
      if (meta.job_id && meta.job_id !== state.jobId) {
        calendarCard.append(infoBox(`A newer run (${meta.job_id}) of this user and strategy replaced these day files; showing it.`));
        state.jobId = meta.job_id;
      }
      state.start = meta.start_date;
      state.end = meta.end_date;
      state.days = new Map(meta.daily_summaries.map((d) => [toIso(d.date), { pnl: d.pnl, positions: d.positions, state: 'done' }]));
      state.summary = meta.overall_summary;
      drawCalendar(state.summary);
    } catch (err) { calendarCard.append(errorBox(err)); }
  }

  function watch(jobId, params) {
    if (follower) follower.close();
    state = { jobId, userId: params.user_id || '', strategyId: params.strategy_id, start: params.start_date, end: params.end_date, days: new Map(), selected: null };
    for (const c of [calendarCard, dayCard]) { clear(c).classList.add('hidden'); }
    clear(progressCard).classList.remove('hidden');
    const bar = progressBar();
    bar.id = 'days-progress-bar';
    const counter = h('span', { id: 'days-count' }, '');
    progressCard.append(h('h2', {}, 'Progress'), h('div', { class: 'small muted' }, 'Job ', h('code', { id: 'days-job-id' }, jobId), ' · ', counter), bar);
    drawCalendar(null);
    let redraw = null;
    const scheduleDraw = () => { if (!redraw) redraw = setTimeout(() => { redraw = null; drawCalendar(null); }, 150); };
    follower = followJob(jobId, {
      onEvent: (data) => {
        const ev = data.event, d = data.data || {};
        if (ev === 'day_started' && d.date) { state.days.set(d.date, { state: 'pending' }); scheduleDraw(); }
        if (ev === 'day_completed' && d.date) {
          const sum = d.summary || {};
          state.days.set(d.date, { state: 'done', pnl: Number(sum.total_pnl) || 0, positions: Number(sum.total_trades) || 0 });
          counter.textContent = `${d.day_number} / ${d.total_days} days`;
          scheduleDraw();
        }
      },
      onProgress: (p, message) => bar.set(p, message),
      onDone: async () => {
        bar.finish(true, 'Completed');
        clearTimeout(redraw);
        await loadMetadata();
      },
      onError: (message) => {
        bar.finish(false, message);
        progressCard.append(h('div', { class: 'error-box', id: 'days-error' }, message));
      },
    });
    closers.push(() => { if (follower) follower.close(); clearTimeout(redraw); });
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(formMsg, null);
    const v = formValues(form);
    const body = {
      user_id: v.user_id || DEFAULT_USER, strategy_id: v.strategy_id, start_date: v.start_date, end_date: v.end_date,
      initial_capital: numberOrUndefined(v.initial_capital), slippage_percentage: numberOrUndefined(v.slippage_percentage),
      commission_percentage: numberOrUndefined(v.commission_percentage),
    };
    const button = form.querySelector('#days-run');
    button.disabled = true;
    try {
      const out = await api('/api/v1/backtest/run', { method: 'POST', json: body });
      history.replaceState({}, '', `/ui/days?job=${encodeURIComponent(out.job_id)}`);
      watch(out.job_id, body);
    } catch (err) {
      show(formMsg, errorBox(err));
    } finally { button.disabled = false; }
  });

  /** The demo straddle: the tenant's saved copy (created the first time), over the demo data's days. */
  async function runDemoStraddle() {
    show(formMsg, null);
    demoButton.disabled = true;
    try {
      let s = strategies.find((x) => x.name === DEMO_STRADDLE.name && x.definition?.dataset?.ticker === DEMO_STRADDLE.dataset.ticker);
      if (!s) s = await api('/api/v1/strategies', { method: 'POST', json: DEMO_STRADDLE });
      await loadStrategies(s.strategy_id);
      if (!startInput.value || !endInput.value) throw new Error('DEMO-MINUTE is not among your datasets.');
      form.requestSubmit();
    } catch (err) {
      show(formMsg, errorBox(err));
    } finally { demoButton.disabled = false; }
  }

  await loadStrategies(query.get('strategy'));
  if (query.get('demo') === 'straddle') {
    await runDemoStraddle();
    return () => closers.forEach((c) => c());
  }
  let jobId = query.get('job');
  if (!jobId && !query.get('strategy')) {
    // Opening the page shows the latest day-by-day run, as it was left.
    try {
      const recent = await api('/api/v1/jobs', { query: { limit: 50 } });
      const last = recent.jobs.find((j) => j.kind === 'day-backtest');
      if (last) jobId = last.job_id;
    } catch { /* nothing to show yet */ }
  }
  if (jobId) {
    try {
      const job = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
      const p = job.parameters || {};
      if (p.strategy_id) strategySelect.value = p.strategy_id;
      describeStrategy(false);
      if (p.start_date) startInput.value = p.start_date;
      if (p.end_date) endInput.value = p.end_date;
      if (p.user_id) form.elements.namedItem('user_id').value = p.user_id;
      watch(jobId, p);
    } catch (err) { show(formMsg, errorBox(err)); }
  }
  return () => closers.forEach((c) => c());
}
