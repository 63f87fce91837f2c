"""KEDA objects of rendered manifests against KEDA's own schema, strictly; run with the
tools' Python (`make k8s`, tests/deploy).

kubernetes-validate knows only Kubernetes' built-in kinds, so for each rendered file this
checks the `keda.sh` objects here and writes the rest to `<core-dir>/<file name>` for
kubernetes-validate. The schema is the one of the pinned package cloudcoil.models.keda
(deploy/requirements-tools.txt), generated from the CRDs of the KEDA release its version
names; every object schema is closed (no property the CRD does not declare), as
kubernetes-validate's --strict does for built-in kinds.

    python deploy/keda_check.py --core-dir build/k8s/core build/k8s/dev.yaml build/k8s/prod.yaml

Prints one line per object ("PASS kind/name in file" or "ERROR kind/name in file: why")
and exits 1 when any KEDA object fails.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from cloudcoil.models.keda import v1alpha1

KINDS = {"ScaledObject": v1alpha1.ScaledObject, "TriggerAuthentication": v1alpha1.TriggerAuthentication}
KEDA_VERSION = ".".join(version("cloudcoil.models.keda").split(".")[:3])


def _closed(node: Any) -> Any:
    """The schema with additionalProperties false on every object that lists its properties."""
    if isinstance(node, dict):
        out = {k: _closed(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


def schema(kind: str) -> dict[str, Any]:
    return _closed(KINDS[kind].model_json_schema(by_alias=True))


def problems(obj: dict[str, Any]) -> list[str]:
    """What is wrong with one keda.sh object (an unknown kind or version is wrong too)."""
    if obj.get("apiVersion") != "keda.sh/v1alpha1" or obj.get("kind") not in KINDS:
        return [f"no schema for {obj.get('apiVersion')} {obj.get('kind')} in KEDA {KEDA_VERSION}"]
    validator = jsonschema.Draft202012Validator(schema(obj["kind"]))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(obj)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core-dir", type=Path, required=True, help="where the non-KEDA objects are written")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    args.core_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for path in args.files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        core = [d for d in docs if not str(d.get("apiVersion", "")).startswith("keda.sh/")]
        for obj in docs:
            if obj in core:
                continue
            what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} in {path.name}"
            found = problems(obj)
            failed |= bool(found)
            print(f"ERROR {what}: {'; '.join(found)}" if found else f"PASS {what} (KEDA {KEDA_VERSION}, strict)")
        (args.core_dir / path.name).write_text(yaml.safe_dump_all(core, sort_keys=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
