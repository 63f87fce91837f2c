"""Metric field names, read from the protos that define them (one source for every service).

- A sweep's combination is `hindsight.results.v1.SweepResult`: ``SWEEP_RESULT_FIELDS`` are
  its fields in the seed's column order, ``SWEEP_OPTIONAL_METRICS`` the optional doubles
  among them (unset = undefined = null).
- A run's metric set is `hindsight.engine.v1.Metrics`: ``RUN_METRIC_FLOATS`` are its
  optional doubles, in the proto's order.

The engine's sweep code keeps its own ``services.engine.sweep.METRIC_KEYS`` (no gRPC in the
kernel's module); tests/engine/test_sweep_behaviour.py holds it equal to these fields.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hindsight.engine.v1 import engine_pb2
from hindsight.results.v1 import results_pb2


def _optional_doubles(descriptor: Descriptor) -> tuple[str, ...]:
    return tuple(f.name for f in descriptor.fields if f.has_presence and f.type == FieldDescriptor.TYPE_DOUBLE)


# `parameters_json` (a rule sweep's combination) is not one of the seed's columns: rows carry
# it as `parameters` beside them.
SWEEP_RESULT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in results_pb2.SweepResult.DESCRIPTOR.fields if f.name != "parameters_json"
)
SWEEP_OPTIONAL_METRICS: tuple[str, ...] = _optional_doubles(results_pb2.SweepResult.DESCRIPTOR)
RUN_METRIC_FLOATS: tuple[str, ...] = _optional_doubles(engine_pb2.Metrics.DESCRIPTOR)


def run_metrics_pb(m: dict[str, Any]) -> engine_pb2.Metrics:
    """A run's metric dict (None: undefined) as `Metrics`; undefined values stay unset."""
    out = engine_pb2.Metrics(
        total_trades=int(m.get("total_trades") or 0),
        winning_trades=int(m.get("winning_trades") or 0),
        avg_trade_duration=str(m.get("avg_trade_duration") or ""),
    )
    for name in RUN_METRIC_FLOATS:
        if m.get(name) is not None:
            setattr(out, name, m[name])
    if m.get("losing_trades") is not None:
        out.losing_trades = int(m["losing_trades"])
    return out


def run_metrics_dict(pb: engine_pb2.Metrics) -> dict[str, Any]:
    """`Metrics` as a dict: every metric of the set, unset optional values as None."""
    out: dict[str, Any] = {name: (getattr(pb, name) if pb.HasField(name) else None) for name in RUN_METRIC_FLOATS}
    out["total_trades"] = pb.total_trades
    out["winning_trades"] = pb.winning_trades
    out["losing_trades"] = pb.losing_trades if pb.HasField("losing_trades") else None
    out["avg_trade_duration"] = pb.avg_trade_duration
    return out
