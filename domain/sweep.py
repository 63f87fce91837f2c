"""Parameter sweeps of the built-in strategies: the grid and the limits of a request.

The moving-average crossovers sweep (fast, slow) pairs; ``rsi_reversion`` (strategy_type
``RSI``) sweeps its period (``period_range`` on ``step``) and its oversold and overbought
thresholds (``oversold_range``, ``overbought_range`` on ``threshold_step``).

One definition, used by the gateway (to answer 400 field by field and count the
combinations at submission), results (its defensive check of every job it
stores) and the engine (to run the grid).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from domain.backtest_spec import DIRECTIONS, FILLS, SWEEP_STRATEGY, strategy_name
from domain.market import INTERVALS, interval_message, ticker_problem
from domain.overfitting import PBO_BLOCKS_DEFAULT, pbo_blocks_problem

# The crossovers sweep (fast, slow); RSI (rsi_reversion) sweeps its period and thresholds.
CROSSOVER_TYPES: Final = ("SMA", "EMA", "MACD")
STRATEGY_TYPES: Final = (*CROSSOVER_TYPES, "RSI")
CONFIG_PATHS: Final = ("minimum", "standard")

PERIOD_MIN: Final = 1
PERIOD_MAX: Final = 500
STEP_MIN: Final = 1
STEP_MAX: Final = 50
MIN_TRADES_MIN: Final = 10
MIN_TRADES_MAX: Final = 1000
MIN_TRADES_DEFAULT: Final = 50
COST_PCT_MAX: Final = 10.0
CASH_MAX: Final = 1e15
INITIAL_CASH_DEFAULT: Final = 10_000.0
TIMEOUT_SECONDS_MIN: Final = 1
TIMEOUT_SECONDS_MAX: Final = 86_400
TIMEOUT_SECONDS_DEFAULT: Final = 3_600


def sweep_strategy_type(value: object) -> str | None:
    """The sweep's strategy type a name means, or None: `SMA`, `sma`, `sma_crossover` (the
    backtests' name) and the backtests' aliases all mean `SMA`."""
    if not isinstance(value, str):
        return None
    if value.strip().upper() in STRATEGY_TYPES:
        return value.strip().upper()
    builtin = strategy_name(value)
    return next((t for t, name in SWEEP_STRATEGY.items() if name == builtin), None)


# rsi_reversion's sweep (strategy_type RSI): its period, oversold and overbought thresholds.
RSI_STRATEGY_TYPE: Final = "RSI"
RSI_PERIOD_MIN: Final = 2
THRESHOLD_MIN: Final = 0.0
THRESHOLD_MAX: Final = 100.0
THRESHOLD_STEP_MIN: Final = 0.1
THRESHOLD_STEP_DEFAULT: Final = 5.0
# Combinations of one RSI sweep: each is one pass of the kernel over the bars (its RSI
# series is shared by every combination of its period).
RSI_MAX_COMBINATIONS: Final = 5_000


def _inclusive(lo: float, hi: float, step: float) -> list[float]:
    """lo, lo + step, ... up to hi inclusive, rounded to 10 decimals (no 0.30000000000000004)."""
    count = int((hi - lo) / step + 1e-9) + 1 if hi >= lo and step > 0 else 0
    return [round(lo + i * step, 10) for i in range(count)]


def rsi_combos(
    period_range: tuple[int, int], step: int, oversold_range: tuple[float, float],
    overbought_range: tuple[float, float], threshold_step: float,
) -> list[tuple[int, float, float]]:
    """Every (period, oversold, overbought) of an RSI sweep with oversold < overbought: the
    periods on `step`, both thresholds on `threshold_step` from their range's min up to its
    max inclusive; period ascending, then oversold, then overbought."""
    periods = range(period_range[0], period_range[1] + 1, step)
    lows = _inclusive(*oversold_range, threshold_step)
    highs = _inclusive(*overbought_range, threshold_step)
    return [(p, lo, hi) for p in periods for lo in lows for hi in highs if lo < hi]


def rsi_problems(
    period_range: tuple[int, int], step: int, oversold_range: tuple[float, float],
    overbought_range: tuple[float, float], threshold_step: float,
) -> list[Problem]:
    """Every rule an RSI sweep's grid breaks (empty: it may run)."""
    out: list[Problem] = []
    lo, hi = period_range
    if lo < RSI_PERIOD_MIN or hi > PERIOD_MAX or lo > hi:
        out.append(Problem("period_range", f"[min, max] with {RSI_PERIOD_MIN} <= min <= max <= {PERIOD_MAX}"))
    if not STEP_MIN <= step <= STEP_MAX:
        out.append(Problem("step", f"must be an integer from {STEP_MIN} to {STEP_MAX}"))
    for name, (a, b) in (("oversold_range", oversold_range), ("overbought_range", overbought_range)):
        if not (THRESHOLD_MIN <= a <= b <= THRESHOLD_MAX):
            out.append(Problem(name, f"[min, max] with {THRESHOLD_MIN:g} <= min <= max <= {THRESHOLD_MAX:g}"))
    if not THRESHOLD_STEP_MIN <= threshold_step <= THRESHOLD_MAX:
        out.append(Problem("threshold_step", f"must be a number from {THRESHOLD_STEP_MIN:g} to {THRESHOLD_MAX:g}"))
    if out:
        return out
    # Counted, not listed: a grid over the limit may be far too large to enumerate.
    highs = _inclusive(*overbought_range, threshold_step)
    pairs = sum(len(highs) - bisect.bisect_right(highs, lo) for lo in _inclusive(*oversold_range, threshold_step))
    n = len(range(period_range[0], period_range[1] + 1, step)) * pairs
    if n == 0:
        out.append(Problem("oversold_range", "no oversold < overbought combination on this grid"))
    elif n > RSI_MAX_COMBINATIONS:
        out.append(Problem("threshold_step", f"the grid has {n} combinations; at most {RSI_MAX_COMBINATIONS}"))
    return out


def sweep_combos(fast_min: int, fast_max: int, slow_min: int, slow_max: int, step: int) -> list[tuple[int, int]]:
    """Every (fast, slow) pair on the step grid of both ranges with fast < slow.

    The seed's example: fast [10, 20], slow [20, 30], step 5 gives 8 pairs
    (10/20 ... 20/30 without 20/20).
    """
    fasts = range(fast_min, fast_max + 1, step)
    slows = range(slow_min, slow_max + 1, step)
    return [(f, s) for f in fasts for s in slows if f < s]


@dataclass(frozen=True)
class Problem:
    """One broken rule: the request field it is about and what is wrong."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def range_problem(lo: int, hi: int) -> str | None:
    """Why [lo, hi] is not a period range, or None."""
    if lo < PERIOD_MIN:
        return f"min must be at least {PERIOD_MIN}"
    if hi > PERIOD_MAX:
        return f"max must be at most {PERIOD_MAX}"
    if lo > hi:
        return "min must not exceed max"
    return None


def grid_problems(fast: Sequence[int], slow: Sequence[int], step: int) -> list[Problem]:
    """The rules between the fields of a grid (each field already valid on its own)."""
    out: list[Problem] = []
    if not fast[0] < slow[0]:
        out.append(Problem("fast_range", "Fast range min must be less than slow range min"))
    if not fast[1] < slow[1]:
        out.append(Problem("fast_range", "Fast range max must be less than slow range max"))
    if not out and not sweep_combos(fast[0], fast[1], slow[0], slow[1], step):
        out.append(Problem("step", "no valid fast < slow combination on this grid"))
    return out


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: the grid, the dataset and the simulation's settings."""

    ticker: str
    fast_range: tuple[int, int]
    slow_range: tuple[int, int]
    step: int
    min_trades: int = MIN_TRADES_DEFAULT
    strategy_type: str = "SMA"
    interval: str = ""
    direction: str = "long"
    fill: str = "next_open"
    commission_pct: float = 0.0
    slippage_pct: float = 0.0
    initial_cash: float = INITIAL_CASH_DEFAULT
    # CSCV blocks of the overfitting statistics (domain.overfitting)
    pbo_blocks: int = PBO_BLOCKS_DEFAULT
    # strategy_type RSI: the period's range (on `step`) and the thresholds' (on threshold_step)
    period_range: tuple[int, int] = (0, 0)
    oversold_range: tuple[float, float] = (0.0, 0.0)
    overbought_range: tuple[float, float] = (0.0, 0.0)
    threshold_step: float = THRESHOLD_STEP_DEFAULT

    @property
    def is_rsi(self) -> bool:
        return self.strategy_type == RSI_STRATEGY_TYPE

    def rsi_grid(self) -> list[tuple[int, float, float]]:
        return rsi_combos(self.period_range, self.step, self.oversold_range, self.overbought_range, self.threshold_step)

    @property
    def combinations(self) -> int:
        if self.is_rsi:
            return len(self.rsi_grid())
        return len(sweep_combos(*self.fast_range, *self.slow_range, self.step))


def _choice(value: str, choices: Sequence[str]) -> str | None:
    return None if value in choices else f"must be one of {', '.join(choices)}"


def spec_problems(spec: SweepSpec) -> list[Problem]:
    """Every rule a sweep breaks (empty: it may run). The gateway's request model and
    results' defensive check both call this, so they cannot disagree."""
    out: list[Problem] = []

    def check(name: str, problem: str | None) -> None:
        if problem is not None:
            out.append(Problem(name, problem))

    check("ticker", ticker_problem(spec.ticker))
    if not spec.is_rsi:
        check("fast_range", range_problem(*spec.fast_range))
        check("slow_range", range_problem(*spec.slow_range))
    if not STEP_MIN <= spec.step <= STEP_MAX:
        check("step", f"must be an integer from {STEP_MIN} to {STEP_MAX}")
    if not MIN_TRADES_MIN <= spec.min_trades <= MIN_TRADES_MAX:
        check("min_trades", f"must be an integer from {MIN_TRADES_MIN} to {MIN_TRADES_MAX}")
    check("strategy_type", _choice(spec.strategy_type, STRATEGY_TYPES))
    if spec.interval and spec.interval not in INTERVALS:
        check("interval", interval_message())
    check("direction", _choice(spec.direction, DIRECTIONS))
    check("fill", _choice(spec.fill, FILLS))
    for name in ("commission_pct", "slippage_pct"):
        if not 0 <= getattr(spec, name) <= COST_PCT_MAX:
            check(name, f"must be a number from 0 to {COST_PCT_MAX:g}")
    if not 0 < spec.initial_cash <= CASH_MAX:
        check("initial_cash", "must be a number greater than 0")
    check("pbo_blocks", pbo_blocks_problem(spec.pbo_blocks))
    if not out and spec.is_rsi:
        out += [p for p in rsi_problems(spec.period_range, spec.step, spec.oversold_range, spec.overbought_range,
                                        spec.threshold_step) if p.field != "step"]
    elif not out:
        out += grid_problems(spec.fast_range, spec.slow_range, spec.step)
    return out
