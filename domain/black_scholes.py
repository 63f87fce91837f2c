"""Black–Scholes prices of European options, vectorised over NumPy arrays.

    d1 = (ln(S / K) + (r + σ² / 2) T) / (σ √T),   d2 = d1 − σ √T
    call = S N(d1) − K e^(−rT) N(d2)
    put  = K e^(−rT) N(−d2) − S N(−d1)

S spot, K strike, T years to expiry (> 0), σ annual volatility, r the continuously
compounded risk-free rate, no dividends; N is the standard normal CDF (scipy.special.ndtr,
accurate in the tails). At T <= 0 the price is the intrinsic value. The demo option chain
(services/results/demo_chain.py) is priced with this.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]
ArrayLike = FloatArray | float


def black_scholes(
    spot: ArrayLike,
    strike: ArrayLike,
    years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike,
    is_call: npt.NDArray[np.bool_] | bool,
) -> FloatArray:
    """The price of each option (arrays broadcast together)."""
    s, k, t, v, r, call = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (spot, strike, years, vol, rate)), np.asarray(is_call, dtype=bool)
    )
    live = t > 0
    t_live = np.where(live, t, 1.0)
    sd = v * np.sqrt(t_live)
    d1 = (np.log(s / k) + (r + 0.5 * v * v) * t_live) / sd
    d2 = d1 - sd
    df = np.exp(-r * t_live)
    # w = +1 (call) or -1 (put): w·(S N(w·d1) − K e^(−rT) N(w·d2)) is each formula above as written.
    w = np.where(call, 1.0, -1.0)
    price = w * (s * ndtr(w * d1) - k * df * ndtr(w * d2))
    intrinsic = np.where(call, np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))
    out: FloatArray = np.where(live, price, intrinsic).astype(np.float64)
    return out
