"""Engine wiring shared by the distributed entry point and the standalone launcher."""

from __future__ import annotations

from dataclasses import dataclass

from hindsight.engine.v1 import engine_pb2, engine_pb2_grpc
from hindsight.results.v1 import results_pb2_grpc

from libs import grpc_util
from libs.bus import Bus
from libs.settings import Settings
from services.engine.backtest_servicer import BacktestServicer
from services.engine.job_context import JobContext
from services.engine.kinds import registry
from services.engine.sweep import available_cpus
from services.engine.worker import EngineWorker

SERVICE_NAME = grpc_util.service_name(engine_pb2, "EngineService")


def sweep_threads(settings: Settings) -> int:
    """The sweep kernel's threads per job: HINDSIGHT_ENGINE_THREADS, else the CPUs this
    process may use shared by the jobs it runs at once (HINDSIGHT_ENGINE_CONCURRENCY), so
    that concurrent sweeps do not run more threads than there are CPUs; at least 1."""
    if settings.hindsight_engine_threads is not None:
        return settings.hindsight_engine_threads
    return max(1, available_cpus() // max(1, settings.hindsight_engine_concurrency))


@dataclass
class EngineHandle:
    """A running engine: its gRPC server (health, reflection) and its job consumer."""

    grpc: grpc_util.GrpcServer
    worker: EngineWorker
    bus: Bus
    _channel: object

    @property
    def port(self) -> int:
        return self.grpc.port

    @property
    def metrics(self):
        """This replica's Prometheus metrics (services.engine.metrics)."""
        return self.worker.metrics

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking jobs, let the running one finish or go back to the queue, then close."""
        await self.grpc.set_serving(False)
        await self.worker.stop()
        await self.grpc.stop(grace)
        await self._channel.close()


async def start(settings: Settings, bus: Bus, *, port: int | None = None) -> EngineHandle:
    chan = grpc_util.channel(settings.results_addr, token=settings.hindsight_internal_token)
    stub = results_pb2_grpc.ResultsServiceStub(chan)
    context = JobContext(stub, rpc_timeout=settings.hindsight_rpc_timeout,
                         sweep_statistics=settings.hindsight_sweep_statistics,
                         sweep_threads=sweep_threads(settings),
                         bar_cache_bytes=settings.hindsight_bar_cache_mb * 2**20)
    worker = EngineWorker(context, bus, registry.build(chan), concurrency=settings.hindsight_engine_concurrency)
    # Synchronous backtests share the jobs' cache of bars.
    backtests = BacktestServicer(stub, context.cache, rpc_timeout=settings.hindsight_rpc_timeout)

    def register_backtests(server) -> str:
        engine_pb2_grpc.add_EngineServiceServicer_to_server(backtests, server)
        return SERVICE_NAME

    server = await grpc_util.start_server([register_backtests], host=settings.grpc_bind_host(),
                                          port=settings.engine_port if port is None else port,
                                          token=settings.hindsight_internal_token, port_setting="ENGINE_PORT")
    await worker.start()
    await server.set_serving(True)
    return EngineHandle(server, worker, bus, chan)
