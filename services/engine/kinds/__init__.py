"""Job kinds as the engine sees them: one runner per kind, behind one protocol.

- `sweep.py`: JOB_KIND_SWEEP (the sweep kernel; results' CompleteSweep);
- `day_by_day.py`: JOB_KIND_DAY_BY_DAY (services.engine.day_by_day; DayBacktestService);
- `walkforward.py`: JOB_KIND_WALK_FORWARD (services.engine.walkforward; one fold per message).

`registry.py` is the one registry; the worker (services.engine.worker) runs the
kind that results' StartJob answers through it. A runner reports through the
`JobContext` (services.engine.job_context): progress, failure, and
`EngineShuttingDown` to hand its message back. This module imports nothing that
imports it back.
"""

from __future__ import annotations

from typing import Protocol

from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2

from services.engine.job_context import JobContext


class KindRunner(Protocol):
    """One kind of job in the engine."""

    kind: jobs_pb2.JobKind.ValueType

    async def run(self, ctx: JobContext, job: jobs_pb2.Job, msg: bus_pb2.JobMessage) -> None:
        """Run the started `job` (its spec in full, from StartJob) or the part of it that
        `msg` names, and report its end to results: its results, or `ctx.fail`. Stop
        quietly when results says so; raise `EngineShuttingDown` when `ctx.stopping`."""
        ...
