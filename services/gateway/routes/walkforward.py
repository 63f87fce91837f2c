"""Walk-forward optimizations: submit (`POST /api/v1/walkforward`) and the result
(`GET /api/v1/walkforward/{job_id}`); the job is followed like any other
(`/api/v1/jobs/{job_id}/stream`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from services.gateway.auth import Caller
from services.gateway.backend import Backend
from services.gateway.body import BodyReader
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.docs import METRICS_DOC, WALKFORWARD_DOC
from services.gateway.presenters import walkforward as shapes
from services.gateway.requests.fields import check_webhook
from services.gateway.requests.walkforward import WalkForwardRequest
from services.gateway.routes.sweeps import _trace_id, sweep_spec

router = APIRouter(tags=["walk-forward"])
INVALID_WALKFORWARD = "invalid walk-forward parameters"
_read = BodyReader(WalkForwardRequest, message=INVALID_WALKFORWARD)


async def read_walkforward(
    body: Annotated[WalkForwardRequest, Depends(_read)], backend: BackendDep
) -> WalkForwardRequest:
    """The request, validated (webhook_url against SSRF too); 400 listing every problem otherwise."""
    await check_webhook(body.webhook_url, backend.webhook_policy, message=INVALID_WALKFORWARD)
    return body


WalkForwardDep = Annotated[WalkForwardRequest, Depends(read_walkforward)]


async def submit_walkforward(backend: Backend, caller: Caller, body: WalkForwardRequest) -> jobs_pb2.Job:
    """Create the job at results, which cuts the folds on the dataset and queues one message per fold."""
    spec = jobs_pb2.WalkForwardSpec(
        sweep=sweep_spec(body.sweep),
        train_bars=body.train_bars,
        test_bars=body.test_bars,
        step_bars=body.step_bars,
        anchored=body.anchored,
        objective=body.objective,
    )
    request = results_pb2.SubmitJobRequest(
        tenant_id=caller.tenant_id,
        job_kind=jobs_pb2.JOB_KIND_WALK_FORWARD,
        parameters_json=json.dumps(body.parameters(), separators=(",", ":")),
        webhook_url=body.webhook_url or "",
        timeout_seconds=body.timeout_seconds or 0,
        walkforward=spec,
        trace_id=_trace_id(),
        notify_email=body.notify_email or "",
    )
    resp = await backend.call(backend.stub.SubmitJob, request)
    return resp.job


@router.post(
    "/api/v1/walkforward",
    status_code=202,
    summary="Submit a walk-forward optimization of a sweep",
    description=f"{WALKFORWARD_DOC}\n\n## Metrics\n\n{METRICS_DOC}",
    response_model=shapes.WalkForwardAccepted,
)
async def walkforward_submit(body: WalkForwardDep, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    job = await submit_walkforward(backend, caller, body)
    return shapes.accepted(job)


@router.get(
    "/api/v1/walkforward/{job_id}",
    summary="A walk-forward optimization: folds, stitched out-of-sample equity, efficiency",
    description=f"{WALKFORWARD_DOC}\n\n## Metrics\n\n{METRICS_DOC}",
    response_model=shapes.WalkForward,
)
async def walkforward_get(
    backend: BackendDep, caller: CallerDep, job_id: Annotated[str, Path()]
) -> dict[str, Any]:
    checked_id(job_id, "walk-forward")
    resp = await backend.call(
        backend.stub.GetWalkForward, results_pb2.GetWalkForwardRequest(tenant_id=caller.tenant_id, job_id=job_id)
    )
    return dict(json.loads(resp.walkforward_json))
