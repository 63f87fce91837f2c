"""Job kinds are one concept: every JobKind has one handler in results and one runner in
the engine, its spec is a field of the `spec` oneofs, its public name (the API's job
"kind", unchanged since the seeds) is written only in its handler, and it is spelled
nowhere else in the services."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from services.engine.kinds import registry as engine_kinds
from services.results.artifacts import ArtifactStore
from services.results.day_by_day import DayByDayConfig
from services.results.kinds import registry as results_kinds
from services.results.market_store import MarketStore

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ROOT / "services/results/kinds"
SOURCES = [p for d in ("services", "libs", "cli") for p in (ROOT / d).rglob("*.py") if "gen" not in p.parts]
# The names the API has always shown.
PUBLIC_NAMES = {jobs_pb2.JOB_KIND_SWEEP: "trading-sweep", jobs_pb2.JOB_KIND_DAY_BY_DAY: "day-backtest",
                jobs_pb2.JOB_KIND_RULE_SWEEP: "rule-sweep"}


def _results_registry(tmp_path: Path) -> results_kinds.KindRegistry:
    market = MarketStore(tmp_path / "market")
    return results_kinds.build(DayByDayConfig(ArtifactStore(tmp_path), 12.0, market), market)


async def test_every_kind_has_a_handler_a_runner_and_a_spec(tmp_path: Path) -> None:
    kinds = _results_registry(tmp_path)
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never connects: the runners only hold stubs
    runners = engine_kinds.build(channel)
    await channel.close()
    specs = {f.name for f in results_pb2.SubmitJobRequest.DESCRIPTOR.oneofs_by_name["spec"].fields}
    job_specs = {f.name for f in jobs_pb2.Job.DESCRIPTOR.oneofs_by_name["spec"].fields}
    for kind in jobs_pb2.JobKind.values():
        if kind == jobs_pb2.JOB_KIND_UNSPECIFIED:
            continue
        handler = kinds.for_kind(kind)
        assert handler.kind == kind and runners.get(kind) is not None, jobs_pb2.JobKind.Name(kind)
        assert handler.spec_field in specs & job_specs
        assert kinds.for_name(handler.name) is handler
    assert {kinds.for_kind(k).name for k in PUBLIC_NAMES} == set(PUBLIC_NAMES.values())
    assert all(kinds.for_kind(k).name == name for k, name in PUBLIC_NAMES.items())


def test_a_kind_name_is_written_only_in_its_handler(tmp_path: Path) -> None:
    names = _results_registry(tmp_path).names
    literal = re.compile("|".join(rf"""["']{re.escape(n)}["']""" for n in names))
    # Prose may name a kind too: any spelling of it outside the handlers is a copy.
    anywhere = re.compile("|".join(re.escape(n) for n in names))
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in SOURCES
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if p.parent != HANDLERS and anywhere.search(line)
    ]
    assert not found, f"job kinds are named in services/results/kinds/ only; also at {found}"
    in_handlers = [p.name for p in HANDLERS.glob("*.py") if literal.search(p.read_text())]
    assert sorted(in_handlers) == ["day_by_day.py", "rule_sweep.py", "sweep.py", "walkforward.py"]
