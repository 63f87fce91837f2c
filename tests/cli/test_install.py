"""Issue 16: the project installs like a Python project (`pip install -e .`, what `make build`
runs): the console scripts `hindsight` and `hindsight-admin` are the distribution's entry points
and run from any directory with nothing on PYTHONPATH; no hand-written .pth file remains."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def test_console_scripts_are_the_distributions_entry_points():
    scripts = {ep.name: ep.value for ep in metadata.distribution("hindsight").entry_points
               if ep.group == "console_scripts"}
    assert scripts == {"hindsight": "cli.main:main", "hindsight-admin": "services.results.admin:main"}


def test_no_handwritten_path_file():
    site = Path(sysconfig.get_paths()["purelib"])
    assert not (site / "hindsight-paths.pth").exists()


@pytest.mark.parametrize(("script", "expect"), [("hindsight", "sweep"), ("hindsight-admin", "create-key")])
def test_scripts_run_from_anywhere(tmp_path, script, expect):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{BIN}{os.pathsep}/usr/bin:/bin"
    out = subprocess.run([script, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout
