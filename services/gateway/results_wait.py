"""Waiting out a results restart: the one home of the retries behind the SSE streams.

A browser's EventSource reconnects after a stream ends, but stops for good after a
non-200 answer, so a restart of results must show neither as a 503 nor as a stream cut
short. Two places wait, each for up to HINDSIGHT_SSE_RESULTS_WAIT_SECONDS of one outage:

- a stream request, before its response starts (`call_waiting` for the caller's key or
  session and the job's lookup, all within the request's `Patience`): a reconnect during
  the outage waits instead of getting a 503;
- an open stream (`JobEvents`): the gateway opens results' event stream again after the
  last event it forwarded, with backoff, while its client's stream stays open.

Only an unreachable results is waited for (UNAVAILABLE, DEADLINE_EXCEEDED, and on a stream
the CANCELLED of a results resetting it on its way out); what results
answers (an unknown key, someone else's job) is answered at once. Past the wait a request
gets the 503 it got before, and an open stream ends with nothing made up: its client
reconnects with Last-Event-ID later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2, results_pb2_grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

log = logging.getLogger(__name__)

T = TypeVar("T")
TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# Between attempts to reach results: 0.25 s doubling up to 2 s, plus up to 0.25 s of jitter
# (the gateway's channel retries its connection at least as often: Backend.open).
_BACKOFF = wait_exponential_jitter(multiplier=0.25, max=2.0, jitter=0.25)


# A results shutting down resets a stream call that reaches it in the moment between
# refusing new work and closing its port (HTTP/2 RST_STREAM CANCEL, which a client reads
# as CANCELLED). The gateway cancels a stream call only when it stops reading it, so on a
# stream, CANCELLED is that reset: waited out like UNAVAILABLE.
STREAM_TRANSIENT = TRANSIENT | {grpc.StatusCode.CANCELLED}


def is_transient(exc: BaseException) -> bool:
    """A failed call worth retrying: results unreachable (restarting, gone) or too slow right now."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in TRANSIENT


def is_stream_transient(exc: BaseException) -> bool:
    """A results event stream that broke off (or was refused) for a reason worth reopening it."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in STREAM_TRANSIENT


@dataclass
class Patience:
    """Until when one request (or one outage of an open stream) waits for results."""

    until: float

    @classmethod
    def for_seconds(cls, seconds: float) -> Patience:
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        return max(0.0, self.until - time.monotonic())


def _retrying(patience: Patience, transient: Callable[[BaseException], bool] = is_transient) -> AsyncRetrying:
    """Retries of a transient failure while `patience` lasts (the last failure is raised then)."""

    def wait(state: RetryCallState) -> float:
        return min(_BACKOFF(state), patience.left())

    def stop(state: RetryCallState) -> bool:
        return patience.left() <= 0

    return AsyncRetrying(retry=retry_if_exception(transient), wait=wait, stop=stop, reraise=True)


async def call_waiting(method: Callable[..., Awaitable[T]], request: Any, timeout: float, patience: Patience) -> T:
    """A unary results call that waits out an unreachable results while `patience` lasts.
    Each attempt has the `timeout` deadline, so a results that hangs (rather than refuses)
    is given up on at most one deadline after the patience ran out."""
    async for attempt in _retrying(patience):
        with attempt:
            return await method(request, timeout=timeout)
    raise AssertionError("tenacity returns or raises")  # pragma: no cover


class JobEvents:
    """A job's events from results for one SSE client, read across results restarts.

    Iterating yields every event after `after` once and in order, and None while results
    is unreachable (the relay sends a keep-alive comment for it). When results' stream
    breaks off (results killed, restarting, shutting down), it is opened again after the
    last event yielded, with backoff, for up to `wait_seconds`; past that the last error
    is raised. Iteration ends where results ends the stream: after the job's terminal
    event, or at once for an ended job resumed after its last event.
    """

    def __init__(
        self, stub: results_pb2_grpc.ResultsServiceStub, tenant_id: str, job_id: str, after: int, wait_seconds: float
    ) -> None:
        self.stub = stub
        self.tenant_id = tenant_id
        self.job_id = job_id
        self.last = after
        self.wait_seconds = wait_seconds
        self._ahead: list[jobs_pb2.JobEvent] = []
        self._events = self._read()

    def __aiter__(self) -> JobEvents:
        return self

    async def __anext__(self) -> jobs_pb2.JobEvent | None:
        if self._ahead:
            return self._ahead.pop()
        return await self._events.__anext__()

    async def any_left(self) -> bool:
        """Whether an event follows (read ahead, waiting out an outage): False for an ended
        job resumed after its last event. Raises results' error, as iterating does."""
        async for event in self._events:
            if event is not None:
                self._ahead.append(event)
                return True
        return False

    async def aclose(self) -> None:
        """Cancel results' stream (the client went away or the relay ended)."""
        await self._events.aclose()

    def _open(self) -> Any:
        return self.stub.StreamJobEvents(
            results_pb2.StreamJobEventsRequest(tenant_id=self.tenant_id, job_id=self.job_id, after_seq=self.last)
        )

    async def _reopen(self) -> Any:
        """Results' stream again after the last event, once results has taken it: results
        sends its headers as soon as it has checked the job (a results that does not, with
        the first event). Raises the call's error when results refused it or is unreachable."""
        call = self._open()
        try:
            await call.initial_metadata()
            await call.wait_for_connection()
        except BaseException:
            call.cancel()
            raise
        return call

    async def _read(self) -> AsyncGenerator[jobs_pb2.JobEvent | None, None]:
        call = self._open()
        while True:
            try:
                async for item in call:
                    self.last = item.event.seq
                    yield item.event
                return  # results ended the stream: nothing more will come
            except grpc.aio.AioRpcError as exc:
                if not is_stream_transient(exc):
                    raise
                log.warning("job event stream from results broke off (%s); waiting up to %.0f s to resume after %d",
                            exc.code().name, self.wait_seconds, self.last, extra={"job_id": self.job_id})
            finally:
                call.cancel()
            yield None  # at once: the client hears that the stream waits
            async for attempt in _retrying(Patience.for_seconds(self.wait_seconds), is_stream_transient):
                if attempt.retry_state.attempt_number > 1:
                    yield None  # between attempts, outside `attempt`: a client leaving here closes nothing open
                with attempt:
                    call = await self._reopen()
            log.info("job event stream from results resumed after %d", self.last, extra={"job_id": self.job_id})
