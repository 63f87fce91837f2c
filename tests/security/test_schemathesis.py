"""Schemathesis over the gateway's /openapi.json: generated requests to every operation
(examples, boundary values, fuzzing, and stateful sequences that feed one operation's
answers into the next) against a real standalone stack. No input may give a 5xx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stacks import DEV_KEY, Stack, start_standalone

ST = Path(sys.executable).parent / "st"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_standalone(tmp_path_factory.mktemp("st-data"), tmp_path_factory.mktemp("st-logs"))
    yield s
    s.stop(signal.SIGINT)


def test_no_generated_request_gets_a_server_error(stack: Stack, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    cmd = [
        str(ST), "run", f"{stack.base_url}/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing,stateful",
        # 12 generated requests per operation and phase (the coverage phase adds its boundary values):
        # HINDSIGHT_SCHEMATHESIS_EXAMPLES=100 for a deeper run.
        "--max-examples", os.environ.get("HINDSIGHT_SCHEMATHESIS_EXAMPLES", "12"),
        "--workers", "1",  # hypothesis's own lambda introspection is not thread-safe here
        "--exclude-path-regex", ".*/stream$",  # SSE streams stay open until their job ends
        "--header", f"X-API-Key: {DEV_KEY}",
        "--report", "junit", "--report-junit-path", str(report),
        "--seed", "20261205",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:] + "\n" + stack.log_text()[-3000:]
    assert "generated" in out and " passed" in out, out[-3000:]
