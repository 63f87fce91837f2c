"""Datasets: CSV upload (streamed to results in chunks), list, delete."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from hindsight.results.v1 import results_pb2

from services.gateway.body import MAX_UPLOAD_BODY
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import ApiError, invalid
from services.gateway.views import dataset_view

router = APIRouter(tags=["datasets"])
CHUNK_BYTES = 1024 * 1024
TICKER = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
INTERVALS = ("1m", "5m", "15m", "1h", "1d")
CALENDARS = ("continuous", "sessions")
# Upload deadline: the RPC timeout plus time to move the bytes at a modest rate.
UPLOAD_BYTES_PER_SECOND = 4 * 1024 * 1024

_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "ticker", "interval"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV with header timestamp,open,high,low,close,volume",
                        },
                        "ticker": {"type": "string", "pattern": TICKER.pattern},
                        "interval": {"type": "string", "enum": list(INTERVALS)},
                        "calendar": {"type": "string", "enum": list(CALENDARS), "default": "continuous"},
                        "timezone": {"type": "string", "description": "IANA zone of naive timestamps (default UTC)"},
                    },
                }
            }
        },
    }
}


def _field(form: Any, name: str) -> str | None:
    values = form.getlist(name)
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        raise invalid(f"invalid {name}", [{"field": name, "message": "expected a single text value"}])
    return values[0]


def _valid_timezone(name: str) -> bool:
    if len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for malformed keys
        return False
    return True


@router.post(
    "/api/v1/datasets",
    status_code=201,
    summary="Import a CSV dataset (new version of ticker+interval)",
    openapi_extra=_UPLOAD_DOC,
)
async def import_dataset(request: Request, backend: BackendDep, caller: CallerDep) -> JSONResponse:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "upload the CSV as multipart/form-data (field `file`)")
    form = await request.form(max_files=1, max_fields=20, max_part_size=64 * 1024)
    try:
        errors: list[dict[str, str]] = []
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or len(form.getlist("file")) != 1:
            errors.append({"field": "file", "message": "a CSV file is required"})
        ticker = _field(form, "ticker")
        if ticker is None or not TICKER.match(ticker):
            errors.append({"field": "ticker", "message": "1-32 characters of A-Z a-z 0-9 . _ -"})
        interval = _field(form, "interval")
        if interval not in INTERVALS:
            errors.append({"field": "interval", "message": f"must be one of {', '.join(INTERVALS)}"})
        calendar = _field(form, "calendar") or "continuous"
        if calendar not in CALENDARS:
            errors.append({"field": "calendar", "message": f"must be one of {', '.join(CALENDARS)}"})
        tz = _field(form, "timezone") or ""
        if tz and not _valid_timezone(tz):
            errors.append({"field": "timezone", "message": "unknown IANA timezone"})
        if errors:
            raise invalid("invalid dataset upload", errors)
        assert upload is not None and not isinstance(upload, str)
        size = upload.size
        if size is None:
            upload.file.seek(0, 2)
            size = upload.file.tell()
            upload.file.seek(0)
        if size == 0:
            raise invalid("invalid dataset upload", [{"field": "file", "message": "the file is empty"}])
        if size > MAX_UPLOAD_BODY:
            raise ApiError(413, "payload_too_large", f"file exceeds {MAX_UPLOAD_BODY} bytes")

        async def chunks() -> AsyncIterator[results_pb2.ImportDatasetRequest]:
            first = True
            while True:
                data = await upload.read(CHUNK_BYTES)
                if first:
                    yield results_pb2.ImportDatasetRequest(
                        tenant_id=caller.tenant_id,
                        ticker=ticker or "",
                        interval=interval or "",
                        calendar=calendar,
                        timezone=tz,
                        data=data,
                    )
                    first = False
                elif data:
                    yield results_pb2.ImportDatasetRequest(data=data)
                if len(data) < CHUNK_BYTES:
                    return

        timeout = backend.rpc_timeout + size / UPLOAD_BYTES_PER_SECOND
        resp = await backend.call(backend.stub.ImportDataset, chunks(), timeout=timeout)
    finally:
        await form.close()
    return JSONResponse(dataset_view(resp.dataset), status_code=201)


@router.get("/api/v1/datasets", summary="Datasets of the caller (latest version of each)")
async def list_datasets(backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await backend.call(backend.stub.ListDatasets, results_pb2.ListDatasetsRequest(tenant_id=caller.tenant_id))
    return {"datasets": [dataset_view(d) for d in resp.datasets]}


@router.delete("/api/v1/datasets/{dataset_id}", summary="Delete a dataset with all its versions")
async def delete_dataset(dataset_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(dataset_id, "dataset")
    resp = await backend.call(
        backend.stub.DeleteDataset,
        results_pb2.DeleteDatasetRequest(tenant_id=caller.tenant_id, dataset_id=dataset_id),
    )
    return {"deleted": True, "dataset_id": dataset_id, "versions_deleted": resp.versions_deleted}
