"""domain.overfitting against independent implementations: the DSR paper's worked example,
PSR/DSR written here from the issue's formulas with scipy, and a brute-force CSCV."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from domain import overfitting as of

EULER = 0.5772156649015329


# ---------------------------------------------------------------- references (scipy, not our code)


def ref_sharpe(r: np.ndarray) -> float:
    sd = np.std(r, ddof=1)
    return 0.0 if sd == 0 else float(np.mean(r) / sd)


def ref_psr(sr: float, skew: float, kurt: float, t: int, bench: float) -> float:
    return float(stats.norm.cdf((sr - bench) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)))


def ref_sr0(v: float, n: int) -> float:
    return math.sqrt(v) * ((1 - EULER) * stats.norm.ppf(1 - 1 / n) + EULER * stats.norm.ppf(1 - 1 / (n * math.e)))


def ref_cscv(r: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """CSCV by the book: concatenate the blocks of each half, Sharpe of every column,
    scipy's average ranks out of sample."""
    t, n = r.shape
    size = t // s
    kept = r[t - size * s:]
    blocks = [kept[i * size:(i + 1) * size] for i in range(s)]
    logits = []
    for ins in combinations(range(s), s // 2):
        outs = [b for b in range(s) if b not in ins]
        r_in = np.concatenate([blocks[b] for b in ins])
        r_out = np.concatenate([blocks[b] for b in outs])
        sr_in = [ref_sharpe(r_in[:, j]) for j in range(n)]
        sr_out = [ref_sharpe(r_out[:, j]) for j in range(n)]
        best = max(range(n), key=lambda j: (sr_in[j], -j))  # the first maximum in grid order
        omega = stats.rankdata(sr_out, method="average")[best] / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
    logits_arr = np.array(logits)
    return float(np.mean(logits_arr <= 0)), logits_arr


# ---------------------------------------------------------------- PSR, SR0, DSR


def test_the_papers_worked_example() -> None:
    """Bailey & López de Prado (2014), the numerical example: the best of N = 100 trials has an
    annualised SR of 2.5 over T = 1250 daily returns (5 years of 250 days), skewness -3,
    kurtosis 10; the annualised variance of the trials' SR is 1/2. The paper (as recalled)
    finds SR0 ≈ 0.1132 per day and DSR ≈ 0.9004."""
    sr = 2.5 / math.sqrt(250)
    sr0 = of.expected_max_sharpe(0.5 / 250, 100)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = of.probabilistic_sharpe_ratio(sr, -3.0, 10.0, 1250, sr0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)
    assert dsr == pytest.approx(ref_psr(sr, -3.0, 10.0, 1250, ref_sr0(0.5 / 250, 100)), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_psr_and_dsr_equal_the_scipy_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t, n = 300 + 50 * seed, 12 + seed
    # skewed, fat-tailed daily returns with a little drift in some columns
    r = 0.01 * rng.standard_t(4, size=(t, n)) + rng.normal(0, 0.0005, n) + 0.002 * rng.exponential(1, (t, n))
    m = of.returns_moments(r)
    srs = np.array([ref_sharpe(r[:, j]) for j in range(n)])
    np.testing.assert_allclose(m.sharpe, srs, rtol=1e-12)
    np.testing.assert_allclose(m.skewness, stats.skew(r, bias=True), rtol=1e-10)
    np.testing.assert_allclose(m.kurtosis, stats.kurtosis(r, fisher=False, bias=True), rtol=1e-10)
    v = float(np.var(srs, ddof=1))
    top = int(np.argmax(srs))
    st = of.sweep_statistics(m, of.block_sums(r, 4), 4)
    assert st.sharpe_variance == pytest.approx(v, rel=1e-12)
    assert st.expected_max_sharpe == pytest.approx(ref_sr0(v, n), rel=1e-12)
    view = of.overfitting_view(st, top)
    sk, ku = float(stats.skew(r[:, top])), float(stats.kurtosis(r[:, top], fisher=False))
    assert view["probabilistic_sharpe_ratio"] == pytest.approx(ref_psr(srs[top], sk, ku, t, 0.0), rel=1e-10)
    assert view["deflated_sharpe_ratio"] == pytest.approx(ref_psr(srs[top], sk, ku, t, ref_sr0(v, n)), rel=1e-10)
    assert view["trials"] == n and view["days"] == t and view["reason"] is None


def test_a_flat_trial_has_sharpe_zero() -> None:
    r = np.zeros((50, 3))
    r[:, 1] = np.linspace(-0.01, 0.02, 50)
    m = of.returns_moments(r)
    assert m.sharpe[0] == 0.0 and m.skewness[0] == 0.0 and m.kurtosis[0] == 3.0
    assert of.probabilistic_sharpe_ratio(0.0, 0.0, 3.0, 50, 0.0) == 0.5


def test_psr_is_none_where_undefined() -> None:
    assert of.probabilistic_sharpe_ratio(0.1, 0.0, 3.0, 1, 0.0) is None
    # a two-point distribution reaches kurtosis = 1 + skew²: the variance term can vanish
    assert of.probabilistic_sharpe_ratio(2.0, 1.0, 2.0, 100, 0.0) is None


# ---------------------------------------------------------------- PBO by CSCV


def test_day_blocks_drop_the_first_rows() -> None:
    got = of.day_blocks(10, 4)
    assert got.tolist() == [-1, -1, 0, 0, 1, 1, 2, 2, 3, 3]
    assert of.day_blocks(3, 4).tolist() == [-1, -1, -1]


@pytest.mark.parametrize(("seed", "t", "n", "s"), [(0, 40, 6, 4), (1, 67, 9, 6), (2, 83, 5, 8), (3, 130, 20, 10)])
def test_cscv_equals_a_brute_force(seed: int, t: int, n: int, s: int) -> None:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, 0.01, (t, n))
    r[:, 2] = r[:, 1]  # a tie everywhere: in-sample the first wins, out of sample they share ranks
    r[:, n - 1] = 0.0  # never traded: Sharpe 0 in every split
    want_pbo, want_logits = ref_cscv(r, s)
    got = of.cscv(of.block_sums(r, s))
    np.testing.assert_allclose(got.logits, want_logits, rtol=1e-12)
    assert got.pbo == want_pbo
    assert len(got.logits) == math.comb(s, s // 2)


def test_cscv_sixteen_blocks_matches_the_brute_force() -> None:
    rng = np.random.default_rng(7)
    r = rng.normal(0, 0.01, (16 * 3 + 5, 4))
    want_pbo, want_logits = ref_cscv(r, 16)
    got = of.cscv(of.block_sums(r, 16))
    assert got.pbo == want_pbo and len(got.logits) == 12_870
    np.testing.assert_allclose(got.logits, want_logits, rtol=1e-12)


def test_one_dominant_trial_is_not_overfit() -> None:
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.01, (320, 30))
    r[:, 7] += 0.01  # a Sharpe of ~1 per day beats noise in every half
    got = of.cscv(of.block_sums(r, 16))
    assert got.pbo == 0.0
    assert np.allclose(got.logits, math.log(30 / 1))  # always ranked N of N: ω = N / (N + 1)


# ---------------------------------------------------------------- nulls, with a reason


def test_too_few_trials_or_days_give_nulls_with_a_reason() -> None:
    rng = np.random.default_rng(0)
    one = of.sweep_statistics(of.returns_moments(rng.normal(size=(100, 1))), None, 16)
    assert one.pbo is None and one.expected_max_sharpe is None and "2 combinations" in (one.reason or "")
    view = of.overfitting_view(one, 0)
    assert view["probabilistic_sharpe_ratio"] is None and view["deflated_sharpe_ratio"] is None
    assert view["reason"] == one.reason and view["trials"] == 1
    r = rng.normal(size=(31, 5))
    short = of.sweep_statistics(of.returns_moments(r), of.block_sums(r, 16), 16)
    assert short.pbo is None and short.logits is None and "32" in (short.reason or "")
    r = rng.normal(size=(32, 5))
    enough = of.sweep_statistics(of.returns_moments(r), of.block_sums(r, 16), 16)
    assert enough.reason is None and enough.pbo is not None


def test_no_top_result_leaves_psr_and_dsr_null() -> None:
    r = np.random.default_rng(1).normal(size=(64, 4))
    st = of.sweep_statistics(of.returns_moments(r), of.block_sums(r, 4), 4)
    view = of.overfitting_view(st, None)
    assert view["pbo"] is not None and view["deflated_sharpe_ratio"] is None and "min_trades" in view["reason"]


@pytest.mark.parametrize("blocks", [2, 3, 5, 18, 0, -4])
def test_pbo_blocks_rule(blocks: int) -> None:
    assert of.pbo_blocks_problem(blocks) is not None


@pytest.mark.parametrize("blocks", [4, 6, 10, 16])
def test_pbo_blocks_allowed(blocks: int) -> None:
    assert of.pbo_blocks_problem(blocks) is None


def test_the_plain_language_reading() -> None:
    assert of.overfitting_reading(0.99, 0.02).startswith("Probably a real edge: ")
    assert of.overfitting_reading(0.3, 0.02).startswith("Probably overfit: ")
    assert of.overfitting_reading(0.99, 0.6).startswith("Probably overfit: ")
    assert of.overfitting_reading(0.8, 0.2).startswith("Inconclusive: ")
    text = of.overfitting_reading(0.857, 0.479)
    assert "at 86%" in text and "48% of the splits (PBO)" in text and text.endswith(".")
    assert of.overfitting_reading(None, None) == "Not enough data for the overfitting statistics."


def test_cscv_is_the_same_on_any_number_of_threads_blocks_and_chunks(monkeypatch) -> None:
    rng = np.random.default_rng(11)
    r = rng.normal(0, 0.01, (200, 700))
    r[:, 5] = r[:, 4]  # ties
    r[:, 9] = 0.0
    b = of.block_sums(r, 8)
    one = of.cscv(b, workers=1)
    assert np.array_equal(of.cscv(b, workers=3).logits, one.logits)
    monkeypatch.setattr(of, "_CSCV_BLOCK_VALUES", 3_000)  # several blocks of halves (of pairs of halves)
    for workers in (1, 2):
        assert np.array_equal(of.cscv(b, workers=workers).logits, one.logits)
    monkeypatch.setattr(of, "_CSCV_CHUNK_VALUES", 70 * 64)  # several chunks of trials: two passes
    for workers in (1, 2):
        assert np.array_equal(of.cscv(b, workers=workers).logits, one.logits)
    want_pbo, want_logits = ref_cscv(r[:, :40], 8)
    got = of.cscv(of.block_sums(r[:, :40], 8), workers=2)
    assert got.pbo == want_pbo and np.allclose(got.logits, want_logits, rtol=1e-12)
