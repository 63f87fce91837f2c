"""checkov over the rendered manifests and the Dockerfiles: no failed check, and
every skipped one justified next to its skip. checkov runs once per framework per
session (it takes seconds), with --skip-download so it never calls home."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import DOCKER, K8S, SERVICES, load_yaml, tool

SKIP_ANNOTATION = re.compile(r"^checkov\.io/skip\d+$")
# checkov splits the value on "=": exactly one, an ID before it and a real reason after it.
SKIP_VALUE = re.compile(r"^(CKV2?_[A-Z0-9]+_\d+)=([^=]{30,})$")
DOCKER_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")

K8S_CANARY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: canary
spec:
  selector: {matchLabels: {app: canary}}
  template:
    metadata: {labels: {app: canary}}
    spec:
      containers:
        - name: canary
          image: busybox:latest
          securityContext: {privileged: true}
"""
DOCKER_CANARY = "FROM python:latest\nADD . /app\nCMD [\"python\"]\n"


def run_checkov(framework: str, targets: list[str]) -> dict:
    proc = subprocess.run(
        [tool("checkov"), "--skip-download", "--framework", framework, "-o", "json", *targets],
        check=False,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    # One JSON document per target directory (a list when frameworks mix): merge them.
    docs, text, pos = [], proc.stdout, 0
    decoder = json.JSONDecoder()
    while pos < len(text.rstrip()):
        doc, end = decoder.raw_decode(text, pos)
        docs += doc if isinstance(doc, list) else [doc]
        pos = end + len(text[end:]) - len(text[end:].lstrip())
    reports = [d for d in docs if d.get("check_type") == framework]
    assert reports, proc.stdout[-2000:]
    merged = {"results": {"failed_checks": [], "skipped_checks": [], "passed_checks": []},
              "summary": {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}}
    for r in reports:
        for k in merged["results"]:
            merged["results"][k] += r["results"].get(k, [])
        for k in merged["summary"]:
            merged["summary"][k] += r["summary"][k]
    assert merged["summary"]["parsing_errors"] == 0
    return merged


def split(report: dict, canary: str) -> tuple[list[dict], list[dict], list[dict]]:
    """(our failed checks, canary's failed checks, our skipped checks)."""
    failed = report["results"]["failed_checks"]
    is_canary = [canary in f["file_path"] or canary in f["resource"] for f in failed]
    skipped = [s for s in report["results"]["skipped_checks"] if canary not in s["file_path"]]
    return ([f for f, c in zip(failed, is_canary) if not c], [f for f, c in zip(failed, is_canary) if c], skipped)


def describe(checks: list[dict]) -> str:
    return "\n".join(f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in checks)


@pytest.fixture(scope="module")
def k8s_report(overlays, tmp_path_factory) -> dict:
    canary = tmp_path_factory.mktemp("checkov-k8s-canary") / "canary.yaml"
    canary.write_text(K8S_CANARY)
    targets = [a for r in overlays.values() for a in ("-f", str(r.path))] + ["-f", str(canary)]
    return run_checkov("kubernetes", targets)


@pytest.fixture(scope="module")
def docker_report(tmp_path_factory) -> dict:
    # One directory (checkov 3.3 scans only the first of several -d, and ignores -f beside -d):
    # copies of ours beside the canary.
    scan_dir = tmp_path_factory.mktemp("checkov-docker")
    for path in DOCKER.glob("*Dockerfile*"):
        shutil.copy(path, scan_dir / path.name)
    (scan_dir / "canary.Dockerfile").write_text(DOCKER_CANARY)
    return run_checkov("dockerfile", ["-d", str(scan_dir)])


def test_manifests_have_no_failed_checks(k8s_report):
    ours, canary, _ = split(k8s_report, "canary")
    # The canary proves the scan ran with the usual policies ...
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= {c["check_id"] for c in canary}, describe(canary)
    # ... and nothing of ours fails.
    assert not ours, describe(ours)
    scanned = {c["resource"] for c in k8s_report["results"]["passed_checks"]}
    for namespace in ("hindsight-dev", "hindsight"):
        for svc in SERVICES:
            assert f"Deployment.{namespace}.{svc}" in scanned


def test_every_manifest_skip_is_justified(k8s_report):
    _, _, skipped = split(k8s_report, "canary")
    for s in skipped:
        comment = s["check_result"].get("suppress_comment", "")
        assert comment and comment != "No comment provided" and len(comment) >= 30, (s["check_id"], s["resource"])


def test_skip_annotations_in_the_sources_are_well_formed():
    """Each `checkov.io/skipN` in deploy/k8s (on an object, or added by an overlay's
    patch) names one check and says why."""
    count = 0
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in load_yaml(path):
            if doc.get("kind") == "Kustomization":
                for patch in doc.get("patches", []):
                    for m in re.finditer(r"checkov\.io~1skip\d+\s*\n\s*value: (.*)", patch.get("patch", "")):
                        count += 1
                        assert SKIP_VALUE.match(m.group(1).strip()), f"{path}: {m.group(0)}"
                continue
            for key, value in ((doc.get("metadata") or {}).get("annotations") or {}).items():
                if SKIP_ANNOTATION.match(key):
                    count += 1
                    assert SKIP_VALUE.match(value), f"{path}: {key}: {value}"
    assert count > 0


def test_rendered_skip_annotations_are_unique_per_object(overlays):
    for r in overlays.values():
        for o in r.objects:
            ann = o["metadata"].get("annotations", {})
            ids = [v.split("=")[0] for k, v in ann.items() if SKIP_ANNOTATION.match(k)]
            assert len(ids) == len(set(ids)), o["metadata"]["name"]
            for k, v in ann.items():
                if SKIP_ANNOTATION.match(k):
                    assert SKIP_VALUE.match(v), f"{o['metadata']['name']}: {k}: {v}"


def test_dockerfiles_have_no_failed_checks(docker_report):
    ours, canary, skipped = split(docker_report, "canary")
    assert {"CKV_DOCKER_3", "CKV_DOCKER_7"} <= {c["check_id"] for c in canary}, describe(canary)
    assert not ours, describe(ours)
    scanned = {c["file_path"].rsplit("/", 1)[-1] for c in docker_report["results"]["passed_checks"]}
    assert {f"{svc}.Dockerfile" for svc in SERVICES} <= scanned
    for s in skipped:
        comment = s["check_result"].get("suppress_comment", "")
        assert comment and len(comment) >= 30, (s["check_id"], s["resource"])


def test_dockerfile_skip_comments_are_justified():
    for path in sorted(Path(DOCKER).glob("*Dockerfile*")):
        for m in DOCKER_SKIP.finditer(path.read_text()):
            assert m.group(2) and len(m.group(2).strip()) >= 30, f"{path.name}: {m.group(0)}"
