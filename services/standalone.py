"""`make run`: the standalone stack — all four services in one process on 127.0.0.1.

SQLite and artifacts under HINDSIGHT_DATA_DIR, the in-process bus instead of
RabbitMQ, demo datasets loaded, the dev API key printed. The services still
talk to each other over real gRPC on loopback ports.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import socket
import sys

import uvicorn

from libs import telemetry
from libs.bus import InProcessBus
from libs.private_files import make_private_dir, write_private_text
from libs.settings import Settings

log = logging.getLogger("hindsight.standalone")


def _session_secret(settings: Settings) -> str:
    """A per-data-dir secret, kept so sessions survive restarts."""
    if settings.hindsight_session_secret:
        return settings.hindsight_session_secret
    path = settings.hindsight_data_dir / "session_secret"
    if not path.exists():
        write_private_text(path, secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path.read_text().strip()


def start_banner(settings: Settings, url: str) -> str:
    """What `make run` prints once the gateway listens: where things are, and which of
    the dev conveniences (dev key, credential-less dev tenant, loopback webhooks) hold."""
    lines = ["", "Hindsight standalone is up"]
    if settings.dev_access():
        lines += [
            f"  Dashboard {url}/  (no login needed here: you are tenant 'dev')",
            f"  API      {url}",
            f"  Docs     {url}/docs",
            f"  API key  {settings.hindsight_dev_api_key}  (tenant 'dev'; header X-API-Key)",
            f"  Data     {settings.hindsight_data_dir.resolve()}",
            "  Demo datasets: DEMO-DAILY (1d, 24/7), DEMO-MINUTE (1m sessions), DEMO-OPTIONS (its weekly option chain) — synthetic prices",
            "  Requests without credentials act as tenant 'dev' (bound to loopback, HINDSIGHT_REQUIRE_AUTH unset)",
            "  Webhooks to loopback receivers (127.0.0.0/8, ::1) are allowed in standalone mode"
            " (bound to loopback, HINDSIGHT_REQUIRE_AUTH unset)",
        ]
    else:
        why = settings.dev_access_off_reason()
        lines += [
            f"  Dashboard {url}/  (log in with an API key)",
            f"  API      {url}",
            f"  Docs     {url}/docs",
            f"  API key  none: the dev key is off ({why}); credentials are required.",
            "           Keys: HINDSIGHT_BOOTSTRAP_KEYS=tenant:key, or hindsight-admin create-key TENANT --create-tenant",
            f"  Data     {settings.hindsight_data_dir.resolve()}",
            (f"  Webhooks to loopback receivers are refused ({why}) outside HINDSIGHT_WEBHOOK_ALLOW="
             f"{settings.hindsight_webhook_allow}" if settings.hindsight_webhook_allow.strip() else
             f"  Webhooks to loopback receivers are refused ({why}); HINDSIGHT_WEBHOOK_ALLOW opens ranges"),
        ]
    lines += ["  Ctrl-C stops everything.", ""]
    return "\n".join(lines)


async def serve(settings: Settings) -> None:
    from services.engine.service import start as start_engine
    from services.gateway.app import create_app
    from services.notifier.service import start as start_notifier
    from services.results.service import start as start_results

    make_private_dir(settings.hindsight_data_dir)  # 0700: database, artifacts, keys
    # The services of this process authenticate to each other with a token of its own (unless one is set).
    internal_token = settings.hindsight_internal_token or secrets.token_urlsafe(32)
    settings = settings.model_copy(
        update={"hindsight_session_secret": _session_secret(settings), "hindsight_internal_token": internal_token}
    )
    telemetry.register_secrets(settings.hindsight_session_secret, internal_token)
    bus = InProcessBus(settings.hindsight_job_max_deliveries)
    await bus.start()
    results = await start_results(settings, bus, port=0)
    settings = settings.model_copy(update={"results_addr": f"127.0.0.1:{results.port}"})
    engine = await start_engine(settings, bus, port=0)
    notifier = await start_notifier(settings, bus, port=0)
    settings = settings.model_copy(
        update={"engine_addr": f"127.0.0.1:{engine.port}", "notifier_addr": f"127.0.0.1:{notifier.port}"}
    )
    app = create_app(settings)
    # One process: the gateway's /metrics shows every service's registry and the process's own.
    registry = app.state.backend.metrics.registry
    for handle in (results, engine, notifier):
        registry.register(telemetry.RegistryCollector(handle.metrics.registry))
    telemetry.add_process_collectors(registry)
    metrics_server = telemetry.serve_metrics(
        settings.hindsight_metrics_port, [registry], host=settings.hindsight_metrics_host,
        token=settings.hindsight_metrics_token, process=False,
    )
    # No proxy in front of a laptop's stack: X-Forwarded-For from loopback is not trusted, so a
    # local client cannot pose as other addresses to the throttle of failed logins.
    config = uvicorn.Config(
        app, host=settings.hindsight_host, port=settings.hindsight_port, log_config=None, timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    url = f"http://{settings.hindsight_host}:{settings.hindsight_port}"
    banner = start_banner(settings, url)
    try:
        serve_task = asyncio.create_task(server.serve())
        while not server.started and not serve_task.done():
            await asyncio.sleep(0.05)
        if server.started:
            print(banner, flush=True)
        await serve_task
    finally:
        # The gateway has stopped taking requests; drain the rest in dependency order.
        await engine.stop(grace=5.0)
        await notifier.stop(grace=1.0)
        await results.stop(grace=2.0)
        await bus.close()
        if metrics_server is not None:
            metrics_server.close()
        print("Hindsight stopped.", flush=True)


def main() -> None:
    telemetry.setup_telemetry("standalone")
    settings = Settings(hindsight_mode="standalone")
    telemetry.register_secrets(*settings.secret_values())
    if settings.database_url or settings.amqp_url:
        log.warning("DATABASE_URL/AMQP_URL are ignored in standalone mode (use `make up` for the distributed mode)")
        settings = settings.model_copy(update={"database_url": "", "amqp_url": ""})
    problem = port_problem(settings.hindsight_host, settings.hindsight_port)
    if problem:
        print(problem, file=sys.stderr, flush=True)
        sys.exit(2)
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


def port_problem(host: str, port: int) -> str:
    """Why the API cannot listen on host:port (empty when it can), with the setting that fixes it.

    Checked before anything starts, as uvicorn binds (SO_REUSEADDR, no SO_REUSEPORT), so a
    taken port is one clear line rather than a log record after the services started."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror}; set HINDSIGHT_HOST to an address of this machine"
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use (another Hindsight, or another program): "
                        f"stop it, or start on another port: HINDSIGHT_PORT={port + 1} make run")
            return f"cannot listen on {host}:{port}: {exc.strerror}; set HINDSIGHT_HOST / HINDSIGHT_PORT"
    return ""


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
