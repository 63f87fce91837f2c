"""Models of the columnar market-data store (on the shared `Base`): what each stored option
chain is. Its rows live in Parquet files of the market store (services/results/market_store.py),
never in the database; `storage_key` names their directory under the store's root."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.results.models_base import Base


class OptionChain(Base):
    """A tenant's option chain on one underlying at one interval (the latest import; an import
    of the same ticker and interval replaces it and bumps `version`)."""

    __tablename__ = "option_chains"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "ticker", "interval", name="uq_option_chains_tenant_ticker_interval"),
        sa.Index("ix_option_chains_tenant_underlying", "tenant_id", "underlying"),
    )

    chain_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"))
    # The chain's name in listings: the underlying for an import, DEMO-OPTIONS for the demo.
    ticker: Mapped[str] = mapped_column(sa.String(64))
    # The bar dataset's ticker the contracts are on (the symbols' first part).
    underlying: Mapped[str] = mapped_column(sa.String(64))
    interval: Mapped[str] = mapped_column(sa.String(8))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    demo: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int]
    # The version's directory under the market store's root (shared by tenants for the demo).
    storage_key: Mapped[str] = mapped_column(sa.String(255))
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    contracts: Mapped[int]
    days: Mapped[int]
    bytes_stored: Mapped[int] = mapped_column(sa.BigInteger)
    # {"expiries": ["YYYY-MM-DD", ...], "strike_steps": [50.0], "columns": [...], "format": "csv"}
    summary: Mapped[dict[str, Any]]
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    created_at: Mapped[datetime]
