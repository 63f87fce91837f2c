"""The README is executable (issue 16): every shell block runs as written, top to bottom, in one
shell, against a fresh standalone stack, and prints what the README shows under it (the rule:
tests/e2e/readme_blocks.py).

The README is written for `make run` on http://127.0.0.1:8000 and `make up` on this machine's
Postgres and RabbitMQ. Here the standalone stack runs on a free port, and the blocks get only
their addresses changed: `http://127.0.0.1:8000` becomes that stack's URL (the CLI reads it
from HINDSIGHT_URL, as the README says); in "Distributed mode on this machine" it becomes the
URL of the distributed gateway, whose ports come from the settings the README names
(HINDSIGHT_PORT, RESULTS_PORT..., HINDSIGHT_METRICS_PORT), and the database and broker URLs
become a database and a vhost of this test's own. Nothing else of a block is changed.

The blocks run in a checkout of their own (the repository's files and .venv, linked into a
temporary directory) so the files they write (CSV files, downloads, `.run/`) stay out of the
repository, and with no virtualenv on PATH: the README's `source .venv/bin/activate` puts
`hindsight` there. The untagged synopsis at the top (`make run`, `make test`) is this test
itself: a fresh standalone stack, and the suite it runs in.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import create_vhost, delete_vhost, drop_database
from tests.e2e.readme_blocks import Block, Ran, fenced, mismatch, run_in_one_shell, shell_blocks
from tests.stacks import ROOT, Stack, free_port, start_standalone

pytestmark = pytest.mark.timeout(300)
README = ROOT / "README.md"
URL = "http://127.0.0.1:8000"
DISTRIBUTED = "## Distributed mode on this machine"
DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/hindsight"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_standalone(tmp_path_factory.mktemp("readme-data"), tmp_path_factory.mktemp("readme-logs"))
    yield s
    s.stop(signal.SIGINT)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository as a newcomer's working copy after `make build`: its tracked top-level entries,
    .venv and build/ (without which `make up` would compile the engine again), linked."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names = {path.split("/", 1)[0] for path in tracked.split("\0") if path} | {".venv", "build"}
    home = tmp_path_factory.mktemp("readme-checkout")
    for name in sorted(names):
        if (ROOT / name).exists():
            (home / name).symlink_to(ROOT / name)
    return home


def free_ports(n: int) -> int:
    """The first of n consecutive free loopback ports."""
    for _ in range(200):
        base = 14000 + secrets.randbelow(5900)  # below the test workers' blocks (tests.stacks.free_port)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


@pytest.fixture(scope="module")
def distributed(checkout: Path) -> Iterator[dict[str, str]]:
    """Where the README's `make up` goes here: a database (make up creates it), a vhost, free ports."""
    database = f"hs_test_{secrets.token_hex(4)}"
    vhost, amqp_url = create_vhost()
    ports = {n: free_port() for n in ("gateway", "results", "engine", "notifier")}
    where = {
        "url": f"http://127.0.0.1:{ports['gateway']}",
        "database_url": DATABASE_URL.rsplit("/", 1)[0] + f"/{database}",
        "amqp_url": amqp_url,
        "HINDSIGHT_PORT": str(ports["gateway"]),
        "HINDSIGHT_METRICS_PORT": str(free_ports(4)),
    }
    for name in ("results", "engine", "notifier"):
        where[f"{name.upper()}_PORT"] = str(ports[name])
        where[f"{name.upper()}_ADDR"] = f"127.0.0.1:{ports[name]}"
    yield where
    if (checkout / ".run" / "pids.json").exists():  # a block failed between `make up` and `make down`
        env = dict(os.environ, **{k: v for k, v in where.items() if k.isupper()},
                   DATABASE_URL=where["database_url"], AMQP_URL=where["amqp_url"])
        subprocess.run([sys.executable, "-m", "services.up", "stop"], cwd=checkout, env=env, capture_output=True,
                       timeout=120, check=False)
    drop_database(database)
    delete_vhost(vhost)


def newcomer_env(stack: Stack, distributed: dict[str, str]) -> dict[str, str]:
    """This process's environment without our settings or virtualenv, plus the ports of this run."""
    venv_bin = str(ROOT / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HINDSIGHT_", "OTEL_", "RESULTS_", "ENGINE_", "NOTIFIER_"))
           and k not in ("DATABASE_URL", "AMQP_URL", "VIRTUAL_ENV", "PYTHONPATH")
           # Under `make test` these say "a make inside a make", whose `make up`/`make down`
           # would print "make[1]: Entering directory ..." lines a newcomer never sees.
           and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and os.path.realpath(p) != os.path.realpath(venv_bin))
    env.update({k: v for k, v in distributed.items() if k.isupper()}, HINDSIGHT_URL=stack.base_url)
    return env


def substituted(block: Block, stack: Stack, distributed: dict[str, str]) -> str:
    if block.section != DISTRIBUTED:
        body = block.body.replace(URL, stack.base_url)
    else:
        for readme_says in (URL, DATABASE_URL, AMQP_URL):
            assert readme_says in block.body, f"README.md line {block.line}: the block no longer says {readme_says}"
        body = (block.body.replace(URL, distributed["url"]).replace(DATABASE_URL, distributed["database_url"])
                .replace(AMQP_URL, distributed["amqp_url"]))
    # Whatever still names the port of `make run` (or of the seeds' clients) would reach a stack
    # that is not this test's: write the address as http://127.0.0.1:8000, which is substituted.
    for port in (":8000", ":8086"):
        assert port not in body, f"README.md line {block.line}: {port} in an address the test does not substitute"
    return body


def test_the_readme_runs_top_to_bottom(stack: Stack, checkout: Path, distributed: dict[str, str]) -> None:
    blocks = shell_blocks(README.read_text())
    assert blocks and DISTRIBUTED in {b.section for b in blocks}
    steps: list[Ran] = []
    for block in blocks:
        body = substituted(block, stack, distributed)
        steps += [Ran(block, step, step.code) for step in block.steps(body)]
    started = time.monotonic()
    ran = run_in_one_shell(steps, checkout, newcomer_env(stack, distributed), timeout=240)
    assert ran, "the shell did not start"
    problems = [r.report(f"exit status {r.failed}") if r.failed is not None else r.report(why)
                for r in ran if r.failed is not None or (why := mismatch(r.stdout, r.step.shown))]
    assert not problems, "\n\n".join(problems)
    assert len(ran) == len(steps)
    slowest = sorted(ran, key=lambda r: -r.seconds)[:5]
    # How long it took is printed, not asserted (a loaded machine is slow; a hang hits the timeout).
    print(f"the README ran in {time.monotonic() - started:.0f} s; slowest steps:",
          *(f"{r.seconds:5.1f} s  {r.where()}: {r.code.splitlines()[0]}" for r in slowest), sep="\n")


def test_the_refusal_shown_is_the_answer(stack: Stack) -> None:
    """Bring your own data: the ```text block is what the API answers to the request the sentence
    before it describes (the first example's Yahoo file imported as binance), and nothing is stored."""
    text = README.read_text()
    start = text.index("## Bring your own data")
    section = text[start:text.index("\n## ", start + 1)]
    [refusal] = [b for b in fenced(section) if b.lang == "text"]
    assert "-F file=@aapl.csv -F ticker=AAPL -F interval=1d -F format=binance" in section
    yahoo = next(b for b in shell_blocks(section) if "aapl.csv" in b.body).body
    csv = yahoo.split("<<'CSV'\n", 1)[1].split("\nCSV\n", 1)[0] + "\n"
    with httpx.Client(base_url=stack.base_url, timeout=30, headers={"X-API-Key": stack.api_key}) as c:
        before = c.get("/api/v1/datasets").json()["datasets"]
        r = c.post("/api/v1/datasets", files={"file": ("aapl.csv", csv.encode(), "text/csv")},
                   data={"ticker": "AAPL", "interval": "1d", "format": "binance"})
        assert r.status_code == 400 and r.json() == json.loads(refusal.body)
        assert c.get("/api/v1/datasets").json()["datasets"] == before
