"""Container health check for plain Docker (`HEALTHCHECK`); Kubernetes ignores it
and uses the probes in deploy/k8s instead.

    python /app/healthcheck.py grpc RESULTS_PORT 50051   # gRPC health, overall status ("")
    python /app/healthcheck.py http HINDSIGHT_PORT 8000 /health

The port is read from the named environment variable (the same one the service
binds), falling back to the default. Exit 0 when serving, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def grpc_serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT_SECONDS) as reply:
            return 200 <= reply.status < 300
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("grpc", "http"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, port_env, default = argv[0], argv[1], argv[2]
    port = int(os.environ.get(port_env) or default)
    ok = grpc_serving(port) if kind == "grpc" else http_ok(port, argv[3] if len(argv) > 3 else "/health")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
