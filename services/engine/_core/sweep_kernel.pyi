"""Type stub for the compiled fused sweep kernel (sweep_kernel.pyx)."""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

KIND_SMA: int
KIND_EMA: int
KIND_MACD: int
KIND_WANT: int
FILL_NEXT_OPEN: int
FILL_CLOSE: int
DIR_LONG: int
DIR_SHORT: int
DIR_BOTH: int

def stream_indicators(
    close: npt.NDArray[np.float64],
    periods: npt.NDArray[np.int32],
    kind: int,
    chunk: int = 65536,
) -> npt.NDArray[np.float64]: ...
def stream_macd(
    close: npt.NDArray[np.float64], fast: int, slow: int, signal_period: int, chunk: int = 65536
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def sweep(
    open_: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    ts: npt.NDArray[np.int64],
    day_end: npt.NDArray[np.uint8],
    periods: npt.NDArray[np.int32],
    fast_idx: npt.NDArray[np.int32],
    slow_idx: npt.NDArray[np.int32],
    kind: int,
    direction: int,
    fill: int,
    commission: float,
    slippage: float,
    initial_cash: float,
    signal_period: int = 9,
    progress: Callable[[float], object] | None = None,
    chunk: int = 65536,
    progress_interval: float = 0.25,
    day_block: npt.NDArray[np.int32] | None = None,
    blocks: int = 0,
    threads: int = 1,
    start: int = 0,
) -> dict[str, np.ndarray] | None:
    """Per-combination arrays: final_equity, max_dd, mean, m2, m3, m4, dsq, ndays, nneg,
    ntrades, nwins, gross_profit, gross_loss, duration_ns (and block_sum, block_sq
    [blocks, combinations] with ``day_block``); None if cancelled. The same bits for
    any ``threads`` (OpenMP)."""
    ...
def backtest(
    open_: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    ts: npt.NDArray[np.int64],
    day_end: npt.NDArray[np.uint8],
    kind: int,
    direction: int,
    fill: int,
    commission: float,
    slippage: float,
    initial_cash: float,
    periods: npt.NDArray[np.int32] | None = None,
    fast_col: int = 0,
    slow_col: int = 0,
    signal_period: int = 9,
    want: npt.NDArray[np.int8] | None = None,
    max_trades: int = -1,
    chunk: int = 65536,
    start: int = 0,
) -> dict[str, Any]:
    """ONE combination in trade-recording mode: the per-combination arrays of ``sweep``
    (length 1), ``equity`` (per bar) and ``trades`` (dict of per-trade arrays)."""
    ...
