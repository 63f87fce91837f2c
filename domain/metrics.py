"""Metric definitions and the score: what every backtest and sweep reports, once.

Metrics (P = ``bars.periods_per_year``: 365 continuous, 252 sessions)
-------------------------------------------------------------------
Equity is marked to market at every bar's close (the last bar's equity is after
the final close-out).

- daily returns: equity at the last bar of each local day (``bars.timezone``),
  r_d = E_d / E_{d-1} - 1 with E_0 = initial cash — one return per day with bars.
- ``total_return_pct`` = (E_final / initial_cash - 1) x 100.
- ``annualized_return`` = ((E_final / initial_cash)^(P / n_days) - 1) x 100 (CAGR).
- ``sharpe_ratio`` = mean(r) / std(r, ddof=1) x sqrt(P); null with < 2 days or std 0.
- ``sortino_ratio`` = mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(P); null with no
  losing day (or < 2 days).
- ``max_drawdown_pct`` = min over bars of (E_t / peak_t - 1) x 100 <= 0, the peak
  starting at the initial cash.
- trades: an entry and its exit; pnl = equity after the exit - equity committed at
  the entry (fees included). ``win_rate_pct`` = share of trades with pnl > 0;
  ``profit_factor`` = gross profit / |gross loss| (null without a losing trade);
  ``trades_per_month`` = trades / (span in days / 30.4375);
  ``avg_trade_duration`` = mean (exit bar ts - entry fill bar ts), "5.2 days" or
  "3.4 hours" (below one day); "0.0 days" without trades.

Score
-----
``score = sharpe_ratio x (1 + max_drawdown_pct / 100)``

The Sharpe ratio discounted by the depth of the worst drawdown: a combination
that earned its Sharpe while once losing 40% from a peak keeps 60% of it, one
that never fell below its peak keeps all of it. Sharpe alone rewards smooth
daily returns but is blind to path risk (a long losing streak made of small
days); multiplying by the fraction of the peak that survived the worst
drawdown penalises exactly that, keeps the sign of the Sharpe ratio, needs no
tuning constant, and stays comparable across instruments and periods. The score
is null when the Sharpe ratio is null. Sweeps rank combinations by it,
descending.

Undefined values are ``None``, never NaN or infinity.
"""

from __future__ import annotations

import math
from typing import Any

from domain.market import DAYS_PER_MONTH, NS_PER_DAY

NS_PER_HOUR = 3_600 * 1_000_000_000


def finite(x: float | None) -> float | None:
    """x as a float, or None when it is None, NaN or infinite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def format_duration(mean_ns: float) -> str:
    """ "5.2 days" at one day or more, else "3.4 hours"."""
    days = mean_ns / NS_PER_DAY
    if days >= 1.0:
        return f"{days:.1f} days"
    return f"{mean_ns / NS_PER_HOUR:.1f} hours"


def combo_metrics(
    *,
    periods_per_year: float,
    span_days: float,
    growth: float,
    ndays: int,
    mean: float,
    m2: float,
    dsq: float,
    max_drawdown_pct: float | None,
    ntrades: int,
    nwins: int,
    gross_profit: float,
    gross_loss: float,
    duration_ns: float,
) -> dict[str, Any]:
    """One combination's metrics (the module docstring), ``METRIC_KEYS`` from ``score`` on.

    From what the kernel accumulates: the final equity over the initial cash (``growth``),
    the daily returns' count, running mean and sum of squared deviations (``m2``) and sum of
    squared losses (``dsq``), the max drawdown in percent, and the trades' count, winners,
    gross profit and loss (<= 0) and total duration in ns.
    """
    sqrt_p = math.sqrt(periods_per_year)
    sharpe = None
    if ndays >= 2 and m2 > 0.0:
        sharpe = finite(mean / math.sqrt(m2 / (ndays - 1)) * sqrt_p)
    sortino = None
    if ndays >= 2 and dsq > 0.0:
        sortino = finite(mean / math.sqrt(dsq / ndays) * sqrt_p)
    annualized = None
    if ndays >= 1:
        if growth > 0.0:
            try:
                annualized = finite((growth ** (periods_per_year / ndays) - 1.0) * 100.0)
            except OverflowError:
                annualized = None
        elif growth == 0.0:
            annualized = -100.0
    score = None
    if sharpe is not None and max_drawdown_pct is not None:
        score = finite(sharpe * (1.0 + max_drawdown_pct / 100.0))
    return {
        "score": score,
        "sharpe_ratio": sharpe,
        "sortino_ratio": sortino,
        "total_return_pct": finite((growth - 1.0) * 100.0),
        "annualized_return": annualized,
        "max_drawdown_pct": max_drawdown_pct,
        "win_rate_pct": finite(nwins / ntrades * 100.0) if ntrades else None,
        "profit_factor": finite(gross_profit / -gross_loss) if gross_loss < 0.0 else None,
        "total_trades": int(ntrades),
        "trades_per_month": finite(ntrades / (span_days / DAYS_PER_MONTH)) if span_days > 0 else None,
        "avg_trade_duration": format_duration(duration_ns / ntrades) if ntrades else "0.0 days",
    }


def day_end_returns(initial_cash: float, day_pnls: list[float]) -> list[float]:
    """The daily returns ``day_by_day_metrics`` uses (its Sharpe's series): E_d / E_{d-1} - 1
    with E_d = cash + sum(pnl_1..d), 0 after a non-positive equity."""
    equity = float(initial_cash)
    out: list[float] = []
    for pnl in day_pnls:
        before, equity = equity, equity + float(pnl)
        out.append(equity / before - 1.0 if before > 0.0 else 0.0)
    return out


def day_by_day_metrics(
    *,
    initial_cash: float,
    day_pnls: list[float],
    periods_per_year: float,
    span_days: float,
    ntrades: int,
    nwins: int,
    gross_profit: float,
    gross_loss: float,
    duration_ns: float,
) -> dict[str, Any]:
    """A day-by-day run's metrics, defined as above on its day-end equity.

    Every day of such a run squares off, so its equity at a day's end is the initial cash
    plus the P&L of the days so far: E_d = cash + sum(pnl_1..d). The daily returns are
    E_d / E_{d-1} - 1 (E_0 = cash), one per trading day of the range, trades or not; the
    max drawdown is over those day-end equities (intraday dips are not seen).
    """
    cash = float(initial_cash)
    equity, peak, worst = cash, cash, 0.0
    n, mean, m2, dsq = 0, 0.0, 0.0, 0.0
    for pnl in day_pnls:
        before, equity = equity, equity + float(pnl)
        r = equity / before - 1.0 if before > 0.0 else 0.0
        n += 1
        delta = r - mean
        mean += delta / n
        m2 += delta * (r - mean)
        if r < 0.0:
            dsq += r * r
        peak = max(peak, equity)
        if peak > 0.0:
            worst = min(worst, equity / peak - 1.0)
    return combo_metrics(
        periods_per_year=periods_per_year,
        span_days=span_days,
        growth=equity / cash,
        ndays=n,
        mean=mean,
        m2=m2,
        dsq=dsq,
        max_drawdown_pct=worst * 100.0,
        ntrades=ntrades,
        nwins=nwins,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        duration_ns=duration_ns,
    )
