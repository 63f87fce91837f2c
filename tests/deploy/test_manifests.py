"""The kustomize overlays, rendered as `make k8s` renders them: valid against the
Kubernetes schemas (offline), and holding the rules of the deployment design."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from libs.bus import JOBS_QUEUE
from libs.settings import Settings
from services.gateway import __main__ as gateway_main
from services.gateway.auth import dev_tenant_allowed
from tests.deploy.conftest import DEPLOY, K8S, K8S_VERSIONS, ROOT, SERVICES, Rendered, load_yaml, tool

GRPC_PORTS = {"results": 50051, "engine": 50052, "notifier": 50053}
# Secret keys each of our containers gets (name of the container -> keys), required or optional.
# Every service: the internal gRPC token (required) and the scrape token (optional).
TOKENS = {"HINDSIGHT_INTERNAL_TOKEN": True, "HINDSIGHT_METRICS_TOKEN": False}
SECRET_KEYS = {
    "results": {"DATABASE_URL": True, "AMQP_URL": True, "HINDSIGHT_SECRET_KEY": True,
                "HINDSIGHT_BOOTSTRAP_KEYS": False, **TOKENS},
    "migrate": {"DATABASE_URL": True, "HINDSIGHT_SECRET_KEY": True},
    "engine": {"AMQP_URL": True, **TOKENS},
    "notifier": {"AMQP_URL": True, "HINDSIGHT_SMTP_URL": False, **TOKENS},
    "gateway": {"HINDSIGHT_SESSION_SECRET": True, **TOKENS},
}
# ConfigMap keys that are not Settings fields: read elsewhere (telemetry) or reserved for it.
NON_SETTINGS_KEYS = {"HINDSIGHT_LOG_LEVEL", "HINDSIGHT_METRICS_PORT"}
CANARY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: canary
  namespace: canary
spec:
  selector: {matchLabels: {app: canary}}
  template:
    metadata: {labels: {app: canary}}
    spec:
      containers:
        - name: canary
          image: busybox:latest
          securityContext: {privileged: true}
          terminationGracePeriodSecond: 1
"""


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def containers(obj: dict) -> list[dict]:
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def ours(r: Rendered) -> list[dict]:
    """Our workloads: the four Deployments and the migrations Job."""
    return [r.get("Deployment", s) for s in SERVICES] + r.of_kind("Job")


def image_tag(image: str) -> str:
    return image.rpartition(":")[2]


def drain_seconds() -> dict[str, float]:
    """How long each service may drain after SIGTERM, read from the code that drains."""
    runner = ast.parse((ROOT / "libs" / "runner.py").read_text())
    graces = [kw.value.value for node in ast.walk(runner) if isinstance(node, ast.Call)
              for kw in node.keywords if kw.arg == "grace" and isinstance(kw.value, ast.Constant)]
    assert len(graces) == 1, graces
    return {"results": graces[0], "engine": graces[0], "notifier": graces[0],
            "gateway": float(gateway_main.GRACEFUL_SHUTDOWN_SECONDS)}


# ---- rendering and schemas -----------------------------------------------------------

def test_both_overlays_render(overlays):
    for r in overlays.values():
        kinds = {o["kind"] for o in r.objects}
        assert {"Namespace", "ConfigMap", "Deployment", "Service", "ServiceAccount", "Job",
                "PodDisruptionBudget", "NetworkPolicy"} <= kinds
        assert {"HorizontalPodAutoscaler" if r.overlay == "dev" else "ScaledObject"} <= kinds
        namespace = r.get("Namespace", r.objects[0]["metadata"]["name"])["metadata"]["name"]
        for o in r.objects:
            if o["kind"] != "Namespace":
                assert o["metadata"].get("namespace") == namespace, f"{o['kind']}/{o['metadata']['name']}"


def keda_check(rendered_dir: Path, *files: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """deploy/keda_check.py as `make k8s` runs it: KEDA objects checked, the rest written for kubernetes-validate."""
    core = rendered_dir / "core"
    proc = subprocess.run([tool("python"), str(DEPLOY / "keda_check.py"), "--core-dir", str(core), *map(str, files)],
                          check=False, capture_output=True, text=True, timeout=120)
    return proc, core


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(overlays, rendered_dir, version):
    proc, core = keda_check(rendered_dir, *(r.path for r in overlays.values()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    canary = rendered_dir / "schema-canary.yaml"
    canary.write_text(CANARY)
    files = [str(core / r.path.name) for r in overlays.values()]
    proc = subprocess.run([tool("kubernetes-validate"), "--strict", "-k", version, *files, str(canary)],
                          check=False, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    errors = [line for line in out.splitlines() if line.startswith(("ERROR", "WARN"))]
    # The canary's misspelt field proves that strict validation runs at all ...
    assert any("schema-canary" in e and "terminationGracePeriodSecond" in e for e in errors), out[-2000:]
    # ... and it is the only error.
    real = [e for e in errors if "schema-canary" not in e]
    assert not real, "\n".join(real)
    passed = sum(1 for line in out.splitlines() if " passed for resource " in line)
    keda = sum(1 for r in overlays.values() for o in r.objects if o["apiVersion"].startswith("keda.sh/"))
    assert keda == 1 and passed == sum(len(r.objects) for r in overlays.values()) - keda


def test_the_keda_scaledobject_is_valid_against_kedas_schema_strictly(overlays, rendered_dir):
    prod = overlays["prod"]
    proc, _ = keda_check(rendered_dir, prod.path)
    assert proc.returncode == 0 and "PASS ScaledObject/engine in prod.yaml (KEDA 2.16.1, strict)" in proc.stdout, (
        proc.stdout + proc.stderr)
    # A misspelt field, a wrong type and a kind KEDA 2.16 does not have each fail the check.
    text = prod.path.read_text()
    bad = rendered_dir / "keda-canary.yaml"
    bad.write_text(text.replace("minReplicaCount:", "minReplicaCounts:").replace("pollingInterval: 10",
                                                                              "pollingInterval: often")
                   + "---\napiVersion: keda.sh/v1alpha1\nkind: ScaledWidget\nmetadata:\n  name: x\n")
    proc, _ = keda_check(rendered_dir / "canary", bad)
    assert proc.returncode == 1
    assert "'minReplicaCounts' was unexpected" in proc.stdout and "'often' is not valid" in proc.stdout, proc.stdout
    assert "ERROR ScaledWidget/x" in proc.stdout and "no schema for keda.sh/v1alpha1 ScaledWidget" in proc.stdout


# ---- the base: one file per service --------------------------------------------------

def test_base_has_one_file_per_service_with_deployment_service_and_serviceaccount():
    kustomization = load_yaml(K8S / "base" / "kustomization.yaml")[0]
    for svc in SERVICES:
        assert f"{svc}.yaml" in kustomization["resources"]
        kinds = {(o["kind"], o["metadata"]["name"]) for o in load_yaml(K8S / "base" / f"{svc}.yaml")}
        assert {("Deployment", svc), ("Service", svc), ("ServiceAccount", svc)} <= kinds


# ---- pods: security, resources, probes, shutdown -------------------------------------

def test_every_pod_is_locked_down(rendered):
    for w in rendered.workloads():
        name = f"{rendered.overlay}: {w['kind']}/{w['metadata']['name']}"
        spec = pod_spec(w)
        assert spec.get("automountServiceAccountToken") is False, name
        assert spec.get("enableServiceLinks") is False, name
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        sa = spec["serviceAccountName"]
        assert rendered.get("ServiceAccount", sa)["automountServiceAccountToken"] is False
        for c in containers(w):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert not sc.get("privileged"), name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name} {c['name']} {kind}"


def test_our_pods_write_only_to_an_emptydir_tmp(rendered):
    for w in ours(rendered):
        vols = {v["name"]: v for v in pod_spec(w)["volumes"]}
        for c in containers(w):
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts and "emptyDir" in vols[mounts["/tmp"]]


def test_native_grpc_probes_on_the_grpc_services(rendered):
    for svc, port in GRPC_PORTS.items():
        (c,) = pod_spec(rendered.get("Deployment", svc))["containers"]
        assert {"name": "grpc", "containerPort": port} in c["ports"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == port, f"{svc} {probe}"
        # Liveness is the most patient: a slow moment must not restart the pod.
        assert (c["livenessProbe"]["failureThreshold"] * c["livenessProbe"]["periodSeconds"]
                > c["readinessProbe"]["failureThreshold"] * c["readinessProbe"]["periodSeconds"])


def test_gateway_probes_health_for_readiness_and_livez_for_liveness(rendered):
    (c,) = pod_spec(rendered.get("Deployment", "gateway"))["containers"]
    assert {"name": "http", "containerPort": 8000} in c["ports"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}


def test_grace_period_outlasts_prestop_and_drain(rendered):
    drains = drain_seconds()
    for svc in SERVICES:
        spec = pod_spec(rendered.get("Deployment", svc))
        (c,) = spec["containers"]
        pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        budget = float(pre_stop[1]) + drains[svc]
        assert spec["terminationGracePeriodSeconds"] > budget, f"{svc}: {spec['terminationGracePeriodSeconds']} <= {budget}"
    # The engine hands an unfinished sweep back, which takes results calls: the widest margin.
    engine = pod_spec(rendered.get("Deployment", "engine"))["terminationGracePeriodSeconds"]
    assert engine >= max(pod_spec(rendered.get("Deployment", s))["terminationGracePeriodSeconds"] for s in SERVICES)


def test_services_select_their_pods_on_the_container_ports(rendered):
    for svc in SERVICES:
        service, deployment = rendered.get("Service", svc), rendered.get("Deployment", svc)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ports = {p["name"]: p["containerPort"] for p in pod_spec(deployment)["containers"][0]["ports"]}
        for p in service["spec"]["ports"]:
            assert p["targetPort"] in ports


# ---- configuration and secrets -------------------------------------------------------

def test_configmap_keys_are_settings_and_address_the_services(rendered):
    config = rendered.config()
    fields = {f.upper() for f in Settings.model_fields}
    for key in config:
        assert key in fields or key in NON_SETTINGS_KEYS or key.startswith("OTEL_"), f"unknown setting {key}"
    assert config["HINDSIGHT_MODE"] == "distributed"
    assert config["HINDSIGHT_METRICS_PORT"] == "9464"
    for svc, port in GRPC_PORTS.items():
        assert config[f"{svc.upper()}_PORT"] == str(port)
        host, _, addr_port = config[f"{svc.upper()}_ADDR"].partition(":")
        assert host == svc and int(addr_port) in {p["port"] for p in rendered.get("Service", svc)["spec"]["ports"]}
    # Every workload of ours reads it.
    name = next(c["metadata"]["name"] for c in rendered.of_kind("ConfigMap") if c["data"] is config)
    for w in ours(rendered):
        for c in containers(w):
            assert {"configMapRef": {"name": name}} in c["envFrom"]


def test_gateway_config_never_grants_the_dev_tenant(rendered, monkeypatch):
    """The gateway binds 0.0.0.0 in a pod; the credential-less dev tenant is for
    standalone on loopback only, and this configuration is neither."""
    for key, value in rendered.config().items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.hindsight_host == "0.0.0.0" and not settings.standalone
    assert dev_tenant_allowed(settings) is False


def test_secret_keys_per_container(rendered):
    secrets = {s["metadata"]["name"]: s for s in rendered.of_kind("Secret")}
    for w in ours(rendered):
        for c in containers(w):
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})}
            want = SECRET_KEYS[c["name"]]
            assert set(refs) == set(want), f"{c['name']}: {sorted(refs)}"
            for key, ref in refs.items():
                assert ref["key"] == key and ref["name"].startswith("hindsight-secrets")
                assert bool(ref.get("optional", False)) is not want[key], f"{c['name']} {key} optional?"
                if rendered.overlay == "dev":
                    assert key in secrets[ref["name"]]["data"] or ref.get("optional")
            # No whole-Secret envFrom: a container sees only its own keys.
            assert all("secretRef" not in e for e in c["envFrom"])


def test_dev_secrets_are_obviously_dev_and_prod_has_none(overlays):
    import base64

    dev = overlays["dev"]
    for secret in dev.of_kind("Secret"):
        for key, value in secret["data"].items():
            text = base64.b64decode(value).decode()
            assert "dev" in text, f"dev Secret {secret['metadata']['name']}/{key} does not look like a dev value"
    # prod references an externally managed Secret: nothing rendered, nothing generated.
    assert overlays["prod"].of_kind("Secret") == []
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for w in ours(overlays["prod"]) for c in containers(w)
            for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {"hindsight-secrets"}


# ---- images and the migrations Job ---------------------------------------------------

def test_images_are_pinned_and_dev_matches_make_images(overlays):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for r in overlays.values():
        for w in r.workloads():
            for c in containers(w):
                image = c["image"]
                tag = image_tag(image)
                assert ":" in image and tag != "latest" and re.search(r"\d", tag), f"{r.overlay}: {image} not pinned"
                if image.startswith("hindsight/"):
                    assert image.split(":")[0] in {f"hindsight/{s}" for s in SERVICES}
                    if r.overlay == "dev":
                        assert tag == version, f"dev runs {image}; `make images` builds :{version}"


def test_migrations_job_runs_before_the_services(rendered):
    (job,) = rendered.of_kind("Job")
    results = rendered.get("Deployment", "results")
    results_image = pod_spec(results)["containers"][0]["image"]
    command = ["python", "-m", "services.results.migrate"]
    # The Job: one per release (Jobs are immutable), named after the image it runs.
    assert job["metadata"]["name"] == "results-migrate-" + image_tag(results_image).replace(".", "-")
    (c,) = pod_spec(job)["containers"]
    assert c["command"] == command and c["image"] == results_image
    assert pod_spec(job)["restartPolicy"] in ("OnFailure", "Never") and job["spec"]["backoffLimit"] > 0
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    # The guarantee: results' initContainer migrates before results serves.
    (init,) = pod_spec(results)["initContainers"]
    assert init["command"] == command and init["image"] == results_image
    assert (ROOT / "services" / "results" / "migrate.py").is_file()


def test_container_commands_are_the_service_entrypoints(rendered):
    for svc in SERVICES:
        (c,) = pod_spec(rendered.get("Deployment", svc))["containers"]
        assert c["command"] == ["python", "-m", f"services.{svc}"]
        assert c["image"].startswith(f"hindsight/{svc}:")
        assert (ROOT / "services" / svc / "__main__.py").is_file()
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["OTEL_SERVICE_NAME"] == svc


# ---- engine scaling and disruption ---------------------------------------------------

def test_engine_autoscaling_and_pdb(overlays):
    """dev: the base's CPU HPA; prod: KEDA's ScaledObject on the jobs queue's depth (and CPU), no HPA of ours."""
    mins = {}
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "engine"}
    for name, r in overlays.items():
        engine = r.get("Deployment", "engine")
        assert "replicas" not in engine["spec"], "the autoscaler owns the engine's replica count"
        if name == "dev":
            assert not r.of_kind("ScaledObject")
            hpa = r.get("HorizontalPodAutoscaler", "engine")
            assert hpa["spec"]["scaleTargetRef"] == target
            assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
            mins[name] = hpa["spec"]["minReplicas"]
        else:
            assert not [h for h in r.of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"] == target], (
                "two autoscalers would fight over the engine's count: KEDA makes its own HPA")
            scaled = r.get("ScaledObject", "engine")
            assert scaled["spec"]["scaleTargetRef"] == target
            assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
            mins[name] = scaled["spec"]["minReplicaCount"]
            (queue,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"]
            assert queue["metadata"]["queueName"] == JOBS_QUEUE and queue["metadata"]["mode"] == "QueueLength"
            env = {e["name"] for e in containers(engine)[0]["env"]}
            assert queue["metadata"]["hostFromEnv"] in env, "KEDA reads the broker's address from the engine's env"
            cpu_requested = containers(engine)[0]["resources"]["requests"]["cpu"]
            assert [t for t in scaled["spec"]["triggers"] if t["type"] == "cpu"] and cpu_requested
        pdb = r.get("PodDisruptionBudget", "engine")
        labels = engine["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        limits = engine["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        mins[name + "-memory"] = limits["memory"]
    assert mins["prod"] > mins["dev"], "prod runs more engine replicas"
    assert mins["prod-memory"] != mins["dev-memory"], "prod raises the engine's limits"


# ---- telemetry hooks for the observability work --------------------------------------

def test_prometheus_scrape_annotations_and_otel_endpoint(rendered):
    config = rendered.config()
    for svc in SERVICES:
        template = rendered.get("Deployment", svc)["spec"]["template"]
        ann = template["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics"
        # Every service, the gateway included, on the scrape port: never the gateway's public one.
        port = config["HINDSIGHT_METRICS_PORT"]
        assert ann["prometheus.io/port"] == port != config["HINDSIGHT_PORT"]
        if svc == "notifier":  # it serves /metrics on a setting of its own
            assert config["NOTIFIER_METRICS_PORT"] == port
        ports = {p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        assert int(port) in ports
    endpoint = config["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert re.fullmatch(r"http://[a-z0-9.-]+:4317", endpoint), endpoint
    if rendered.overlay == "dev":
        host = endpoint.removeprefix("http://").split(":")[0]
        collector = rendered.get("Service", host)
        assert 4317 in {p["port"] for p in collector["spec"]["ports"]}
        assert rendered.get("Deployment", "jaeger")


# ---- dev's in-cluster backing services; prod's external ones ---------------------------

def test_dev_runs_postgres_and_rabbitmq_as_statefulsets_with_volumes(overlays):
    dev = overlays["dev"]
    secret = next(s for s in dev.of_kind("Secret") if s["metadata"]["name"].startswith("hindsight-secrets"))
    import base64

    urls = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    for name, port, url_key in (("postgres", 5432, "DATABASE_URL"), ("rabbitmq", 5672, "AMQP_URL")):
        sts = dev.get("StatefulSet", name)
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        assert sts["spec"]["serviceName"] == name
        assert f"@{name}:{port}/" in urls[url_key]
        assert port in {p["port"] for p in dev.get("Service", name)["spec"]["ports"]}
    prod = overlays["prod"]
    assert prod.of_kind("StatefulSet") == []
    assert not [d for d in prod.of_kind("Deployment") if d["metadata"]["name"] not in SERVICES]


def test_results_writes_artifacts_to_a_shared_volume(rendered):
    config = rendered.config()
    results = rendered.get("Deployment", "results")
    (c,) = pod_spec(results)["containers"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    mount = mounts[config["HINDSIGHT_ARTIFACT_DIR"]]
    assert not mount.get("readOnly")
    volume = next(v for v in pod_spec(results)["volumes"] if v["name"] == mount["name"])
    claim = rendered.get("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    if results["spec"]["replicas"] > 1:
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "replicas share the store"
    # The market-data store (option chains' Parquet) is on the same claim, in a directory that
    # cannot be a tenant's directory of the artifact store.
    market = mounts[config["HINDSIGHT_MARKET_DIR"]]
    assert market["name"] == mount["name"] and not market.get("readOnly")
    assert market["subPath"].startswith(".")
    # The migrations write into that store (0015 moves the datasets' bars there): the same
    # claim and directory, in results' initContainer and in the Job.
    (job,) = rendered.of_kind("Job")
    for pod in (pod_spec(results), pod_spec(job)):
        (migrate,) = pod.get("initContainers") or pod["containers"]
        m = {x["mountPath"]: x for x in migrate["volumeMounts"]}[config["HINDSIGHT_MARKET_DIR"]]
        assert m["subPath"] == market["subPath"] and not m.get("readOnly")
        v = next(v for v in pod["volumes"] if v["name"] == m["name"])
        assert v["persistentVolumeClaim"]["claimName"] == volume["persistentVolumeClaim"]["claimName"]
    # Links in emails must not point at the bind address.
    assert "0.0.0.0" not in config.get("HINDSIGHT_PUBLIC_URL", "0.0.0.0")


def test_every_pod_is_covered_by_network_policy(rendered):
    policies = rendered.of_kind("NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and "Ingress" in p["spec"]["policyTypes"] for p in policies)
    for w in rendered.workloads():
        labels = w["spec"]["template"]["metadata"]["labels"]
        if w["kind"] == "Job":
            continue  # takes no traffic: default deny is right
        assert any(p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
                   and p["spec"]["podSelector"] for p in policies), w["metadata"]["name"]
