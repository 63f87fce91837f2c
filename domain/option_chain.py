"""Option chains: the columns of a chain file, option types, contract symbols, and the rules a
chain's rows obey. Plain functions over NumPy arrays; no I/O.

A chain is one-minute (or other interval) OHLCV bars of the option contracts of one
underlying. A contract is (expiry, strike, option type); its symbol is the seeds' format
``{UNDERLYING}:{YYYY-MM-DD expiry}:OPT:{strike}:{CE|PE}``, e.g.
``NIFTY:2024-10-31:OPT:24350:PE`` (an integral strike prints without decimals).

The in-memory form of a day's chain, shared by results and the engine, is a pandas
DataFrame with exactly the columns of ``CHAIN_COLUMNS``: ``timestamp`` tz-aware UTC
datetime64[ns], ``expiry`` datetime64[ns] at midnight (naive: a date), ``strike`` float64,
``option_type`` str ``CE``/``PE``, ``open, high, low, close, volume`` float64; sorted by
(timestamp, expiry, strike, option_type). ``empty_chain`` and ``is_chain_frame`` pin it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

CHAIN_COLUMNS: Final[tuple[str, ...]] = (
    "timestamp", "expiry", "strike", "option_type", "open", "high", "low", "close", "volume",
)
REQUIRED_COLUMNS: Final[tuple[str, ...]] = CHAIN_COLUMNS
OPTIONAL_COLUMNS: Final[tuple[str, ...]] = ("oi", "iv")
PRICE_COLUMNS: Final[tuple[str, ...]] = ("open", "high", "low", "close")

CALL: Final = "CE"
PUT: Final = "PE"
OPTION_TYPES: Final[tuple[str, str]] = (CALL, PUT)
# What a file may write for each type (any case, surrounding spaces ignored).
OPTION_TYPE_ALIASES: Final[dict[str, str]] = {
    "CE": CALL, "C": CALL, "CALL": CALL,
    "PE": PUT, "P": PUT, "PUT": PUT,
}
OPTION_TYPE_RULE: Final = "CE or PE (C, P, call and put are accepted)"
# option_type as a small integer where arrays need one (sorting, keys): CE 0, PE 1.
TYPE_CODES: Final[dict[str, int]] = {CALL: 0, PUT: 1}


def normalize_option_type(value: str) -> str | None:
    """CE or PE for any accepted spelling; None for anything else."""
    return OPTION_TYPE_ALIASES.get(value.strip().upper()) if isinstance(value, str) else None


def format_strike(strike: float) -> str:
    """A strike as the seeds print it: 24350 (not 24350.0); 24362.5 keeps its decimals."""
    if not math.isfinite(strike):
        raise ValueError(f"strike {strike!r} is not a number")
    if float(strike).is_integer():
        return str(int(strike))
    return repr(float(strike))


def contract_symbol(underlying: str, expiry: date, strike: float, option_type: str) -> str:
    """``NIFTY:2024-10-31:OPT:24350:PE``."""
    kind = normalize_option_type(option_type)
    if kind is None:
        raise ValueError(f"option_type must be {OPTION_TYPE_RULE}, not {option_type!r}")
    return f"{underlying}:{expiry.isoformat()}:OPT:{format_strike(strike)}:{kind}"


@dataclass(frozen=True)
class Contract:
    """One option contract of a chain."""

    underlying: str
    expiry: date
    strike: float
    option_type: str

    @property
    def symbol(self) -> str:
        return contract_symbol(self.underlying, self.expiry, self.strike, self.option_type)


def parse_contract_symbol(symbol: str) -> Contract:
    """The contract a symbol names; ValueError when it is not of the seeds' format."""
    parts = symbol.split(":")
    if len(parts) != 5 or parts[2] != "OPT" or not parts[0]:
        raise ValueError(f"{symbol!r} is not UNDERLYING:YYYY-MM-DD:OPT:STRIKE:CE|PE")
    expiry = date.fromisoformat(parts[1])
    strike = float(parts[3])
    kind = normalize_option_type(parts[4])
    if kind is None or not math.isfinite(strike) or strike <= 0:
        raise ValueError(f"{symbol!r} is not UNDERLYING:YYYY-MM-DD:OPT:STRIKE:CE|PE")
    return Contract(parts[0], expiry, strike, kind)


# ---------------------------------------------------------------- the rows' rules

@dataclass(frozen=True)
class RowProblem:
    """The first bad row of a batch: its index in the batch, the column, and what is wrong."""

    index: int
    column: str
    message: str


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def first_bad_row(
    *,
    ts: IntArray,
    ts_valid: npt.NDArray[np.bool_],
    local_day: IntArray,
    expiry_day: IntArray,
    expiry_valid: npt.NDArray[np.bool_],
    strike: FloatArray,
    type_code: IntArray,
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    volume: FloatArray,
    optional: dict[str, FloatArray] | None = None,
) -> RowProblem | None:
    """The first row (lowest index) that breaks a rule, or None. Days are days since
    1970-01-01: `local_day` is the bar's date where the market is, `expiry_day` the expiry's.
    `type_code` is -1 where the option type was not understood. Optional columns (oi, iv)
    may be NaN (not given) but not negative or infinite.

    The rules: a timestamp and an expiry that parse; an option type; a strike > 0; an expiry
    on or after the bar's date; prices finite and >= 0; high >= low, and the open and close
    within [low, high]; a volume finite and >= 0."""
    n = int(ts.shape[0])
    if n == 0:
        return None
    checks: list[tuple[npt.NDArray[np.bool_], str, str]] = [
        (~ts_valid, "timestamp", "the timestamp is not an ISO date-time (or does not exist in the timezone)"),
        (~expiry_valid, "expiry", "the expiry is not a date YYYY-MM-DD"),
        (type_code < 0, "option_type", f"option_type must be {OPTION_TYPE_RULE}"),
        (~(strike > 0) | ~np.isfinite(strike), "strike", "the strike must be a number > 0"),
    ]
    for name, col in (("open", open_), ("high", high), ("low", low), ("close", close)):
        checks.append((~np.isfinite(col) | (col < 0), name, f"{name} must be a number >= 0"))
    checks += [
        (high < low, "high", "high is below low"),
        ((open_ > high) | (open_ < low), "open", "open lies outside [low, high]"),
        ((close > high) | (close < low), "close", "close lies outside [low, high]"),
        (~np.isfinite(volume) | (volume < 0), "volume", "volume must be a number >= 0"),
        (ts_valid & expiry_valid & (expiry_day < local_day), "expiry", "the expiry is before the bar's date"),
    ]
    for name, col in (optional or {}).items():
        checks.append((np.isinf(col) | (col < 0), name, f"{name} must be empty or a number >= 0"))
    best: RowProblem | None = None
    for bad, column, message in checks:
        hits = np.flatnonzero(bad)
        if hits.size and (best is None or int(hits[0]) < best.index):
            best = RowProblem(int(hits[0]), column, message)
    return best


def key_order(
    ts: IntArray, expiry_day: IntArray, strike: FloatArray, type_code: IntArray
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """For consecutive rows (i-1, i): whether the key (timestamp, expiry, strike, type) rises
    strictly, and whether it repeats. Both are length n-1."""
    dts, dexp = np.diff(ts), np.diff(expiry_day)
    dstrike, dtype = np.diff(strike), np.diff(type_code)
    same = (dts == 0) & (dexp == 0) & (dstrike == 0) & (dtype == 0)
    rises = (dts > 0) | ((dts == 0) & ((dexp > 0) | ((dexp == 0) & ((dstrike > 0) | ((dstrike == 0) & (dtype > 0))))))
    return rises, same


def strike_steps(strikes_by_expiry: dict[int, set[float]]) -> list[float]:
    """The distinct gaps between neighbouring listed strikes of each expiry, smallest first
    (e.g. [50.0] for NIFTY weeklies, [50.0, 100.0] when far strikes are wider apart)."""
    steps: set[float] = set()
    for strikes in strikes_by_expiry.values():
        ordered = np.sort(np.fromiter(strikes, dtype=np.float64))
        steps.update(round(float(d), 8) for d in np.diff(ordered) if d > 0)
    return sorted(steps)


# ---------------------------------------------------------------- the shared in-memory form

def empty_chain() -> pd.DataFrame:
    """A chain with no rows, in the shared form."""
    return pd.DataFrame({
        "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
        "expiry": pd.Series([], dtype="datetime64[ns]"),
        "strike": pd.Series([], dtype=np.float64),
        "option_type": pd.Series([], dtype=str),
        **{c: pd.Series([], dtype=np.float64) for c in ("open", "high", "low", "close", "volume")},
    })


def is_chain_frame(frame: pd.DataFrame) -> bool:
    """Whether `frame` has exactly the shared form's columns and dtypes."""
    if tuple(frame.columns) != CHAIN_COLUMNS:
        return False
    want = empty_chain().dtypes
    others = all(str(frame.dtypes[c]) == str(want[c]) for c in CHAIN_COLUMNS if c != "option_type")
    return others and bool(pd.api.types.is_string_dtype(frame.dtypes["option_type"]))
