"""The `universes` table (on the shared `Base`): a tenant's named ticker lists (issue 11).

The key is (tenant_id, name); `tickers` is the JSON list in its stored spelling and order
(domain.universe).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.results.models_base import Base


class Universe(Base):
    """A named list of tickers a sweep may run over."""

    __tablename__ = "universes"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tickers: Mapped[list[str]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
