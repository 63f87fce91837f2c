# hindsight/engine: one engine replica (`python -m services.engine`): job consumer + Cython kernels.
# Build from the repository root (the context holds protos/, libs/ and services/):
#   docker build -f deploy/docker/engine.Dockerfile -t hindsight/engine:TAG .      (or `make images`)
# Configuration comes from the environment at run time (deploy/k8s); nothing secret is baked in.

# ---- builder: virtualenv, generated gRPC code, compiled Cython kernels ----
FROM python:3.11.14-slim-bookworm AS builder
# A C compiler for the Cython kernels: this stage is thrown away, the runtime stage has none.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
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
COPY services/engine/ services/engine/
# The Cython kernels, compiled in place next to their .pyx (same flags as `make engine`).
RUN python services/engine/setup.py build_ext --inplace -q \
 && rm -rf build services/engine/_core/*.c services/engine/_core/*.html
# Build-only packages leave the venv (the runtime needs neither protoc nor Cython); bytecode is
# compiled here because the runtime's root filesystem is read-only.
RUN pip uninstall -y -q grpcio-tools cython \
 && python -m compileall -q --invalidation-mode unchecked-hash /src
# libgomp, OpenMP's runtime (the sweep kernel's threads), came with gcc: the runtime stage
# takes the file rather than installing anything.
RUN mkdir -p /opt/gomp && cp -L "/usr/lib/$(gcc -dumpmachine)/libgomp.so.1" /opt/gomp/

# ---- runtime: interpreter, venv, code; no compiler, no build tools, not root ----
FROM python:3.11.14-slim-bookworm AS runtime
# A numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 hindsight \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin hindsight
COPY --from=builder /opt/venv /opt/venv
# /usr/lib is on the dynamic loader's default path
COPY --from=builder /opt/gomp/libgomp.so.1 /usr/lib/libgomp.so.1
COPY --from=builder /src /app
COPY deploy/docker/healthcheck.py /app/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app:/app/libs/gen \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HINDSIGHT_MODE=distributed
WORKDIR /app
USER 10001:10001
EXPOSE 50052
# For plain `docker run` / compose only: Kubernetes ignores HEALTHCHECK and uses the probes in deploy/k8s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/app/healthcheck.py", "grpc", "ENGINE_PORT", "50052"]
CMD ["python", "-m", "services.engine"]
