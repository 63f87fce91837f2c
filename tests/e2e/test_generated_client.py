"""A Python client generated from `/openapi.json` by a maintained generator
(openapi-python-client, pinned in requirements-dev.txt) runs the seed-001 sweep flow
against a real standalone stack: health, submit a sweep (JSON, and the seed's form),
follow the job, read the best combinations.

The generator must take every operation without a warning (`--fail-on-warning`): a
warning is an operation or a response it could not generate. Its only setting beyond
names is that a ZIP is binary (`application/zip` read as `application/octet-stream`).
One bug of the generator is worked around (see `_import_unset`).
"""

from __future__ import annotations

import importlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from domain.sweep import sweep_combos
from tests.stacks import Stack, start_standalone

PACKAGE = "hindsight_api_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
CONFIG = f"""\
package_name_override: {PACKAGE}
post_hooks: []
content_type_overrides:
  application/zip: application/octet-stream
"""
TICKER = "DEMO-DAILY"  # a demo dataset of the standalone stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_standalone(tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("logs"))
    yield s
    codes = s.stop(signal.SIGINT)
    assert codes["standalone"] == 0, s.log_text()


@pytest.fixture(scope="module")
def spec(stack: Stack) -> dict[str, Any]:
    r = httpx.get(stack.base_url + "/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def api(spec: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, imported."""
    assert GENERATOR.exists(), f"{GENERATOR} is missing: `make build` installs requirements-dev.txt"
    work = tmp_path_factory.mktemp("generated")
    (work / "openapi.json").write_text(json.dumps(spec))
    (work / "config.yaml").write_text(CONFIG)
    r = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(work / "openapi.json"), "--config", str(work / "config.yaml"),
         "--meta", "none", "--output-path", str(work / PACKAGE), "--fail-on-warning"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    output = r.stdout + r.stderr
    assert r.returncode == 0, output
    assert "warning" not in output.lower(), output
    fixed = _import_unset(work / PACKAGE)
    assert fixed <= MULTI_MEDIA_BODIES, fixed
    # Every operation of the document became a function of the client.
    generated = {p.stem for p in (work / PACKAGE / "api").glob("*/*.py") if p.stem != "__init__"}
    operations = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    assert len(generated) == len(operations), sorted(operations ^ generated)
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


# Operations whose body is documented under two media types (JSON and the seed's form).
MULTI_MEDIA_BODIES = {"strategy_sweep_api_v1_strategy_sweep_post", "trigger_api_pipelines_trigger_post"}


def _import_unset(package: Path) -> set[str]:
    """openapi-python-client 0.29.1 annotates a required body with several media types
    `| Unset` without importing `Unset` (openapi-generators/openapi-python-client#1451,
    fix proposed in #1478): add the import where a module uses the name without it.
    Returns the operations fixed (none once the generator is fixed)."""
    fixed = set()
    for path in (package / "api").glob("*/*.py"):
        text = path.read_text()
        if re.search(r"\bUnset\b", text) and not re.search(r"^from \.\.\.types import .*\bUnset\b", text, re.MULTILINE):
            path.write_text(text.replace("from ...types import Response, UNSET\n",
                                         "from ...types import Response, UNSET, Unset\n", 1))
            fixed.add(path.stem)
    return fixed


def _op(tag: str, operation: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")


def test_seed001_flow_through_the_generated_client(stack: Stack, api: ModuleType) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    health = _op("system", "health_health_get")
    submit = _op("sweeps", "strategy_sweep_api_v1_strategy_sweep_post")
    get_job = _op("jobs", "get_job_api_v1_jobs_job_id_get")
    best = _op("sweeps", "sweep_best_api_v1_sweeps_sweep_run_id_best_get")

    client = api.AuthenticatedClient(
        base_url=stack.base_url, token=stack.api_key, prefix="", auth_header_name="X-API-Key",
        raise_on_unexpected_status=True, timeout=httpx.Timeout(30.0),
    )
    with client:
        up = health.sync(client=client)
        assert isinstance(up, models.Health) and up.status == "healthy" and up.version

        body = models.SweepRequest(
            ticker=TICKER, fast_range=[10, 20], slow_range=[20, 30], step=5, min_trades=10,
            strategy_type=models.SweepRequestStrategyType.SMA,
            config_path=models.SweepRequestConfigPathType0.MINIMUM,
        )
        accepted = submit.sync(client=client, body=body)
        assert isinstance(accepted, models.SweepAccepted), accepted
        assert accepted.status == "queued" and accepted.job_id.startswith("sweep_")
        assert accepted.parameters.combinations == len(sweep_combos(10, 20, 20, 30, 5)) == 8
        assert accepted.parameters.fast_range == [10, 20]

        # The seed's own encoding: a url-encoded form with "[10, 20]".
        form = models.SweepRequestForm(ticker=TICKER, fast_range="[10, 20]", slow_range="[20, 30]", step=5, min_trades=10)
        by_form = submit.sync(client=client, body=form)
        assert isinstance(by_form, models.SweepAccepted) and by_form.parameters.combinations == 8

        deadline = time.time() + 120
        job = get_job.sync(accepted.job_id, client=client)
        while isinstance(job, models.Job) and job.status not in ("completed", "failed", "cancelled"):
            assert time.time() < deadline, f"job still {job.status}"
            time.sleep(0.3)
            job = get_job.sync(accepted.job_id, client=client)
        assert isinstance(job, models.Job), job
        assert job.status == "completed", job.error_message
        assert job.kind and job.sweep_run_id and job.completed_at
        assert job.parameters["fast_range"] == [10, 20]

        top = best.sync(job.sweep_run_id, client=client, ticker=TICKER, limit=5)
        assert isinstance(top, models.SweepBest), top
        assert top.sweep_run_id == job.sweep_run_id and top.ticker == TICKER and top.job_id == accepted.job_id
        assert 0 < top.returned == len(top.results) <= 5
        assert top.total_results + top.excluded_below_min_trades == 8
        scores = [r.score for r in top.results]
        assert scores == sorted(scores, key=lambda s: (s is None, -(s or 0)))
        row = top.results[0]
        assert isinstance(row, models.SweepResultRow)
        assert (row.ticker, row.strategy_type) == (TICKER, "SMA") and row.fast_period < row.slow_period
        assert row.total_trades >= 10 and isinstance(row.avg_trade_duration, str)

        # A problem is the API's error model, typed.
        refused = submit.sync_detailed(client=client, body=models.SweepRequest(ticker=TICKER, fast_range=[10, 20],
                                                                              slow_range=[20, 30], step=99))
        assert refused.status_code == 400 and isinstance(refused.parsed, models.ErrorResponse)
        assert refused.parsed.error.code == "invalid_request"
