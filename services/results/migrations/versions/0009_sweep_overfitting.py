"""The overfitting statistics of a sweep run (issue 14): PSR, DSR, SR0 and PBO, as `best` shows them.

Revision ID: 0009_sweep_overfitting
Revises: 0008_day_figures
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_sweep_overfitting"
down_revision = "0008_day_figures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Runs stored before keep NULL: `best` shows their statistics as not computed.
    with op.batch_alter_table("sweep_runs") as batch:
        batch.add_column(sa.Column("overfitting", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweep_runs") as batch:
        batch.drop_column("overfitting")
