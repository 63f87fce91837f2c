"""Bar datasets move into the columnar market-data store (issue 15, item 5).

Every dataset version's bars (`dataset_versions.bars_npz`, a deflated zip of .npy arrays:
ts int64 ns UTC, open, high, low, close, volume float64) are written as Parquet under
`bars/<tenant>/<version_id>/` of the market store (services/results/market_store.py), one
version at a time (memory: one version's blob and arrays), and the row keeps where
(`storage_key`) and how many bytes (`bytes_stored`); then the column is dropped, so no second
way of reading bars stays behind. The store is results' own: the root the caller passes
(`upgrade_head(..., market_root)`), else the settings' (HINDSIGHT_MARKET_DIR; standalone:
HINDSIGHT_DATA_DIR/market).

A version's files are published before the transaction commits: if the migration fails
after that, the rows roll back (Postgres; SQLite keeps its DDL in the transaction too) and
the next attempt replaces those files with the same bars. Downgrade writes the blobs back
from the files (and leaves the files, which a later upgrade replaces).

Revision ID: 0015_bars_in_market_store
Revises: 0014_universe_sweeps
"""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from alembic import context, op

from domain.market import INTERVAL_MINUTES
from libs.settings import Settings
from services.results.market_store import MarketStore, bar_version_key, read_bars, write_bars

revision = "0015_bars_in_market_store"
down_revision = "0014_universe_sweeps"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def _store() -> MarketStore:
    root = context.config.attributes.get("market_root")
    return MarketStore(Path(root) if root is not None else Settings().market_root())


def _versions(bind: sa.Connection) -> list[tuple[str, str, str]]:
    """(version_id, tenant_id, interval) of every version, without their bars."""
    rows = bind.execute(sa.text(
        "SELECT v.version_id, d.tenant_id, d.interval FROM dataset_versions v "
        "JOIN datasets d ON d.dataset_id = v.dataset_id ORDER BY v.version_id"
    ))
    return [(r[0], r[1], r[2]) for r in rows]


def _move(bind: sa.Connection, store: MarketStore, version_id: str, tenant_id: str, interval: str) -> None:
    blob = bind.execute(sa.text("SELECT bars_npz FROM dataset_versions WHERE version_id = :v"), {"v": version_id}).scalar()
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        columns = {c: z[c] for c in COLUMNS}
    del blob
    key = bar_version_key(tenant_id, version_id)
    staging = store.new_staging()
    try:
        stored = write_bars(staging, columns, INTERVAL_MINUTES.get(interval, 1), consume=True)
        final = store.path_of(key)
        if final.exists():  # published by an attempt whose transaction rolled back: the same bars
            shutil.rmtree(final)
        store.publish(staging, key)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    bind.execute(
        sa.text("UPDATE dataset_versions SET storage_key = :k, bytes_stored = :b WHERE version_id = :v"),
        {"k": key, "b": stored.bytes, "v": version_id},
    )


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("storage_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("bytes_stored", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    versions = _versions(bind)
    if versions:
        store = _store()
        log.info("moving dataset versions into the market store", extra={"versions": len(versions),
                                                                         "market_root": str(store.root)})
        for version_id, tenant_id, interval in versions:
            _move(bind, store, version_id, tenant_id, interval)
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("bars_npz")
        batch.alter_column("storage_key", existing_type=sa.String(255), nullable=False)
        batch.alter_column("bytes_stored", existing_type=sa.BigInteger(), nullable=False)


def _blob(store: MarketStore, key: str) -> bytes:
    table = read_bars(store, key)
    arrays = {c: table.column(c).to_numpy() for c in COLUMNS[1:]}
    arrays["ts"] = table.column("ts").cast("int64").to_numpy()
    buf = io.BytesIO()
    np.savez_compressed(buf, **{c: arrays[c] for c in COLUMNS})
    return buf.getvalue()


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("bars_npz", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT version_id, storage_key FROM dataset_versions")).all()
    if rows:
        store = _store()
        for version_id, key in rows:
            bind.execute(sa.text("UPDATE dataset_versions SET bars_npz = :b WHERE version_id = :v"),
                         {"b": _blob(store, key), "v": version_id})
    with op.batch_alter_table("dataset_versions") as batch:
        batch.alter_column("bars_npz", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("bytes_stored")
        batch.drop_column("storage_key")
