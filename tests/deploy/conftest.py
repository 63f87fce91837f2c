"""Fixtures of the deploy tests: the tools of .venv-tools (installed by `make tools`,
which `make test` runs), and both kustomize overlays rendered once per session."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKER = DEPLOY / "docker"
TOOLS = ROOT / ".venv-tools" / "bin"
OVERLAYS = ("dev", "prod")
SERVICES = ("results", "engine", "notifier", "gateway")
# Validated against the oldest Kubernetes we claim and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.32.0", "1.37.0")


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make tools` (deploy/requirements-tools.txt); `make test` does it")
    return str(path)


def load_yaml(*paths: Path | str, text: str | None = None) -> list[dict]:
    """YAML documents as dicts, parsed by the tools' Python (the services' venv has no PyYAML)."""
    script = (
        "import json, sys, yaml\n"
        "docs = []\n"
        "if len(sys.argv) > 1:\n"
        "    for p in sys.argv[1:]:\n"
        "        with open(p) as f: docs += [d for d in yaml.safe_load_all(f) if d is not None]\n"
        "else:\n"
        "    docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]\n"
        "json.dump(docs, sys.stdout)\n"
    )
    out = subprocess.run([tool("python"), "-c", script, *map(str, paths)], input=text, capture_output=True,
                         text=True, check=True, timeout=60)
    return json.loads(out.stdout)


@dataclass
class Rendered:
    """One overlay rendered by `kubectl kustomize`."""

    overlay: str
    path: Path
    objects: list[dict] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def workloads(self) -> list[dict]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]

    def config(self) -> dict[str, str]:
        (cm,) = [c for c in self.of_kind("ConfigMap") if c["metadata"]["name"].startswith("hindsight-config")]
        return cm["data"]


def render(overlay: str, out_dir: Path) -> Rendered:
    proc = subprocess.run([tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)], check=False,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {overlay} failed:\n{proc.stderr}"
    path = out_dir / f"{overlay}.yaml"
    path.write_text(proc.stdout)
    return Rendered(overlay, path, load_yaml(path))


@pytest.fixture(scope="session")
def rendered_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("k8s")


@pytest.fixture(scope="session")
def overlays(rendered_dir) -> dict[str, Rendered]:
    """Both overlays, rendered like `make k8s` does."""
    return {o: render(o, rendered_dir) for o in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def rendered(request, overlays) -> Rendered:
    return overlays[request.param]
