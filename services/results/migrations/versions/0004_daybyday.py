"""Tables of strategies and day-by-day backtests (issue 3).

Revision ID: 0004_daybyday
Revises: 0003_notifications
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_daybyday"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
