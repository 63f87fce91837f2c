"""Type stub for the compiled indicator kernels (indicators_kernel.pyx)."""

import numpy as np
import numpy.typing as npt

def sma(x: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]: ...
def ema(x: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]: ...
def macd(
    x: npt.NDArray[np.float64], fast: int, slow: int, signal: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
