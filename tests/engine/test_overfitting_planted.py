"""Planted cases: the overfitting statistics of real sweeps tell noise from a real edge.

Twenty seeds each, all of them (none picked), through the engine's sweep with its
statistics (`run_sweep_with_statistics`), the DSR taken for the first row of `best`
as a user reads it (score descending, undefined last, grid order; at least
`min_trades` trades):

- pure noise: a geometric Brownian motion without drift (E[S_t] = S_0; daily σ 1 %),
  1,500 daily bars: the median PBO is at least 0.3 and the median DSR under 0.8;
- a strong planted trend: the same motion whose drift alternates between +0.4 % and
  -0.4 % a day every 150 days (daily σ 0.8 %), so a long-only crossover that follows
  the trend earns in every up-leg: DSR above 0.95 and PBO under 0.1 for every seed.

`pytest -s` prints the distributions (min / median / max).
"""

from __future__ import annotations

import numpy as np

from domain import overfitting as of
from domain.sweep import sweep_combos
from services.engine.bars import Bars
from services.engine.sweep import run_sweep_with_statistics

NS_DAY = 86_400 * 1_000_000_000
DAYS = 1_500
SEEDS = range(20)
GRID = sweep_combos(5, 50, 10, 150, 5)  # 245 SMA crossovers
MIN_TRADES = 10


def _bars(log_returns: np.ndarray) -> Bars:
    close = 100.0 * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[100.0], close[:-1]])
    ts = 1_577_836_800 * 1_000_000_000 + np.arange(close.shape[0], dtype=np.int64) * NS_DAY
    return Bars(ts, open_, np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999, close,
                np.ones(close.shape[0]), timezone="UTC", calendar="continuous")


def noise(seed: int, sigma: float = 0.01) -> Bars:
    rng = np.random.default_rng(seed)
    return _bars(-sigma * sigma / 2 + sigma * rng.standard_normal(DAYS))


def planted_trend(seed: int, drift: float = 0.004, sigma: float = 0.008, period: int = 300) -> Bars:
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi)
    trend = drift * np.sign(np.sin(2 * np.pi * np.arange(DAYS) / period + phase))
    return _bars(trend - sigma * sigma / 2 + sigma * rng.standard_normal(DAYS))


def best_first(rows: list[dict], min_trades: int) -> int | None:
    """The grid index of `best`'s first row."""
    eligible = [(i, r) for i, r in enumerate(rows) if r["total_trades"] >= min_trades]
    if not eligible:
        return None
    return min(eligible, key=lambda ir: (ir[1]["score"] is None, -(ir[1]["score"] or 0.0), ir[0]))[0]


def _statistics(make) -> tuple[np.ndarray, np.ndarray]:
    dsr, pbo = [], []
    for seed in SEEDS:
        out = run_sweep_with_statistics(make(seed), "SMA", GRID, pbo_blocks=of.PBO_BLOCKS_DEFAULT)
        view = of.overfitting_view(out.statistics, best_first(out.rows, MIN_TRADES))
        assert view["reason"] is None and view["trials"] == len(GRID) and view["days"] == DAYS
        dsr.append(view["deflated_sharpe_ratio"])
        pbo.append(view["pbo"])
    return np.array(dsr, dtype=float), np.array(pbo, dtype=float)


def _show(name: str, dsr: np.ndarray, pbo: np.ndarray) -> None:
    def three(x: np.ndarray) -> str:
        return f"{x.min():.4f} / {np.median(x):.4f} / {x.max():.4f}"

    print(f"\n{name} ({len(SEEDS)} seeds, {len(GRID)} trials, {DAYS} days): "
          f"DSR min/median/max {three(dsr)}; PBO {three(pbo)}")


def test_noise_looks_overfit() -> None:
    dsr, pbo = _statistics(noise)
    _show("noise (GBM, no drift)", dsr, pbo)
    assert np.median(pbo) >= 0.3
    assert np.median(dsr) < 0.8


def test_a_planted_trend_is_a_real_edge() -> None:
    dsr, pbo = _statistics(planted_trend)
    _show("planted trend", dsr, pbo)
    assert np.all(dsr > 0.95), dsr
    assert np.all(pbo < 0.1), pbo
