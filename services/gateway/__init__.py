"""The gateway: REST and SSE in front of the results service (gRPC)."""
