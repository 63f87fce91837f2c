"""ThreadProgress: a kernel's thread reports progress without waiting for results; one
report in flight at a time; a stop answer takes effect at the next call; settle waits
for the report in flight."""

from __future__ import annotations

import asyncio

import pytest
from hindsight.results.v1 import results_pb2

from services.engine.job_context import ThreadProgress


class _Results:
    """What a ThreadProgress needs of a job context: progress() answered when released."""

    stopping = False

    def __init__(self) -> None:
        self.sent: list[float] = []
        self.release = asyncio.Event()
        self.stop = False

    async def progress(self, job_id: str, percent: float, message: str) -> results_pb2.ReportProgressResponse:
        self.sent.append(percent)
        await self.release.wait()
        return results_pb2.ReportProgressResponse(stop=self.stop)


@pytest.mark.asyncio
async def test_reports_never_wait_and_one_is_in_flight():
    ctx = _Results()
    reports = ThreadProgress(ctx, "job", asyncio.get_running_loop())  # type: ignore[arg-type]
    # the kernel's thread: every call returns at once, though results has not answered
    answers = await asyncio.to_thread(lambda: [reports.report(p, "x") for p in (10.0, 20.0, 30.0)])
    assert answers == [True, True, True]
    await asyncio.sleep(0.05)
    assert ctx.sent == [10.0]  # the others were skipped while it was in flight
    ctx.release.set()
    await reports.settle()
    assert await asyncio.to_thread(reports.report, 40.0, "x")
    await reports.settle()
    assert ctx.sent == [10.0, 40.0]


@pytest.mark.asyncio
async def test_a_stop_is_read_at_the_next_call():
    ctx = _Results()
    ctx.stop = True
    ctx.release.set()
    reports = ThreadProgress(ctx, "job", asyncio.get_running_loop())  # type: ignore[arg-type]
    assert await asyncio.to_thread(reports.report, 10.0, "x")  # sent; its answer is not known yet
    await reports.settle()
    assert reports.stop
    assert not await asyncio.to_thread(reports.report, 20.0, "x")
    assert ctx.sent == [10.0]


@pytest.mark.asyncio
async def test_shutdown_stops_at_once_and_a_failed_report_is_only_logged():
    ctx = _Results()
    reports = ThreadProgress(ctx, "job", asyncio.get_running_loop())  # type: ignore[arg-type]

    async def broken(job_id: str, percent: float, message: str):
        raise RuntimeError("results said no")

    ctx.progress = broken  # type: ignore[method-assign]
    assert await asyncio.to_thread(reports.report, 10.0, "x")
    await reports.settle()
    assert not reports.stop and await asyncio.to_thread(reports.report, 20.0, "x")
    await reports.settle()
    ctx.stopping = True
    assert not await asyncio.to_thread(reports.report, 30.0, "x")
