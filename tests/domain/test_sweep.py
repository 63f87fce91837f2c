"""The sweep grid and the limits of a sweep request (domain/sweep.py)."""

from __future__ import annotations

import itertools

import pytest

from domain import sweep
from domain.sweep import SweepSpec, spec_problems, sweep_combos


def test_the_seed_example_has_eight_pairs() -> None:
    assert sweep_combos(10, 20, 20, 30, 5) == [(10, 20), (10, 25), (10, 30), (15, 20), (15, 25), (15, 30),
                                               (20, 25), (20, 30)]


@pytest.mark.parametrize("fmin,fmax,smin,smax,step", [(1, 9, 2, 12, 1), (5, 50, 10, 100, 7), (3, 3, 4, 4, 2)])
def test_combos_are_every_fast_below_slow_on_the_grid(fmin, fmax, smin, smax, step) -> None:
    want = [(f, s) for f, s in itertools.product(range(fmin, fmax + 1, step), range(smin, smax + 1, step)) if f < s]
    assert sweep_combos(fmin, fmax, smin, smax, step) == want


def _spec(**kw) -> SweepSpec:
    return SweepSpec(**{"ticker": "BTC-USD", "fast_range": (10, 20), "slow_range": (20, 30), "step": 5, **kw})


def test_a_valid_spec_has_no_problems_and_counts_its_combinations() -> None:
    assert spec_problems(_spec()) == []
    assert _spec().combinations == 8


@pytest.mark.parametrize(
    "change,field",
    [
        ({"ticker": "A B"}, "ticker"),
        ({"fast_range": (0, 20)}, "fast_range"),
        ({"slow_range": (20, sweep.PERIOD_MAX + 1)}, "slow_range"),
        ({"step": sweep.STEP_MAX + 1}, "step"),
        ({"min_trades": sweep.MIN_TRADES_MIN - 1}, "min_trades"),
        ({"strategy_type": "WMA"}, "strategy_type"),
        ({"interval": "7h"}, "interval"),
        ({"direction": "up"}, "direction"),
        ({"fill": "open"}, "fill"),
        ({"commission_pct": float("nan")}, "commission_pct"),
        ({"slippage_pct": 11.0}, "slippage_pct"),
        ({"initial_cash": 0.0}, "initial_cash"),
        ({"fast_range": (30, 40)}, "fast_range"),
    ],
)
def test_each_rule_names_its_field(change: dict, field: str) -> None:
    assert {p.field for p in spec_problems(_spec(**change))} == {field}
