"""Type stub for the rule strategies' position state machine (daybyday_kernel.pyx)."""

import numpy as np
import numpy.typing as npt

REASON_STOP_LOSS: int
REASON_TARGET: int
REASON_EXIT_SIGNAL: int
REASON_SQUARE_OFF: int

def run_days(
    open_: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    day_start: npt.NDArray[np.int64],
    day_end: npt.NDArray[np.int64],
    day_sq: npt.NDArray[np.int64],
    entry_sig: npt.NDArray[np.uint8],
    exit_sig: npt.NDArray[np.uint8],
    side: npt.NDArray[np.int8],
    sl_kind: npt.NDArray[np.int8],
    sl_val: npt.NDArray[np.float64],
    tg_kind: npt.NDArray[np.int8],
    tg_val: npt.NDArray[np.float64],
    max_re: npt.NDArray[np.int32],
) -> dict[str, np.ndarray]: ...
