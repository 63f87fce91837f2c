"""Texts of the OpenAPI description (`/docs`): the score formula and the metrics."""

from __future__ import annotations

from domain.overfitting import DEFINITIONS
from domain.rules import parameters as rule_parameters
from domain.walkforward import FOLDS_MAX

SCORE_DOC = """\
**score** = `sharpe_ratio × (1 + max_drawdown_pct / 100)`: the Sharpe ratio discounted
by the depth of the worst drawdown (`max_drawdown_pct` is ≤ 0, so a −20 % drawdown keeps
80 % of the Sharpe ratio and a −100 % one leaves 0). It is `null` when the Sharpe ratio is
undefined (no variation in daily returns, or fewer than two of them).

`best` sorts combinations by score, descending, `null` scores last, and leaves out every
combination with fewer than the sweep's `min_trades` trades; how many were left out is
`excluded_below_min_trades`."""

METRICS_DOC = """\
Metrics are computed on the equity curve marked to market every bar:

* `total_return_pct`: final equity / initial cash − 1, in percent.
* `annualized_return`: CAGR in percent.
* `sharpe_ratio`: mean / standard deviation (ddof = 1) of daily returns × √P.
* `sortino_ratio`: mean of daily returns / √mean(min(r, 0)²) × √P.
* P = 252 for session calendars, 365 for continuous (24/7) ones, from the dataset.
* `max_drawdown_pct`: the deepest fall below the running peak of equity, in percent (≤ 0).
* `win_rate_pct`: trades with pnl > 0 / closed trades, in percent.
* `profit_factor`: gross profit / |gross loss|; `null` when there is no loss.
* `total_trades`, `trades_per_month` (per 30.4375 days), `avg_trade_duration` (e.g. "5.2 days").

Signals are computed on a bar's close and filled at the next bar's open (`fill=next_open`,
the default) or at the signal bar's close (`fill=close`); commission and slippage are
percentages of traded value on entry and on exit; a position still open at the end is
closed at the last close and counted as a trade. Undefined values are `null`, never NaN."""

OVERFITTING_DOC = f"""\
`best` also tells how much its first row is worth after the grid's trials: with hundreds
of combinations, the best in-sample Sharpe ratio is mostly luck. `deflated_sharpe_ratio`
(DSR) is the probability that its true Sharpe ratio beats the best that N trials without
skill would show (SR₀); `pbo` is the probability that the in-sample best is below the
median out of sample (Bailey & López de Prado, 2014; Bailey, Borwein, López de Prado &
Zhu, 2015). The webhook and the email of a completed sweep carry both.

{DEFINITIONS}"""

RULE_SWEEP_DOC = f"""\
A rule strategy may declare `"parameters": {{"rsi_len": 14, "oversold": 30}}` (name: default
number) and use `{{rsi_len}}` anywhere in a condition and as a stop-loss or target `value`
(`"value": "{{sl}}"`). A backtest runs it with the defaults. Every placeholder must name a
declared parameter, and the defaults must make the strategy valid (`RSI({{rsi_len}})` needs a
whole number); a default written as a whole number (`14`) makes the parameter a whole-number
one. At most {rule_parameters.MAX_PARAMETERS} parameters.

`POST /api/v1/strategies/{{id}}/sweep` with `{{"parameters": {{"rsi_len": [10, 20, 2], "oversold":
[20, 35, 5]}}, "start_date", "end_date", "min_trades"}}` runs every combination of the ranges
(`[start, stop, step]`, inclusive) day by day, exactly as a day-by-day backtest of the
substituted strategy, and ranks them in `best`'s shape (each row with its `parameters`)
with the overfitting statistics on the combinations' day-end returns. Every placeholder the
strategy uses needs a range; a range over an undeclared name, of the wrong type, that makes
the strategy invalid, or a grid of more than **{rule_parameters.MAX_SWEEP_COMBINATIONS}
combinations** is a 400, and nothing is queued."""

WALKFORWARD_DOC = f"""\
A walk-forward optimization re-chooses a sweep's parameters on a rolling training window
and judges each choice on the data right after it, which the sweep never saw.

* **Folds.** With n bars, fold k (k = 0, 1, ...) trains on bars [sₖ, sₖ + train_bars)
  (`anchored`: [0, sₖ + train_bars)), sₖ = k × step_bars, and tests on
  [sₖ + train_bars, sₖ + train_bars + test_bars), for every k whose test window ends within
  the data. Bounds are bar indices of the dataset, `*_end` exclusive; `*_time` are the
  timestamps of the window's first and last bars. Windows longer than the data, or more
  than {FOLDS_MAX} folds, are a 400 and nothing is queued.
* **Windows.** Every window, training or test, is simulated the same way: indicators use
  all bars up to each decision, including those before the window; decisions start at the
  window's first bar, flat; a position still open at the window's end closes at its last
  close. Metrics (`in_sample`, `out_of_sample`) are those of that window alone, defined as
  everywhere (below), with `total_return_pct`.
* **Choice.** The training sweep chooses the combination with the highest `objective`
  among those with at least the sweep's `min_trades` trades (ties: the smaller fast period,
  then the smaller slow one); it is then run on the test window. A fold where no
  combination qualifies has `parameters: null` and stays flat in its test window.
* **Stitched out-of-sample equity.** The test windows chained in fold order, compounded:
  each starts at the equity the previous one ended with. Its points are the test windows'
  day ends; its `metrics` are the usual ones over those points (daily returns between
  consecutive points, max drawdown over them); `buy_and_hold` is holding the instrument
  over the same windows, chained the same way.
* **Walk-forward efficiency** = mean out-of-sample CAGR / mean in-sample CAGR over the
  folds that chose parameters; `null` without such folds or when the in-sample mean is 0.

The folds are independent units of work: engine replicas take them in parallel; the job's
stream reports each fold as it is stored."""

APP_DESCRIPTION = f"""\
Hindsight: backtests and parameter sweeps over historical OHLCV bars.

**Authentication**: `X-API-Key: <key>`, `Authorization: Bearer <key>`, or the session
cookie set by `POST /api/v1/auth/login`. In standalone mode bound to loopback, a request
without any credentials acts as the dev tenant (unless `HINDSIGHT_REQUIRE_AUTH=1`).

**Errors** are JSON: `{{"error": {{"code", "message", "details"}}}}`. A 503 carries
`Retry-After`.

## Score

{SCORE_DOC}

## Metrics

{METRICS_DOC}

## Overfitting statistics of a sweep

{OVERFITTING_DOC}

## Sweeps of a rule strategy's parameters

{RULE_SWEEP_DOC}

## Walk-forward optimization

{WALKFORWARD_DOC}
"""


def content(media_type: str, description: str, schema: dict | None = None, **extra: object) -> dict:
    """An OpenAPI response of a non-JSON media type (SSE, CSV, ZIP, ...)."""
    return {"description": description, "content": {media_type: {"schema": schema or {"type": "string"}}}, **extra}


EVENT_STREAM = "text/event-stream"
NO_MORE_EVENTS = {"description": "Resumed past the last event of an ended job: nothing more will come (an EventSource stops)."}
