"""Start a whole Hindsight stack as real processes for end-to-end tests."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEV_KEY = "dev-key-000000000000000000000000"


# Ports for the servers the tests start: each pytest-xdist worker scans its own block below the
# kernel's ephemeral range (32768+ here), in order, so two workers never pick the same port and
# neither picks one the kernel is about to hand to an outgoing connection; a port is reused only
# after the worker's block wraps around.
_PORT_BLOCK = 3000
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_PORT_BASE = 20000 + (int(_worker) if _worker.isdigit() else 0) % 4 * _PORT_BLOCK
_port_counter = itertools.count()


def free_port() -> int:
    for _ in range(_PORT_BLOCK):
        port = _PORT_BASE + next(_port_counter) % _PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {_PORT_BASE}..{_PORT_BASE + _PORT_BLOCK - 1}")


@dataclass
class Stack:
    """A running stack: its gateway URL, a key, its processes and their logs."""

    mode: str
    base_url: str
    api_key: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # Variables of one process only (start_distributed's service_env).
    service_env: dict[str, dict] = field(default_factory=dict)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kw)

    def log_text(self) -> str:
        return "\n".join(f"--- {n}\n{p.read_text(errors='replace')[-5000:]}" for n, p in self.logs.items())

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one process and wait for it to exit."""
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def restart(self, name: str) -> None:
        """Start a process again (same module, env and log) after `kill`."""
        module = "services.standalone" if name == "standalone" else f"services.{name}"
        env = dict(self.env, **self.service_env.get(name, {}))
        self.procs[name], _ = _spawn(name, module, env, self.logs[name].parent)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> dict[str, int]:
        codes = {}
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            codes[name] = proc.returncode
        return codes


def _spawn(name: str, module: str, env: dict, log_dir: Path) -> tuple[subprocess.Popen, Path]:
    log = log_dir / f"{name}.log"
    fh = open(log, "ab")  # noqa: SIM115 - the child process keeps it
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return proc, log


def wait_healthy(stack: Stack, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name, proc in stack.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{stack.log_text()}")
        try:
            if httpx.get(stack.base_url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"stack not healthy after {timeout}s\n{stack.log_text()}")


# Where the demo option chain is generated once (seconds of work) for every stack the tests start.
SHARED_MARKET_DIR = ROOT / ".hindsight" / "market"


def stack_market_dir(path: Path) -> Path:
    """A market-data store of a stack's own at `path`, so that the bars and chains it imports go
    with the stack's directory, holding the demo option chain as hard links to the one generated
    once under SHARED_MARKET_DIR (copies across filesystems): no stack generates it again."""
    from services.results.demo_chain import ensure_demo_chain_files
    from services.results.market_store import MarketStore

    key, _, _ = ensure_demo_chain_files(MarketStore(SHARED_MARKET_DIR))

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    target = path / key
    if not target.exists():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copytree(SHARED_MARKET_DIR / key, target, copy_function=link)
    return path


def start_standalone(
    data_dir: Path,
    log_dir: Path,
    extra_env: dict | None = None,
    *,
    port: int | None = None,
    host: str | None = None,
    api_key: str = DEV_KEY,
    own_secret_key: bool = False,
) -> Stack:
    """`make run` as a process: on `port` (a free one by default) and `host` (any loopback address:
    127.0.0.2 is not "loopback" to Hindsight's bind check, but is reachable here), with
    `extra_env`; `own_secret_key`: the data directory keeps its own HINDSIGHT_SECRET_KEY."""
    # A free port can be taken by another process before ours binds it: then another one (a port
    # the caller chose is kept, and its failure raised).
    for attempt in range(1 if port else 3):
        chosen = port or free_port()
        env = dict(os.environ, HINDSIGHT_PORT=str(chosen), HINDSIGHT_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1",
                   # Beside the logs, not in the data directory: the stack creates that one itself.
                   HINDSIGHT_MARKET_DIR=str(stack_market_dir(Path(log_dir) / "market")))
        if host is not None:
            env["HINDSIGHT_HOST"] = host
        for name in ("DATABASE_URL", "AMQP_URL", *(("HINDSIGHT_SECRET_KEY",) if own_secret_key else ())):
            env.pop(name, None)
        env.update(extra_env or {})
        stack = Stack("standalone", f"http://{host or '127.0.0.1'}:{chosen}", api_key, env=env)
        stack.procs["standalone"], stack.logs["standalone"] = _spawn("standalone", "services.standalone", env, log_dir)
        try:
            wait_healthy(stack)
            return stack
        except RuntimeError as exc:
            if attempt == 2 or port or "address already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def start_distributed(
    database_url: str,
    amqp_url: str,
    log_dir: Path,
    extra_env: dict | None = None,
    service_env: dict[str, dict] | None = None,
) -> Stack:
    """The four services as processes; `service_env` adds variables to one service's environment only."""
    ports = {n: free_port() for n in ("results", "engine", "notifier", "gateway")}
    key = "e2e-key-" + os.urandom(8).hex()
    env = dict(
        os.environ,
        HINDSIGHT_MODE="distributed",
        DATABASE_URL=database_url,
        AMQP_URL=amqp_url,
        HINDSIGHT_PORT=str(ports["gateway"]),
        HINDSIGHT_BOOTSTRAP_KEYS=f"e2e:{key}",
        HINDSIGHT_SESSION_SECRET=os.urandom(16).hex(),
        HINDSIGHT_INTERNAL_TOKEN=os.urandom(16).hex(),
        RESULTS_PORT=str(ports["results"]),
        ENGINE_PORT=str(ports["engine"]),
        NOTIFIER_PORT=str(ports["notifier"]),
        RESULTS_ADDR=f"127.0.0.1:{ports['results']}",
        ENGINE_ADDR=f"127.0.0.1:{ports['engine']}",
        NOTIFIER_ADDR=f"127.0.0.1:{ports['notifier']}",
        PYTHONUNBUFFERED="1",
        # Beside the logs: the test's temporary directory, which the stack's imports go with.
        HINDSIGHT_MARKET_DIR=str(stack_market_dir(Path(log_dir) / "market")),
    )
    env.update(extra_env or {})
    subprocess.run([sys.executable, "-m", "services.results.migrate"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    stack = Stack("distributed", f"http://127.0.0.1:{ports['gateway']}", key, env=env, service_env=service_env or {})
    for name in ("results", "engine", "notifier", "gateway"):
        own_env = dict(env, **(service_env or {}).get(name, {}))
        stack.procs[name], stack.logs[name] = _spawn(name, f"services.{name}", own_env, log_dir)
    wait_healthy(stack)
    return stack
