"""Walk-forward optimizations (issue 14): a run per job and a row per fold.

Revision ID: 0012_walkforward
Revises: 0011_rule_sweeps
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_walkforward"
down_revision = "0011_rule_sweeps"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "walkforward_runs",
        sa.Column("job_id", sa.String(96), sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("folds", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", Time, nullable=False),
    )
    op.create_index("ix_walkforward_runs_tenant_id", "walkforward_runs", ["tenant_id"])
    op.create_table(
        "walkforward_folds",
        sa.Column("job_id", sa.String(96), sa.ForeignKey("walkforward_runs.job_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("fold", sa.Integer(), primary_key=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("execution_time_seconds", sa.Double(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("walkforward_folds")
    op.drop_index("ix_walkforward_runs_tenant_id", table_name="walkforward_runs")
    op.drop_table("walkforward_runs")
