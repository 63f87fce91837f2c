"""StreamJobEvents: replay after a sequence number, live events, end after the terminal event."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from hindsight.results.v1 import results_pb2

from .helpers import result_row, submit_request


async def _collect(stream, into: list) -> None:
    async for resp in stream:
        into.append(resp.event)


@pytest.mark.asyncio
async def test_replay_then_live_then_end(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = (await pg.stub.SubmitJob(submit_request(tenant))).job
    await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))  # seq 2

    events: list = []
    task = asyncio.create_task(
        _collect(pg.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job.job_id)), events)
    )
    for i in range(1, 4):
        await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(job_id=job.job_id, percent=i * 25, message=f"step {i}"))
    # Live events arrive without waiting for the poll interval.
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while len(events) < 5 and loop.time() - t0 < 3:
        await asyncio.sleep(0.01)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert not task.done()

    done = await pg.stub.CompleteSweep(
        results_pb2.CompleteSweepRequest(job_id=job.job_id, results=[result_row(10, 20, 1.0, 60)])
    )
    await asyncio.wait_for(task, 5)  # the stream ends after the terminal event
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.type for e in events] == ["progress"] * 5 + ["done"]
    assert json.loads(events[3].data_json)["message"] == "step 2"
    assert json.loads(events[3].data_json)["percent"] == 50
    final = json.loads(events[-1].data_json)
    assert final["done"] is True and final["status"] == "completed" and final["sweep_run_id"] == done.sweep_run_id

    # A stream opened after the end replays from after_seq and ends.
    replay: list = []
    await asyncio.wait_for(
        _collect(
            pg.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job.job_id, after_seq=3)),
            replay,
        ),
        5,
    )
    assert [e.seq for e in replay] == [4, 5, 6]
    assert [(e.seq, e.data_json) for e in replay] == [(e.seq, e.data_json) for e in events[3:]]

    # Resuming after the terminal event itself: nothing more, the stream ends at once.
    rest: list = []
    await asyncio.wait_for(
        _collect(
            pg.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job.job_id, after_seq=6)),
            rest,
        ),
        5,
    )
    assert rest == []


@pytest.mark.asyncio
async def test_stream_ends_with_error_event_on_cancel(lite, lite_db):
    tenant, _ = lite_db.tenant()
    job = (await lite.stub.SubmitJob(submit_request(tenant))).job
    events: list = []
    task = asyncio.create_task(
        _collect(
            lite.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job.job_id)), events
        )
    )
    await asyncio.sleep(0.1)
    await lite.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))
    await asyncio.wait_for(task, 5)
    assert [e.type for e in events] == ["progress", "error"]
    data = json.loads(events[-1].data_json)
    assert data["error"] is True and data["message"] == "Job cancelled" and data["status"] == "cancelled"


@pytest.mark.asyncio
async def test_stream_sees_writes_of_another_replica(services, results_pg_url, pg_engine):
    """Two results replicas on one database: a stream on one sees events written through the other."""
    from .conftest import DbPeek, RecordingBus, pg_settings

    a = await services.start(pg_settings(results_pg_url), RecordingBus())
    b = await services.start(pg_settings(results_pg_url), RecordingBus())
    tenant, _ = DbPeek(pg_engine).tenant()
    job = (await a.stub.SubmitJob(submit_request(tenant))).job
    events: list = []
    task = asyncio.create_task(
        _collect(a.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job.job_id)), events)
    )
    await b.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    await b.stub.FailJob(results_pb2.FailJobRequest(job_id=job.job_id, error_message="boom"))
    await asyncio.wait_for(task, 5)
    assert [e.type for e in events] == ["progress", "progress", "error"]
    assert json.loads(events[-1].data_json)["status"] == "failed"


@pytest.mark.asyncio
async def test_stream_of_unknown_or_foreign_job_is_not_found(pg, pg_db):
    owner, _ = pg_db.tenant()
    other, _ = pg_db.tenant()
    job = (await pg.stub.SubmitJob(submit_request(owner))).job
    for tenant, job_id in ((other, job.job_id), (owner, "sweep_nope")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in pg.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job_id)):
                pass
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
