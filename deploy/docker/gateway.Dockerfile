# hindsight/gateway: the HTTP/SSE gateway (`python -m services.gateway`): REST + SSE -> gRPC.
# Build from the repository root (the context holds protos/, libs/ and services/):
#   docker build -f deploy/docker/gateway.Dockerfile -t hindsight/gateway:TAG .      (or `make images`)
# Configuration comes from the environment at run time (deploy/k8s); nothing secret is baked in.

# ---- builder: virtualenv, generated gRPC code ----
FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
WORKDIR /src
COPY protos/ protos/
COPY libs/ libs/
# The domain package (market vocabulary, strategies, rule language): plain Python, every service.
COPY domain/ domain/
# Generated code is built, not committed (same protoc invocation as `make protos`).
RUN mkdir -p libs/gen \
 && python -m grpc_tools.protoc -Iprotos --python_out=libs/gen --grpc_python_out=libs/gen $(find protos -name '*.proto') \
 && rm -rf protos
COPY services/__init__.py services/__init__.py
COPY services/gateway/ services/gateway/
# The version a run report names (services/gateway/presenters/report.py reads [project] version).
COPY pyproject.toml pyproject.toml
# Build-only packages leave the venv (the runtime needs neither protoc nor Cython); bytecode is
# compiled here because the runtime's root filesystem is read-only.
RUN pip uninstall -y -q grpcio-tools cython \
 && python -m compileall -q --invalidation-mode unchecked-hash /src

# ---- runtime: interpreter, venv, code; no compiler, no build tools, not root ----
FROM python:3.11.14-slim-bookworm AS runtime
# A numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 hindsight \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin hindsight
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /src /app
COPY deploy/docker/healthcheck.py /app/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app:/app/libs/gen \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HINDSIGHT_MODE=distributed \
    HINDSIGHT_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# For plain `docker run` / compose only: Kubernetes ignores HEALTHCHECK and uses the probes in deploy/k8s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/app/healthcheck.py", "http", "HINDSIGHT_PORT", "8000", "/health"]
CMD ["python", "-m", "services.gateway"]
