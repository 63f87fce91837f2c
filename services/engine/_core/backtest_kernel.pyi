"""Type stub for the compiled single-backtest kernels (backtest_kernel.pyx)."""

import numpy as np
import numpy.typing as npt

def wilder_rsi(close: npt.NDArray[np.float64], period: int) -> npt.NDArray[np.float64]: ...
