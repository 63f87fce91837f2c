"""`make up` / `make down`: the distributed mode on this machine, each service its own process.

`python -m services.up start` needs DATABASE_URL and AMQP_URL; it creates the
database if it does not exist, runs the Alembic migrations, starts results,
engine, notifier and gateway (logs and pids under .run/), and waits until each
reports healthy. `python -m services.up stop` sends SIGTERM and waits for the drain.

HINDSIGHT_ENGINE_REPLICAS=N (default 1) starts N engine processes, competing consumers of
the jobs queue as replicas in Kubernetes are: `engine` on ENGINE_PORT (the gateway's
backtests call it), `engine-2` … `engine-N` on ENGINE_PORT + 10·(i−1) and metrics ports
after the gateway's.

Unless set, HINDSIGHT_BOOTSTRAP_KEYS gets a random key for tenant `dev` and
HINDSIGHT_SECRET_KEY a random key, both kept in .run/ (0600) for the next start:
the seeds' public dev key is for standalone on loopback only.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

RUN_DIR = Path(".run")
PIDS = RUN_DIR / "pids.json"
SERVICES = ("results", "engine", "notifier", "gateway")
MAX_ENGINE_REPLICAS = 16


def engine_replicas(env: dict[str, str]) -> int | str:
    """HINDSIGHT_ENGINE_REPLICAS as a count (1 when unset), or what is wrong with it."""
    text = (env.get("HINDSIGHT_ENGINE_REPLICAS") or "1").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_ENGINE_REPLICAS:
        return f"HINDSIGHT_ENGINE_REPLICAS must be a whole number from 1 to {MAX_ENGINE_REPLICAS}, not {text!r}"
    return int(text)


def processes(replicas: int, engine_port: int, metrics_base: int) -> list[tuple[str, str, dict[str, str]]]:
    """(name, service, environment overrides) of each process, in start order."""
    metrics = {"results": metrics_base, "engine": metrics_base + 1, "notifier": metrics_base + 2,
               "gateway": metrics_base + 3}
    out: list[tuple[str, str, dict[str, str]]] = []
    for name in SERVICES:
        out.append((name, name, {"HINDSIGHT_METRICS_PORT": str(metrics[name])}))
        if name == "engine":
            for i in range(2, replicas + 1):
                out.append((f"engine-{i}", "engine", {"HINDSIGHT_METRICS_PORT": str(metrics_base + 2 + i),
                                                      "ENGINE_PORT": str(engine_port + 10 * (i - 1))}))
    return out


def _kept_secret(name: str, make) -> str:
    """A value generated once and kept in .run/<name> (0600)."""
    from libs.private_files import make_private_dir, write_private_text

    path = RUN_DIR / name
    if not path.exists():
        make_private_dir(RUN_DIR)
        write_private_text(path, make())
    return path.read_text().strip()


def _ensure_database(url: str) -> None:
    """Create the database named in DATABASE_URL when it is missing (Postgres only)."""
    if not url.startswith("postgresql"):
        return
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (u.database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{u.database}"')
            print(f"created database {u.database}")


def _wait_grpc(port: int, deadline: float) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    while time.time() < deadline:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
        except grpc.RpcError:
            pass
        time.sleep(0.3)
    return False


def _wait_http(url: str, deadline: float) -> bool:
    import httpx

    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def start() -> int:
    from libs.settings import Settings

    settings = Settings(hindsight_mode="distributed")
    missing = [n for n in ("DATABASE_URL", "AMQP_URL") if not os.environ.get(n)]
    if missing:
        print(
            f"make up needs {' and '.join(missing)}. On this machine:\n"
            "  export DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/hindsight\n"
            "  export AMQP_URL=amqp://guest:guest@127.0.0.1:5672/",
            file=sys.stderr,
        )
        return 2
    replicas = engine_replicas(dict(os.environ))
    if isinstance(replicas, str):
        print(replicas, file=sys.stderr)
        return 2
    if PIDS.exists():
        print("already running (see .run/pids.json); `make down` first", file=sys.stderr)
        return 1
    RUN_DIR.mkdir(exist_ok=True)
    env = dict(os.environ, HINDSIGHT_MODE="distributed", PYTHONUNBUFFERED="1")
    if not env.get("HINDSIGHT_BOOTSTRAP_KEYS"):
        env["HINDSIGHT_BOOTSTRAP_KEYS"] = "dev:" + _kept_secret("dev_key", lambda: "hs_" + secrets.token_urlsafe(32))
    if not env.get("HINDSIGHT_SECRET_KEY"):
        env["HINDSIGHT_SECRET_KEY"] = _kept_secret("secret_key", lambda: secrets.token_urlsafe(48))
    if not env.get("HINDSIGHT_SESSION_SECRET"):
        env["HINDSIGHT_SESSION_SECRET"] = os.urandom(24).hex()
    # The services authenticate to each other on gRPC with this shared token.
    if not env.get("HINDSIGHT_INTERNAL_TOKEN"):
        env["HINDSIGHT_INTERNAL_TOKEN"] = os.urandom(24).hex()
    _ensure_database(settings.database_url)
    subprocess.run([sys.executable, "-m", "services.results.migrate"], env=env, check=True)
    pids: dict[str, int] = {}
    # One machine: each process's /metrics on a loopback port of its own, from HINDSIGHT_METRICS_PORT
    # (default 9464) up; the gateway's public /metrics needs HINDSIGHT_METRICS_TOKEN in this mode.
    base = int(env.get("HINDSIGHT_METRICS_PORT") or 9464)
    plan = processes(replicas, settings.engine_port, base)
    for name, service, over in plan:
        log = open(RUN_DIR / f"{name}.log", "ab")  # noqa: SIM115 - the child process keeps it
        proc = subprocess.Popen([sys.executable, "-m", f"services.{service}"], env=dict(env, **over), stdout=log,
                                stderr=log, start_new_session=True)
        pids[name] = proc.pid
        PIDS.write_text(json.dumps(pids))
        deadline = time.time() + 60
        port = int(over["ENGINE_PORT"]) if "ENGINE_PORT" in over else {
            "results": settings.results_port, "engine": settings.engine_port, "notifier": settings.notifier_port,
        }.get(service)
        ok = (_wait_grpc(port, deadline) if port else
              _wait_http(f"http://{settings.hindsight_host}:{settings.hindsight_port}/health", deadline))
        if not ok or proc.poll() is not None:
            print(f"{name} did not become healthy; see .run/{name}.log", file=sys.stderr)
            stop()
            return 1
        print(f"{name:9s} up (pid {proc.pid})")
    url = f"http://{settings.hindsight_host}:{settings.hindsight_port}"
    metrics = ", ".join(f"{name} :{over['HINDSIGHT_METRICS_PORT']}/metrics" for name, _, over in plan)
    key = env["HINDSIGHT_BOOTSTRAP_KEYS"].split(",")[0].partition(":")[2]
    print(f"\nHindsight distributed mode is up\n  API      {url}\n  Docs     {url}/docs\n"
          f"  API key  {key}  (credentials are always required in this mode)\n  Logs     .run/*.log\n"
          f"  Metrics  {metrics}\n"
          "  `make down` stops it.")
    return 0


def stop() -> int:
    if not PIDS.exists():
        print("nothing running")
        return 0
    pids = json.loads(PIDS.read_text())
    # Stop the front first so no new work arrives while the back drains (pids.json is in start order).
    for name, pid in reversed(list(pids.items())):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        print(f"{name:9s} stopped")
    PIDS.unlink()
    return 0


if __name__ == "__main__":
    sys.exit({"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]())
