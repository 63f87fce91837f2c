"""The work of a job in bar-pairs, for the per-tenant queue limit (issue 12).

Revision ID: 0007_job_bar_pairs
Revises: 0006_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_job_bar_pairs"
down_revision = "0006_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("bar_pairs", sa.BigInteger(), nullable=False, server_default="0"))
    # The quota counts a tenant's unfinished jobs on every submission and start.
    op.create_index("ix_jobs_tenant_state", "jobs", ["tenant_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_state", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("bar_pairs")
