"""What can be checked of the images without a Docker engine: the Dockerfiles and
.dockerignore parsed and held to the issue's rules, the modules each image needs
against what it copies, and the HEALTHCHECK script run against real servers."""

from __future__ import annotations

import ast
import asyncio
import http.server
import importlib.util
import re
import threading
from pathlib import Path

import pytest

from libs import grpc_util
from libs.settings import SEED_DEV_API_KEY, Settings
from tests.deploy.conftest import DOCKER, ROOT, SERVICES
from tests.deploy.dockerfile_parse import DockerIgnore, Stage, parse_dockerfile

PINNED_IMAGE = re.compile(r"^[\w.\-/]+:(?!latest$)[\w.\-]*\d[\w.\-]*(@sha256:[0-9a-f]{64})?$|^[\w.\-/]+@sha256:[0-9a-f]{64}$")
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|DATABASE_URL|AMQP_URL|SMTP_URL", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
SECRET_FILES = re.compile(r"(^|/)(\.env(\..*)?|.*\.pem|.*\.key|id_rsa.*|\.git|\.hindsight|\.venv)(/|$)")
BUILD_TOOLS = re.compile(r"\b(apt-get|apk|pip|gcc|g\+\+|cc|make|cython|cythonize|grpc_tools)\b")
GRPC_PORT_SETTING = {"results": "RESULTS_PORT", "engine": "ENGINE_PORT", "notifier": "NOTIFIER_PORT"}


def stages_of(service: str) -> list[Stage]:
    return parse_dockerfile(DOCKER / f"{service}.Dockerfile")


@pytest.fixture(params=SERVICES)
def service(request) -> str:
    return request.param


def test_one_dockerfile_per_service_and_nothing_else():
    assert sorted(p.name for p in DOCKER.glob("*Dockerfile*")) == sorted(f"{s}.Dockerfile" for s in SERVICES)


def test_multi_stage_with_pinned_base_images(service):
    stages = stages_of(service)
    assert len(stages) >= 2, "builder + runtime"
    aliases = {s.alias for s in stages if s.alias}
    for stage in stages:
        if stage.base in aliases:
            continue
        assert PINNED_IMAGE.match(stage.base), f"{service}: base image {stage.base!r} is not pinned to a version tag"
        # Builder and runtime on one interpreter: the venv's symlinks and the compiled
        # extensions' ABI must match.
        assert stage.base.startswith("python:3.11.") and "slim-bookworm" in stage.base, stage.base
    assert len({s.base for s in stages if s.base not in aliases}) == 1


def test_same_base_image_in_every_dockerfile():
    bases = {s.base for svc in SERVICES for s in stages_of(svc)}
    assert len(bases) == 1, bases


def test_runtime_runs_as_a_numeric_non_root_user(service):
    runtime = stages_of(service)[-1]
    users = runtime.all("USER")
    assert users, f"{service}: no USER in the runtime stage"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric and not root, so runAsNonRoot can verify it"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # ...and it is the user the stage creates.
    created = " ".join(i.args for i in runtime.all("RUN"))
    assert f"--uid {uid}" in created
    # USER comes before what runs: CMD/HEALTHCHECK follow it.
    cmd_line = runtime.all("CMD")[-1].line
    assert users[-1].line < cmd_line


def test_runtime_stage_has_no_build_tools(service):
    stages = stages_of(service)
    runtime, builder_aliases = stages[-1], {s.alias for s in stages[:-1]}
    for run in runtime.all("RUN"):
        assert not BUILD_TOOLS.search(run.args), f"{service}: runtime RUN installs or builds: {run.args}"
    for copy in runtime.all("COPY"):
        flags, paths = copy.flags_and_paths()
        if "from" in flags:
            assert flags["from"] in builder_aliases
        else:
            # From the context, only the health-check script: code comes built from the builder.
            assert paths[:-1] == ["deploy/docker/healthcheck.py"], copy.args
    # Build-only packages are removed from the venv the runtime copies.
    builder_runs = " ".join(i.args for s in stages[:-1] for i in s.all("RUN"))
    assert re.search(r"pip uninstall .*grpcio-tools", builder_runs) and re.search(r"pip uninstall .*cython", builder_runs)


def test_builder_generates_protos_and_engine_compiles_kernels(service):
    builder_runs = " ".join(i.args for s in stages_of(service)[:-1] for i in s.all("RUN"))
    assert "grpc_tools.protoc" in builder_runs and "libs/gen" in builder_runs
    if service == "engine":
        assert "services/engine/setup.py build_ext --inplace" in builder_runs
        assert re.search(r"apt-get install .*\bgcc\b", builder_runs)


def test_no_secrets_baked_in(service):
    path = DOCKER / f"{service}.Dockerfile"
    text = path.read_text()
    assert SEED_DEV_API_KEY not in text
    assert not URL_WITH_PASSWORD.search(text), "a URL with credentials"
    for stage in stages_of(service):
        for instr in stage.all("ENV") + stage.all("ARG"):
            for name, value in instr.env_pairs().items():
                if SECRET_NAME.search(name):
                    assert not value, f"{service}:{instr.line}: {instr.keyword} {name} has a value baked in"
        for instr in stage.all("COPY") + stage.all("ADD"):
            _, paths = instr.flags_and_paths()
            for src in paths[:-1]:
                assert not SECRET_FILES.search(src), f"{service}:{instr.line}: copies {src}"


def test_entrypoint_module_exists(service):
    runtime = stages_of(service)[-1]
    assert not runtime.all("ENTRYPOINT"), "CMD only, so the Job can run another module with the same image"
    cmd = runtime.all("CMD")[-1].exec_form()
    assert cmd == ["python", "-m", f"services.{service}"], cmd
    assert (ROOT / "services" / service / "__main__.py").is_file()
    if service == "results":
        assert (ROOT / "services" / "results" / "migrate.py").is_file()


def test_healthcheck_uses_the_shipped_script_and_the_service_port(service):
    runtime = stages_of(service)[-1]
    (health,) = runtime.all("HEALTHCHECK")
    cmd = health.exec_form()
    assert cmd[:2] == ["python", "/app/healthcheck.py"]
    kind, port_env, default = cmd[2:5]
    fields = {f.upper(): f for f in Settings.model_fields}
    assert port_env in fields
    assert int(default) == Settings.model_fields[fields[port_env]].default
    if service == "gateway":
        assert kind == "http" and cmd[5] == "/health"
    else:
        assert kind == "grpc" and port_env == GRPC_PORT_SETTING[service]
    exposed = {int(p) for i in runtime.all("EXPOSE") for p in i.args.split()}
    assert exposed == {int(default)}


def test_copied_sources_exist_and_are_in_the_build_context(service):
    ignore = DockerIgnore(ROOT / ".dockerignore")
    for stage in stages_of(service):
        for copy in stage.all("COPY"):
            flags, paths = copy.flags_and_paths()
            if "from" in flags:
                continue
            for src in paths[:-1]:
                assert (ROOT / src).exists(), f"{service}: COPY {src}: no such path"
                assert not ignore.excluded(src), f"{service}: COPY {src} is excluded by .dockerignore"


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py", base.with_suffix(".pyx")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every module named by an import anywhere in the file (lazy ones too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if path.suffix == ".pyx":
        return set()
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def import_closure(*entry_modules: str) -> tuple[set[Path], set[str]]:
    """(repo files reached from the entry modules, generated `hindsight.*` modules named)."""
    files: set[Path] = set()
    generated: set[str] = set()
    todo = list(entry_modules)
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        if mod.split(".")[0] == "hindsight":
            generated.add(mod)
            continue
        if mod.split(".")[0] not in ("services", "libs"):
            continue
        path = _module_file(mod)
        if path is None:
            continue  # a name imported from a module, not a module
        files.add(path)
        parts = mod.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        todo.extend(_imports(path, mod))
    return files, generated


def test_image_copies_every_module_its_entrypoint_imports(service):
    """The runtime holds services/__init__.py, services/<svc>/, libs/ and domain/ only: an import
    of another service's code would pass every test here and fail in the pod."""
    entries = [f"services.{service}.__main__"]
    if service == "results":
        entries += ["services.results.migrate", "services.results.migrations.env"]
    if service == "engine":
        entries += ["services.engine.sweep"]
    files, generated = import_closure(*entries)
    copied = []
    for stage in stages_of(service)[:-1]:
        for copy in stage.all("COPY"):
            flags, paths = copy.flags_and_paths()
            if "from" not in flags:
                copied += paths[:-1]
    assert files
    for f in files:
        rel = f.relative_to(ROOT).as_posix()
        assert any(rel == c or (c.endswith("/") and rel.startswith(c)) for c in copied), (
            f"{service}: the image needs {rel} (imported from its entrypoint) but copies only {copied}"
        )
    if generated:
        assert "protos/" in copied


def test_dockerignore_keeps_local_state_out_and_sources_in():
    ignore = DockerIgnore(ROOT / ".dockerignore")
    for path in (".venv/bin/python", ".venv-tools/bin/checkov", ".env", "services/results/.env", ".hindsight/x.db",
                 ".run/results.log", "libs/gen/hindsight/jobs/v1/jobs_pb2.py", "services/engine/_core/sweep_kernel.c",
                 "services/engine/_core/sweep_kernel.cpython-311-x86_64-linux-gnu.so", "build/k8s/dev.yaml",
                 "libs/__pycache__/bus.cpython-311.pyc", "tests/conftest.py", ".git/config", "deploy/k8s/base/results.yaml",
                 "key.pem"):
        assert ignore.excluded(path), f"{path} would be sent to the Docker daemon"
    for path in ("requirements.txt", "protos/hindsight/jobs/v1/jobs.proto", "libs/bus.py", "services/__init__.py",
                 "services/engine/_core/sweep_kernel.pyx", "services/engine/_core/twosum.pxd", "services/results/alembic.ini",
                 "services/results/migrations/env.py", "deploy/docker/healthcheck.py"):
        assert not ignore.excluded(path), f"{path} is needed by the build but excluded"


# ---- the HEALTHCHECK script, against real servers -------------------------------------

def _healthcheck_module():
    spec = importlib.util.spec_from_file_location("hindsight_healthcheck", DOCKER / "healthcheck.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def test_healthcheck_grpc_follows_the_health_service(monkeypatch):
    hc = _healthcheck_module()
    monkeypatch.delenv("HS_TEST_PORT", raising=False)
    server = await grpc_util.start_server([], host="127.0.0.1", port=0)
    try:
        assert await asyncio.to_thread(hc.main, ["grpc", "HS_TEST_PORT", str(server.port)]) == 1  # starts NOT_SERVING
        await server.set_serving(True)
        assert await asyncio.to_thread(hc.main, ["grpc", "HS_TEST_PORT", str(server.port)]) == 0
        monkeypatch.setenv("HS_TEST_PORT", str(server.port))  # the env variable wins over the default
        assert await asyncio.to_thread(hc.main, ["grpc", "HS_TEST_PORT", "1"]) == 0
    finally:
        await server.stop(0)
    monkeypatch.delenv("HS_TEST_PORT")
    assert await asyncio.to_thread(hc.main, ["grpc", "HS_TEST_PORT", str(server.port)]) == 1  # nothing listens


def test_healthcheck_http_needs_a_2xx(monkeypatch):
    hc = _healthcheck_module()
    monkeypatch.delenv("HS_TEST_PORT", raising=False)
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status["code"] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = str(httpd.server_address[1])
    try:
        assert hc.main(["http", "HS_TEST_PORT", port, "/health"]) == 0
        status["code"] = 503
        assert hc.main(["http", "HS_TEST_PORT", port, "/health"]) == 1
        assert hc.main(["http", "HS_TEST_PORT", port, "/elsewhere"]) == 1
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert hc.main(["http", "HS_TEST_PORT", port, "/health"]) == 1
    assert hc.main(["bogus"]) == 2
