"""Universes: `/api/v1/universes` (issue 11), a tenant's named lists of tickers, which a
sweep may run over. The rules (name, size, tickers) are domain.universe's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from hindsight.universes.v1 import universes_pb2

from domain import universe
from services.gateway.body import BodyReader
from services.gateway.deps import BackendDep, CallerDep
from services.gateway.errors import ApiError, invalid
from services.gateway.presenters.universes import Universe, UniverseDeleted, UniverseList, universe_view
from services.gateway.requests.universes import UniverseBody

router = APIRouter(tags=["universes"])
BodyDep = Annotated[UniverseBody, Depends(BodyReader(UniverseBody, message="invalid universe"))]

_NAME_DOC = (
    f"Its name: {universe.UNIVERSE_NAME_RULE} (case matters). A tenant keeps at most "
    f"{universe.UNIVERSES_PER_TENANT_MAX} universes of at most {universe.UNIVERSE_MAX_TICKERS} tickers each."
)


def _name(name: str) -> str:
    """A malformed name cannot name a universe: 404 for reads and deletes, without asking results."""
    if universe.name_problem(name):
        raise ApiError(404, "not_found", f"universe {name!r} not found")
    return name


@router.get("/api/v1/universes", summary="List universes, by name", response_model=UniverseList)
async def list_universes(backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await backend.call(backend.universes.ListUniverses,
                              universes_pb2.ListUniversesRequest(tenant_id=caller.tenant_id))
    return {"universes": [universe_view(u) for u in resp.universes]}


@router.put(
    "/api/v1/universes/{name}",
    summary="Save a universe (create: 201, replace: 200)",
    description=_NAME_DOC,
    response_model=Universe,
    responses={201: {"model": Universe, "description": "Created"}},
)
async def put_universe(name: str, body: BodyDep, response: Response, backend: BackendDep,
                       caller: CallerDep) -> dict[str, Any]:
    problem = universe.name_problem(name)
    if problem:
        raise invalid(f"universe name {problem}", [{"field": "name", "message": problem}])
    resp = await backend.call(
        backend.universes.PutUniverse,
        universes_pb2.PutUniverseRequest(tenant_id=caller.tenant_id, name=name, tickers=body.tickers),
    )
    if resp.created:
        response.status_code = 201
    return universe_view(resp.universe)


@router.get("/api/v1/universes/{name}", summary="One universe", response_model=Universe)
async def get_universe(name: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await backend.call(backend.universes.GetUniverse,
                              universes_pb2.GetUniverseRequest(tenant_id=caller.tenant_id, name=_name(name)))
    return universe_view(resp.universe)


@router.delete("/api/v1/universes/{name}", summary="Delete a universe", response_model=UniverseDeleted)
async def delete_universe(name: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await backend.call(backend.universes.DeleteUniverse,
                              universes_pb2.DeleteUniverseRequest(tenant_id=caller.tenant_id, name=_name(name)))
    return {"name": resp.name, "deleted": True}
