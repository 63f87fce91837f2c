"""Models of walk-forward optimizations (on the shared `Base`).

- `walkforward_runs`: one row per walk-forward job: its spec (the sweep, the windows,
  the folds cut at submission and the dataset version they run on) and, once every
  fold is in, the stitched out-of-sample curve and the efficiency.
- `walkforward_folds`: one row per fold an engine finished (services.engine.walkforward).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.results.models_base import Base


class WalkForwardRun(Base):
    """A walk-forward job: spec and, when complete, its stitched result."""

    __tablename__ = "walkforward_runs"

    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True)
    # The WalkForwardSpec as a dict (with folds, bars and dataset_version_id).
    spec: Mapped[dict[str, Any]]
    folds: Mapped[int]
    # {"stitched": ..., "walk_forward_efficiency": ...} once every fold is stored.
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class WalkForwardFold(Base):
    """One fold's result: bounds, chosen parameters, in- and out-of-sample metrics, test curve."""

    __tablename__ = "walkforward_folds"

    job_id: Mapped[str] = mapped_column(sa.ForeignKey("walkforward_runs.job_id", ondelete="CASCADE"), primary_key=True)
    # From 0, in fold order.
    fold: Mapped[int] = mapped_column(primary_key=True)
    result: Mapped[dict[str, Any]]
    execution_time_seconds: Mapped[float]
    created_at: Mapped[datetime]
