"""`GET /runs/{id}/report.html`: a run's report as one self-contained HTML file, to hand to
someone who does not run Hindsight.

Everything is inside the file: the report's JSON and the run's price (downsampled), the
stylesheet, the dashboard's own chart code (static/js/report_charts.js, so the file and
the run page draw the same charts) and plotly.js from the installed `plotly` package. The
file asks nothing of any server: a Content-Security-Policy in the file itself forbids every
connection, so it opens offline, from disk, and stays that way.

plotly.js is 4.8 MB (plotly 7.1), which alone would leave almost nothing of the 5 MB a
report may weigh: it is embedded gzip-compressed (base64, ~1.9 MB) and unpacked in the
browser with `DecompressionStream` (every current browser: Chromium 80+, Firefox 113+,
Safari 16.4+), then run as an inline script. A browser without it shows a message instead.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from functools import cache
from pathlib import Path
from typing import Any

from services.gateway.web.router import STATIC_DIR, plotly_js_path

CHARTS_JS = STATIC_DIR / "js" / "report_charts.js"

# The file's own policy: scripts and styles inline, images from data: (plotly's PNG export),
# and no connection of any kind.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
       "font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'")

METRICS = [
    ("total_return_pct", "Total return", "pct"),
    ("buy_and_hold_return_pct", "Buy & hold", "pct"),
    ("annualized_return", "CAGR", "pct"),
    ("sharpe_ratio", "Sharpe", "num"),
    ("sortino_ratio", "Sortino", "num"),
    ("max_drawdown_pct", "Max drawdown", "pct"),
    ("win_rate_pct", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "num"),
    ("total_trades", "Trades", "int"),
    ("trades_per_month", "Trades / month", "num"),
    ("avg_trade_duration", "Avg trade", "text"),
    ("score", "Score", "num"),
    ("pnl", "P&L", "num"),
    ("final_equity", "Final equity", "num"),
]

STYLE = """
:root { --ink:#1b2430; --muted:#5e6b7a; --line:#dde3ea; --good:#15803d; --bad:#b91c1c; --bg:#f4f6f9; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
  Roboto, sans-serif; }
header { background: #1f3a5f; color: #fff; padding: .9rem 1.5rem; }
header h1 { margin: 0; font-size: 1.35rem; }
header .sub { color: #d6e2f0; font-size: .9rem; margin-top: .2rem; }
main { max-width: 1240px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem; margin-bottom: 1rem; }
h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
@media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
.grid2 > section { margin-bottom: 0; }
.metrics { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: .5rem; }
.metric { border: 1px solid var(--line); border-radius: 6px; padding: .45rem .6rem; }
.metric .k { color: var(--muted); font-size: .8rem; }
.metric .v { font-size: 1.1rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.pos { color: var(--good); } .neg { color: var(--bad); }
.chart { width: 100%; height: 320px; }
.chart.small { height: 260px; }
.chart.exposure { height: 140px; }
.chart-empty { display: flex; align-items: center; justify-content: center; color: var(--muted); height: 80px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; font-size: .85rem; }
td.num { text-align: right; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; word-break: break-word; }
pre { background: #f6f8fa; padding: .6rem; border-radius: 6px; overflow: auto; max-height: 320px; font-size: .85rem; }
.notes { color: #7a3e00; background: #fff4e5; border: 1px solid #f5c98b; border-radius: 6px; padding: .5rem .8rem; }
.toolbar { float: right; font-size: .85rem; color: var(--muted); }
footer { color: var(--muted); font-size: .85rem; text-align: center; padding: 1rem; }
#report-error { display: none; }
"""

BOOT = """
const data = JSON.parse(document.getElementById('report-data').textContent);
const report = data.report;

async function loadPlotly() {
  if (typeof DecompressionStream === 'undefined') throw new Error('This browser cannot unpack the charting library (DecompressionStream): open the report in a current Chrome, Edge, Firefox or Safari.');
  const packed = document.getElementById('plotly-gz').textContent.trim();
  const raw = atob(packed);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  const script = document.createElement('script');
  script.textContent = await new Response(stream).text();
  document.head.appendChild(script);
  if (!window.Plotly) throw new Error('plotly.js did not start');
  return window.Plotly;
}

const nodes = Object.fromEntries(['equity', 'underwater', 'calendar', 'rolling', 'trades', 'daily', 'exposure', 'price']
  .map((k) => [k, document.getElementById(`chart-${k}`)]));
try {
  const Plotly = await loadPlotly();
  await drawReport(Plotly, nodes, report, data.bars);
  document.getElementById('report-drawdowns-box').replaceChildren(drawdownTable(document, report));
  document.getElementById('log-scale').addEventListener('change', (ev) => setLogScale(Plotly, nodes.equity, ev.target.checked));
  document.body.dataset.rendered = 'true';
} catch (err) {
  const box = document.getElementById('report-error');
  box.textContent = String(err && err.message ? err.message : err);
  box.style.display = 'block';
  document.body.dataset.rendered = 'error';
}
"""


@cache
def _plotly_packed(path: Path, mtime: float) -> str:
    """plotly.min.js, gzip-compressed at the highest level and base64-encoded (once per file)."""
    return base64.b64encode(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)).decode("ascii")


def plotly_packed() -> str:
    path = plotly_js_path()
    if path is None:
        raise FileNotFoundError("plotly is not installed (pip install -r requirements.txt)")
    return _plotly_packed(path, path.stat().st_mtime)


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _number(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "text":
        return _esc(value)
    if kind == "int":
        return f"{int(value):,}"
    text = f"{float(value):,.2f}"
    return f"{text} %" if kind == "pct" else text


def _metric_cards(metrics: dict[str, Any]) -> str:
    signed = {"total_return_pct", "annualized_return", "pnl"}
    cards = []
    for key, label, kind in METRICS:
        value = metrics.get(key)
        sign = ""
        if key in signed and isinstance(value, int | float):
            sign = "pos" if value > 0 else "neg" if value < 0 else ""
        cards.append(f'<div class="metric" data-metric="{key}"><div class="k">{_esc(label)}</div>'
                     f'<div class="v {sign}">{_number(value, kind)}</div></div>')
    return "".join(cards)


def _kv(rows: list[tuple[str, Any]]) -> str:
    return "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows if v not in (None, ""))


def _json_for_script(value: Any) -> str:
    # JSON inside <script>: "<" escaped, so no text of the run can close the element.
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def render(report: dict[str, Any], bars: list[dict[str, Any]] | None) -> str:
    """The report file: `report` as `GET /runs/{id}/report` answers it, `bars` the run's price."""
    run = report["run"]
    ds = report.get("dataset") or {}
    params = run.get("parameters") or {}
    simple = [(k, v) for k, v in params.items() if not isinstance(v, dict | list)]
    nested = {k: v for k, v in params.items() if isinstance(v, dict | list)}
    title = f"Run #{run['id']}: {run['strategy']} on {run['ticker']}"
    period = f"{run.get('start_date') or '…'} → {run.get('end_date') or '…'}"
    dataset_line = (f"{ds['dataset_id']} v{ds['version']} ({ds['interval']}, {ds['calendar']}, {ds['timezone']})"
                    if ds else "gone")
    exposure = report["exposure"]
    exposure_text = (
        f"{report['exposure_pct']:.1f} % of bars in the market: {exposure['long_pct']:.1f} % long, "
        f"{exposure['short_pct']:.1f} % short ({exposure['bars_in_market']:,} of {exposure['bars']:,} bars)"
        if report["exposure_pct"] is not None else "not counted for this run"
    )
    notes = "".join(f"<p>{_esc(n)}</p>" for n in report.get("notes") or [])
    calendar_title = "Daily P&amp;L" if report["calendar"] == "daily" else "Monthly returns (%), yearly in the last column"
    charts_js = CHARTS_JS.read_text(encoding="utf-8")
    payload = _json_for_script({"report": report, "bars": bars})
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="Hindsight {_esc(report['hindsight_version'])}">
<title>{_esc(title)} · Hindsight report</title>
<style>{STYLE}</style>
</head>
<body data-rendered="false">
<header>
  <h1 id="report-title">{_esc(title)}</h1>
  <div class="sub">{_esc(run['kind'])} · {_esc(run.get('interval') or '?')} · {_esc(period)} ·
    dataset {_esc(dataset_line)} · Hindsight {_esc(report['hindsight_version'])} · generated {_esc(report['generated_at'])}</div>
</header>
<main>
  <div id="report-error" class="notes" role="alert"></div>
  {f'<div class="notes">{notes}</div>' if notes else ''}
  <section><h2>Metrics</h2><div class="metrics">{_metric_cards(run.get('metrics') or {})}</div></section>
  <section><h2>Equity vs buy-and-hold <label class="toolbar"><input type="checkbox" id="log-scale"> log scale</label></h2>
    <div class="chart" id="chart-equity"></div></section>
  <section><h2>Underwater (drawdown below the running peak)</h2><div class="chart small" id="chart-underwater"></div>
    <h2 style="margin-top:.8rem">Worst drawdowns</h2><div id="report-drawdowns-box"></div></section>
  <section><h2>{calendar_title}</h2><div class="chart" id="chart-calendar"></div></section>
  <section><h2>Price and trades</h2><div class="chart" id="chart-price"></div></section>
  <div class="grid2">
    <section><h2>Rolling Sharpe ratio ({report['rolling_sharpe']['window']} days)</h2>
      <div class="chart small" id="chart-rolling"></div></section>
    <section><h2>Exposure</h2><p id="report-exposure">{_esc(exposure_text)}</p>
      <div class="chart exposure" id="chart-exposure"></div></section>
    <section><h2>Trade returns ({report['trades_total']:,} trades)</h2><div class="chart small" id="chart-trades"></div></section>
    <section><h2>Daily returns ({report['daily_returns']['count']:,} days)</h2>
      <div class="chart small" id="chart-daily"></div></section>
  </div>
  <section style="margin-top:1rem"><h2>Run</h2><dl class="kv">{_kv([
        ("run", f"#{run['id']} ({run['kind']})"), ("ticker", run["ticker"]), ("strategy", run["strategy"]),
        *simple, ("cash", run["cash"]), ("direction", run["direction"]), ("fill", run["fill"]),
        ("commission %", run["commission_pct"]), ("slippage %", run["slippage_pct"]), ("bars", run["bars"]),
        ("dataset", dataset_line), ("created", run.get("created_at")), ("replay of", run.get("replay_of")),
        ("Hindsight", report["hindsight_version"]),
    ])}</dl>{''.join(f'<h3>{_esc(k)}</h3><pre>{_esc(json.dumps(v, indent=2))}</pre>' for k, v in nested.items())}</section>
</main>
<footer>Hindsight {_esc(report['hindsight_version'])} · a self-contained report: it makes no request to anywhere.</footer>
<script type="application/json" id="report-data">{payload}</script>
<script type="application/octet-stream" id="plotly-gz">{plotly_packed()}</script>
<script type="module">
{charts_js}
{BOOT}
</script>
</body>
</html>
"""
