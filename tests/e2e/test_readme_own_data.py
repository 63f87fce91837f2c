"""The README's "Bring your own data" is true: its shell blocks run in order, verbatim (the
port substituted), against a fresh standalone stack, each exiting 0 with the output shown
under it (`# → ` lines; a JSON answer shows some of its fields, `...` standing for the
others; `…` in a line of text stands for anything); the refusal shown is what the API
answers to the request the README describes, and it stores nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stacks import ROOT, Stack, start_standalone

pytestmark = pytest.mark.timeout(180)
SECTION = "## Bring your own data"
README_URL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_standalone(tmp_path_factory.mktemp("byod-data"), tmp_path_factory.mktemp("byod-logs"))
    yield s
    s.stop(signal.SIGINT)


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end if end >= 0 else None]


def fenced(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]


def shown_outputs(block: str) -> list[str]:
    """The outputs a block shows: each `# → ` line, with the `#    ` lines that continue it."""
    outputs: list[str] = []
    for line in block.splitlines():
        if line.startswith("# → "):
            outputs.append(line[len("# → "):])
        elif line.startswith("#    ") and outputs:
            outputs[-1] += " " + line[1:].strip()
    return outputs


def contains(actual: Any, shown: Any) -> bool:
    """Every field shown is in the answer with the value shown (objects may have more fields)."""
    if isinstance(shown, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in shown.items())
    return actual == shown


def check_output(stdout: str, outputs: list[str]) -> None:
    if outputs and outputs[0].startswith("{"):
        assert len(outputs) == 1
        shown = json.loads(outputs[0].replace(", ...}", "}"))
        answer = json.loads(stdout)
        assert contains(answer, shown), (answer, shown)
        return
    lines = stdout.splitlines()
    assert len(lines) == len(outputs), (lines, outputs)
    for line, pattern in zip(lines, outputs):
        assert re.fullmatch(".*".join(re.escape(part) for part in pattern.split("…")), line), (line, pattern)


def test_every_example_runs_and_shows_what_it_prints(stack: Stack, tmp_path: Path) -> None:
    blocks = fenced(section())
    shell = [body for lang, body in blocks if lang == "bash"]
    assert len(shell) == 6  # yahoo, binance, metatrader 5, metatrader 4 by the CLI, TradingView, a mapping
    env = dict(os.environ, KEY=stack.api_key, HINDSIGHT_URL=stack.base_url,
               PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("HINDSIGHT_API_KEY", None)
    for body in shell:
        outputs = shown_outputs(body)
        assert outputs, body
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", body.replace(README_URL, stack.base_url)], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode == 0, (body, r.stdout, r.stderr)
        check_output(r.stdout, outputs)

    # The refusal shown: the Yahoo file of the first example imported as binance.
    [refusal] = [body for lang, body in blocks if lang == "text"]
    with httpx.Client(base_url=stack.base_url, timeout=30, headers={"X-API-Key": stack.api_key}) as c:
        before = c.get("/api/v1/datasets").json()["datasets"]
        r = c.post("/api/v1/datasets", files={"file": ("aapl.csv", (tmp_path / "aapl.csv").read_bytes(), "text/csv")},
                   data={"ticker": "AAPL", "interval": "1d", "format": "binance"})
        assert r.status_code == 400 and r.json() == json.loads(refusal)
        assert c.get("/api/v1/datasets").json()["datasets"] == before
