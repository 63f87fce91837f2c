"""JobEvents across the ways a results stream ends, against a scripted gRPC server on a
real port. It stands in for the moments of a results shutdown that the full stack hits
only by chance: a reopened stream reset with CANCELLED (a call that reached results
between its refusing new work and closing its port) is waited out like UNAVAILABLE,
while a refusal (NOT_FOUND) ends the stream at once."""

from __future__ import annotations

import grpc
import pytest
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from services.gateway.results_wait import JobEvents


class _Scripted(results_pb2_grpc.ResultsServiceServicer):
    """Each StreamJobEvents call plays the next step: a list of event seqs then an end
    (None: end normally; a status code: abort with it)."""

    def __init__(self, steps: list[tuple[list[int], grpc.StatusCode | None]]) -> None:
        self.steps = steps
        self.after: list[int] = []

    async def StreamJobEvents(self, request, context):
        self.after.append(request.after_seq)
        seqs, end = self.steps.pop(0)
        await context.send_initial_metadata(())
        for seq in seqs:
            yield results_pb2.StreamJobEventsResponse(event=jobs_pb2.JobEvent(seq=seq, type="progress", data_json="{}"))
        if end is not None:
            await context.abort(end, "scripted")


async def _events(steps: list[tuple[list[int], grpc.StatusCode | None]]) -> tuple[list[int | None], list[int]]:
    server = grpc.aio.server()
    servicer = _Scripted(steps)
    results_pb2_grpc.add_ResultsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            events = JobEvents(results_pb2_grpc.ResultsServiceStub(channel), "t", "j", 0, wait_seconds=5)
            seen: list[int | None] = []
            try:
                async for event in events:
                    seen.append(None if event is None else event.seq)
            finally:
                await events.aclose()
            return seen, servicer.after
    finally:
        await server.stop(None)


@pytest.mark.asyncio
async def test_a_reset_reopen_is_waited_out() -> None:
    seen, after = await _events(
        [([1, 2], grpc.StatusCode.UNAVAILABLE), ([], grpc.StatusCode.CANCELLED), ([3], None)]
    )
    assert [s for s in seen if s is not None] == [1, 2, 3]
    assert None in seen  # the client heard that the stream waits
    assert after == [0, 2, 2]  # reopened after the last event forwarded, each time


@pytest.mark.asyncio
async def test_a_refusal_ends_the_stream() -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _events([([1], grpc.StatusCode.UNAVAILABLE), ([], grpc.StatusCode.NOT_FOUND)])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
