"""Option legs of rule strategies: the instrument an entry node may trade, and how the leg's
contract is picked from the underlying at the signal bar. Plain Python and NumPy; no I/O.

An entry node's ``instrument`` (absent: the node trades the underlying itself)::

    {"type": "option", "option_type": "CE"|"PE",
     "strike": "ATM"|"ATM+N"|"ATM-N"|"OTM N"|"ITM N",
     "expiry": "current_week"|"next_week"|"current_month"}

The rules (issue 15; DESIGN.md "Option legs"), on the chain of the signal bar's day:

- Listed expiries are those with a bar that day (on or after the day). ``current_week`` is
  the nearest of them on or after the day, ``next_week`` the one after it, and
  ``current_month`` the last of the day's month; when that has passed (none of the day's
  month is left), the last of the next month.
- Listed strikes are the strikes of the chosen expiry that have a bar that day (of either
  option type, so a straddle's two legs share their ATM strike).
- ATM is the listed strike nearest to the underlying's close on the signal bar; a tie takes
  the lower strike. ``ATM+N`` / ``ATM-N`` are N listed strikes above / below it;
  ``OTM N`` is N strikes out of the money for the leg's type (above ATM for a CE, below for
  a PE) and ``ITM N`` N strikes into the money (below for a CE, above for a PE).
- When the rule names no listed contract (no such expiry that day, or fewer than N strikes
  on that side), nothing is picked and `Selection.problem` says why.

The selector texts are read case-insensitively with optional spaces (``atm + 2``,
``OTM2``) and normalised to ``ATM``, ``ATM+2``, ``ATM-2``, ``OTM 2``, ``ITM 2``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from domain.option_chain import CALL, OPTION_TYPE_RULE, contract_symbol, normalize_option_type

INSTRUMENT_KEYS: Final = frozenset({"type", "option_type", "strike", "expiry"})
EXPIRY_RULES: Final[tuple[str, str, str]] = ("current_week", "next_week", "current_month")
MAX_STRIKE_OFFSET: Final = 100
STRIKE_RULE: Final = "ATM, ATM+N, ATM-N, OTM N or ITM N (N a whole number from 1 to 100)"
_STRIKE_RE = re.compile(r"^\s*(?:ATM\s*(?:(?P<sign>[+-])\s*(?P<n>\d{1,4}))?|(?P<side>OTM|ITM)\s*(?P<m>\d{1,4}))\s*$", re.I)


@dataclass(frozen=True)
class OptionLeg:
    """A validated instrument: the option type, the strike selector (normal form) and its
    offset from ATM in listed strikes (positive: higher strikes), the expiry rule."""

    option_type: str
    strike: str
    offset: int
    expiry: str


@dataclass(frozen=True)
class Selection:
    """What the rules picked at a signal bar: the spot (the underlying's close), the expiry,
    the ATM strike and the chosen strike; `problem` when no listed contract fits."""

    spot: float
    option_type: str
    expiry: date | None
    atm_strike: float | None
    strike: float | None
    problem: str | None = None

    def symbol(self, underlying: str) -> str | None:
        """The picked contract in the seeds' format (domain.option_chain), None when nothing was picked."""
        if self.expiry is None or self.strike is None:
            return None
        return contract_symbol(underlying, self.expiry, self.strike, self.option_type)


def parse_strike(value: Any) -> tuple[str, int, str] | None:
    """(normal text, signed N, kind) of a strike selector, kind being ATM, OTM or ITM; None
    when it is not one. For ATM±N the sign is N's; for OTM/ITM N is positive."""
    if not isinstance(value, str):
        return None
    m = _STRIKE_RE.match(value)
    if m is None:
        return None
    if m.group("side"):
        n = int(m.group("m"))
        if not 1 <= n <= MAX_STRIKE_OFFSET:
            return None
        kind = m.group("side").upper()
        return f"{kind} {n}", n, kind
    if m.group("sign") is None:
        return "ATM", 0, "ATM"
    n = int(m.group("n"))
    if not 1 <= n <= MAX_STRIKE_OFFSET:
        return None
    return f"ATM{m.group('sign')}{n}", n if m.group("sign") == "+" else -n, "ATM"


def strike_offset(selector: str, option_type: str) -> int:
    """Listed strikes from ATM (positive: higher) that `selector` means for a leg of `option_type`."""
    parsed = parse_strike(selector)
    if parsed is None:
        raise ValueError(f"strike must be {STRIKE_RULE}, not {selector!r}")
    _, n, kind = parsed
    if kind == "ATM":
        return n
    out_of_money_up = option_type == CALL  # a call is out of the money above the spot
    return n if (kind == "OTM") == out_of_money_up else -n


def validate_instrument(value: Any) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """(normal form, problems) of an entry node's instrument; problems are (sub-field, message)
    pairs, the sub-field relative to the instrument ("" for the instrument itself). None and
    absent mean the underlying: (None, [])."""
    if value is None:
        return None, []
    if not isinstance(value, dict):
        return None, [("", 'must be {"type": "option", "option_type": "CE"|"PE", "strike": "ATM", "expiry": "current_week"} or null')]
    problems: list[tuple[str, str]] = []
    for key in sorted(set(value) - INSTRUMENT_KEYS):
        problems.append((key, f"unknown field (allowed: {', '.join(sorted(INSTRUMENT_KEYS))})"))
    kind = value.get("type", "option")
    if not isinstance(kind, str) or kind.strip().lower() != "option":
        problems.append(("type", "must be option"))
    otype = value.get("option_type")
    otype_n = normalize_option_type(otype) if isinstance(otype, str) else None
    if otype_n is None:
        problems.append(("option_type", f"must be {OPTION_TYPE_RULE}"))
    strike = parse_strike(value.get("strike"))
    if strike is None:
        problems.append(("strike", f"unknown strike selector {value.get('strike')!r}: must be {STRIKE_RULE}"))
    expiry = value.get("expiry")
    expiry_n = expiry.strip().lower() if isinstance(expiry, str) else None
    if expiry_n not in EXPIRY_RULES:
        problems.append(("expiry", f"unknown expiry selector {expiry!r}: must be {', '.join(EXPIRY_RULES)}"))
    if problems or strike is None:
        return None, problems
    return {"type": "option", "option_type": otype_n, "strike": strike[0], "expiry": expiry_n}, []


def option_leg(instrument: Mapping[str, Any]) -> OptionLeg:
    """The leg of a normalised instrument (validate_instrument's first result)."""
    otype = str(instrument["option_type"])
    selector = str(instrument["strike"])
    return OptionLeg(otype, selector, strike_offset(selector, otype), str(instrument["expiry"]))


def pick_expiry(day: date, expiries: Iterable[date], rule: str) -> date | None:
    """The expiry `rule` names among the day's listed expiries; None when there is none."""
    listed = sorted({e for e in expiries if e >= day})
    if rule == "current_week":
        return listed[0] if listed else None
    if rule == "next_week":
        return listed[1] if len(listed) > 1 else None
    if rule == "current_month":
        this_month = [e for e in listed if (e.year, e.month) == (day.year, day.month)]
        if this_month:
            return this_month[-1]
        nxt = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        next_month = [e for e in listed if (e.year, e.month) == nxt]
        return next_month[-1] if next_month else None
    raise ValueError(f"unknown expiry rule {rule!r}")


def atm_index(strikes: npt.NDArray[np.float64], spot: float) -> int:
    """Index of the strike nearest to `spot` in ascending, distinct `strikes` (not empty);
    a tie takes the lower strike."""
    i = int(np.searchsorted(strikes, spot, side="left"))
    if i == 0:
        return 0
    if i >= strikes.shape[0]:
        return int(strikes.shape[0]) - 1
    return i - 1 if spot - float(strikes[i - 1]) <= float(strikes[i]) - spot else i


def select_contract(
    leg: OptionLeg, day: date, listed: Mapping[date, npt.NDArray[np.float64]], spot: float
) -> Selection:
    """The contract of `leg` on `day` for the underlying's close `spot`; `listed` maps each
    expiry with a bar that day to its listed strikes (ascending, distinct)."""
    expiry = pick_expiry(day, listed.keys(), leg.expiry)
    if expiry is None:
        return Selection(spot, leg.option_type, None, None, None, f"the chain lists no {leg.expiry} expiry on {day.isoformat()}")
    strikes = listed[expiry]
    if strikes.shape[0] == 0:
        return Selection(spot, leg.option_type, expiry, None, None, f"no strike of the {expiry.isoformat()} expiry has a bar")
    a = atm_index(strikes, spot)
    atm = float(strikes[a])
    j = a + leg.offset
    if not 0 <= j < strikes.shape[0]:
        where = "above" if leg.offset > 0 else "below"
        available = int(strikes.shape[0]) - 1 - a if leg.offset > 0 else a
        return Selection(
            spot, leg.option_type, expiry, atm, None,
            f"{leg.strike} for a {leg.option_type} is {abs(leg.offset)} listed strikes {where} ATM {atm:g}; "
            f"the {expiry.isoformat()} expiry lists {available} {where} it",
        )
    return Selection(spot, leg.option_type, expiry, atm, float(strikes[j]))
