"""Sweeps of a rule strategy's parameters: the grid of a request and its limits.

One definition, used by the gateway (documentation, the vocabulary), results (the
check of every submission, before anything is queued) and the engine (the grid it
runs, in the same order). The placeholders and ranges are ``domain.rules.parameters``.

Each combination runs with day-by-day semantics (``services.engine.day_by_day``):
its definition is the strategy's with the combination's values substituted, and its
metrics are those of a day-by-day backtest of that definition over the range
(``domain.metrics.day_by_day_metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from domain.rules.parameters import MAX_SWEEP_COMBINATIONS, Number, grid_problems, substitute, used_parameters
from domain.rules.strategy import StrategyInvalid, uses_option_legs, validate_definition

MIN_TRADES_MIN: Final = 0
MIN_TRADES_MAX: Final = 1_000_000
MIN_TRADES_DEFAULT: Final = 10
# The strategy_type a rule sweep's run and rows carry (``best`` rows, the sweep run).
STRATEGY_TYPE: Final = "RULES"

__all__ = ["MAX_SWEEP_COMBINATIONS", "MIN_TRADES_DEFAULT", "RuleGrid", "rule_grid", "STRATEGY_TYPE"]


@dataclass(frozen=True)
class RuleGrid:
    """The swept parameter names (declaration order) and every combination of their values
    (the last name varying fastest)."""

    names: tuple[str, ...]
    combos: tuple[tuple[Number, ...], ...]

    def __len__(self) -> int:
        return len(self.combos)

    def values(self, i: int) -> dict[str, Number]:
        """Combination ``i`` as {name: value}."""
        return dict(zip(self.names, self.combos[i]))

    def definition(self, normal: dict[str, Any], i: int) -> dict[str, Any]:
        """The definition combination ``i`` runs (its placeholders substituted)."""
        return substitute(normal, self.values(i))


def rule_grid(definition: Any, ranges: Any) -> RuleGrid:
    """The grid a sweep of ``definition`` over ``ranges`` ({name: [start, stop, step]}) runs;
    StrategyInvalid listing every problem (field paths under ``parameters.``, or the
    definition's own) when it may not run. Every combination must give a valid definition."""
    normal = validate_definition(definition)
    if uses_option_legs(normal):
        # The sweep prices positions on the underlying's bars; legs trade their contracts'.
        raise StrategyInvalid([{"field": "entries", "message": "a strategy that trades option legs cannot be swept "
                                "yet: run it as a day-by-day backtest"}])
    declared = normal.get("parameters") or {}
    if not declared:
        raise StrategyInvalid([{"field": "parameters", "message": "the strategy declares no parameters to sweep "
                                '(add "parameters": {"name": default} and use {name} in its conditions)'}])
    names, combos, problems = grid_problems(declared, used_parameters(normal), ranges)
    if problems:
        raise StrategyInvalid([{"field": f, "message": m} for f, m in problems])
    grid = RuleGrid(tuple(names), tuple(combos))
    seen: set[str] = set()
    errors: list[dict[str, Any]] = []
    for i in range(len(grid)):
        try:
            validate_definition(grid.definition(normal, i))
        except StrategyInvalid as exc:
            for e in exc.errors:
                # One problem per field is enough to read (a bad range repeats it per combination).
                if e["field"] not in seen:
                    seen.add(e["field"])
                    shown = ", ".join(f"{k}={v}" for k, v in grid.values(i).items())
                    errors.append({"field": e["field"], "message": f"with {shown}: {e['message']}"})
    if errors:
        raise StrategyInvalid(errors)
    return grid
