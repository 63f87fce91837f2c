"""gRPC servicer of `hindsight.universes.v1.UniversesService` (issue 11): universes CRUD
over the results database (services.results.universes; rules: domain.universe)."""

from __future__ import annotations

import logging

from hindsight.universes.v1 import universes_pb2, universes_pb2_grpc

from libs import grpc_util
from services.results import universes
from services.results.models_universes import Universe
from services.results.rpc import DatabaseServicer, require, unary
from services.results.timefmt import rfc3339

log = logging.getLogger(__name__)

UNIVERSES_SERVICE = grpc_util.service_name(universes_pb2, "UniversesService")


def universe_to_proto(row: Universe) -> universes_pb2.Universe:
    return universes_pb2.Universe(
        name=row.name, tickers=list(row.tickers), created_at=rfc3339(row.created_at), updated_at=rfc3339(row.updated_at)
    )


class UniversesServicer(DatabaseServicer, universes_pb2_grpc.UniversesServiceServicer):
    """A tenant's universes."""

    @unary
    async def PutUniverse(self, request, context):
        tenant_id = require(request.tenant_id, "tenant_id")
        # Two first PUTs of one name cannot collide: put_universe locks the tenant's row first.
        row, created = await self.write(universes.put_universe, tenant_id, require(request.name, "name"),
                                        list(request.tickers))
        if created:
            log.info("universe created", extra={"tenant_id": tenant_id, "universe": row.name})
        return universes_pb2.PutUniverseResponse(universe=universe_to_proto(row), created=created)

    @unary
    async def GetUniverse(self, request, context):
        row = await self.read(universes.get_universe, request.tenant_id, require(request.name, "name"))
        return universes_pb2.GetUniverseResponse(universe=universe_to_proto(row))

    @unary
    async def ListUniverses(self, request, context):
        rows = await self.read(universes.list_universes, require(request.tenant_id, "tenant_id"))
        return universes_pb2.ListUniversesResponse(universes=[universe_to_proto(r) for r in rows])

    @unary
    async def DeleteUniverse(self, request, context):
        name = await self.write(universes.delete_universe, request.tenant_id, require(request.name, "name"))
        return universes_pb2.DeleteUniverseResponse(name=name)


def registration(servicer: UniversesServicer):
    """The `register(server)` callable for grpc_util.start_server."""

    def register(server) -> str:
        universes_pb2_grpc.add_UniversesServiceServicer_to_server(servicer, server)
        return UNIVERSES_SERVICE

    return register
