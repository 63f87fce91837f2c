"""The one registry of job kinds in the engine: the runner of each JobKind."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from hindsight.backtest.v1 import backtest_pb2_grpc

from services.engine.kinds import KindRunner
from services.engine.kinds.day_by_day import DayByDayRunner
from services.engine.kinds.rule_sweep import RuleSweepRunner
from services.engine.kinds.sweep import SweepRunner
from services.engine.kinds.walkforward import WalkForwardRunner


def build(results: grpc.aio.Channel) -> KindRunners:
    """Every kind the engine runs, reporting to results over `results`. A new kind: its
    runner file in this package, and one line here."""
    return KindRunners([
        SweepRunner(), DayByDayRunner(backtest_pb2_grpc.DayBacktestServiceStub(results)), RuleSweepRunner(),
        WalkForwardRunner(),
    ])


class KindRunners:
    """The runners of the job kinds, by JobKind."""

    def __init__(self, runners: Iterable[KindRunner]) -> None:
        self._by_kind: dict[int, KindRunner] = {}
        for r in runners:
            if r.kind in self._by_kind:
                raise ValueError(f"job kind {r.kind} has two runners")
            self._by_kind[r.kind] = r

    def get(self, kind: int) -> KindRunner | None:
        return self._by_kind.get(kind)
