"""domain.walkforward: the fold bounds, the rules of the windows, the stitched curve."""

from __future__ import annotations

import math

import pytest

from domain.walkforward import FOLDS_MAX, OutOfSample, Windows, efficiency, fold_count, folds, folds_problems, stitch


def test_rolling_folds_follow_the_definition() -> None:
    cut = folds(2000, Windows(500, 250, 250))
    # s_k = k * step, train [s_k, s_k + train), test [s_k + train, s_k + train + test), test inside the data
    assert [(f.train_start, f.train_end, f.test_start, f.test_end) for f in cut] == [
        (250 * k, 250 * k + 500, 250 * k + 500, 250 * k + 750) for k in range(6)
    ]
    assert fold_count(2000, Windows(500, 250, 250)) == 6
    # exactly fitting: the last test window ends at the last bar
    assert folds(750, Windows(500, 250, 250))[-1].test_end == 750


def test_anchored_folds_train_from_the_first_bar() -> None:
    cut = folds(1000, Windows(300, 100, 150, anchored=True))
    assert [(f.train_start, f.train_end, f.test_start, f.test_end) for f in cut] == [
        (0, 300, 300, 400), (0, 450, 450, 550), (0, 600, 600, 700), (0, 750, 750, 850), (0, 900, 900, 1000)
    ]


@pytest.mark.parametrize("windows, field", [
    (Windows(0, 10, 10), "train_bars"),
    (Windows(10, -1, 10), "test_bars"),
    (Windows(10, 10, 0), "step_bars"),
    (Windows(10, 1, 10), "test_bars"),
    (Windows(10, 10, 10, objective="luck"), "objective"),
    (Windows(900, 200, 10), "train_bars"),  # longer than the data
    (Windows(2, 2, 1), "step_bars"),  # 997 folds
])
def test_problems(windows: Windows, field: str) -> None:
    problems = folds_problems(1000, windows)
    assert [p.field for p in problems] == [field]
    assert folds_problems(1000, Windows(100, 50, 50)) == []
    assert fold_count(1000, Windows(2, 2, 1)) > FOLDS_MAX


def test_stitched_curve_compounds_fold_to_fold() -> None:
    day = 86_400 * 10**9
    a = OutOfSample([day, 2 * day], [10_500.0, 11_000.0], [1.1, 1.2], 2, 1, 1500.0, -500.0, 4 * day)
    b = OutOfSample([3 * day, 4 * day], [9_000.0, 9_900.0], [0.9, 1.0], 1, 0, 0.0, -100.0, day)
    out = stitch([a, b], 10_000.0, 365)
    eq = [p["equity"] for p in out["equity"]]
    assert eq == pytest.approx([10_500.0, 11_000.0, 9_900.0, 10_890.0])
    assert [p["buy_and_hold"] for p in out["equity"]] == pytest.approx([11_000.0, 12_000.0, 10_800.0, 12_000.0])
    m = out["metrics"]
    assert m["total_return_pct"] == pytest.approx(8.9)
    returns = [0.05, 11_000 / 10_500 - 1, 9_900 / 11_000 - 1, 0.1]
    mean = sum(returns) / 4
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / 3)
    assert m["sharpe_ratio"] == pytest.approx(mean / sd * math.sqrt(365))
    assert m["max_drawdown_pct"] == pytest.approx((9_900 / 11_000 - 1) * 100)
    assert m["total_trades"] == 3 and m["win_rate_pct"] == pytest.approx(100 / 3)
    # fold b's losses are in the equity of its start: 1.1 x
    assert m["profit_factor"] == pytest.approx(1500.0 / (500.0 + 110.0))


def test_efficiency() -> None:
    assert efficiency([(20.0, 10.0), (10.0, -4.0), (None, 3.0)]) == pytest.approx(3.0 / 15.0)
    assert efficiency([]) is None
    assert efficiency([(5.0, 1.0), (-5.0, 1.0)]) is None
