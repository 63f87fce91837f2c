"""Migrations: `upgrade head` is idempotent and yields exactly the models' schema, on Postgres and SQLite;
0015 moves every dataset blob into the market store."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.results import datasets
from services.results.db import Database, normalize_url, sqlite_url
from services.results.market_store import MarketStore
from services.results.models import Base

from .conftest import PG_ADMIN

ROOT = Path(__file__).resolve().parents[2]


def _script_head() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory(str(ROOT / "services" / "results" / "migrations")).get_heads()
    assert len(heads) == 1, f"migrations must form one chain, heads: {heads}"
    return heads[0]


def _diff(db: Database) -> list:
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_upgrade_head_matches_models(backend, results_pg_url, tmp_path):
    url = results_pg_url if backend == "postgres" else sqlite_url(tmp_path)
    db = Database(url)
    try:
        db.migrate()
        db.migrate()  # idempotent
        assert _diff(db) == []
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == _script_head()
    finally:
        db.close()


def test_url_normalization():
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_migrate_module_on_the_standalone_sqlite_file(tmp_path):
    env = {"HINDSIGHT_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "services.results.migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d" / "hindsight.db").exists()


# ---- 0015: bar datasets move from database blobs into the market store ------------------


def _old_blob(columns: dict[str, np.ndarray]) -> bytes:
    """A version's bars as datasets.py stored them before 0015: a deflated zip (zip64 entries, level
    1) of one .npy per column, ts int64 and the rest float64, little-endian."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for c in ("ts", "open", "high", "low", "close", "volume"):
            with zf.open(c + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(columns[c], dtype="<i8" if c == "ts" else "<f8"))
    return buf.getvalue()


def _bars(n: int, start: str, step: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = (np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(1, step).astype("timedelta64[ns]")).astype(np.int64)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return {"ts": ts, "open": close * 0.999, "high": close * 1.01, "low": close * 0.98, "close": close,
            "volume": rng.integers(0, 10_000, n).astype(np.float64)}


@pytest.fixture
def empty_pg_url():
    """A Postgres database of this test's own, empty (migrations start from nothing)."""
    name = f"hs_mig_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alembic(db: Database, market_root: Path, action: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "services" / "results" / "migrations"))
    cfg.attributes["market_root"] = market_root
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_0015_moves_every_blob_into_the_market_store(backend, empty_pg_url, tmp_path):
    url = empty_pg_url if backend == "postgres" else sqlite_url(tmp_path)
    market = tmp_path / "market"
    db = Database(url)
    try:
        _alembic(db, market, "upgrade", "0014_universe_sweeps")
        # Two tenants; minute bars over three months (cut by month), daily bars over three years
        # (cut by year), and a second version of the minute dataset.
        versions = {
            ("t-one", "ds_min", "1m", 1, "dsv_" + "a" * 24): _bars(130_000, "2024-01-15T09:15", "m", 1),
            ("t-one", "ds_min", "1m", 2, "dsv_" + "b" * 24): _bars(10, "2024-06-03T09:15", "m", 2),
            ("t-two", "ds_day", "1d", 1, "dsv_" + "c" * 24): _bars(800, "2019-06-01", "D", 3),
        }
        now = datetime(2024, 7, 1, tzinfo=UTC)
        with db.engine.begin() as conn:
            for tenant in ("t-one", "t-two"):
                conn.execute(sa.text("INSERT INTO tenants (tenant_id, created_at) VALUES (:t, :c)"), {"t": tenant, "c": now})
            for tenant, ds, interval in {(t, d, i) for t, d, i, _, _ in versions}:
                conn.execute(sa.text(
                    "INSERT INTO datasets (dataset_id, tenant_id, ticker, interval, calendar, timezone, demo, created_at) "
                    "VALUES (:d, :t, :k, :i, 'continuous', 'UTC', false, :c)"
                ), {"d": ds, "t": tenant, "k": ds.upper().replace("_", "-"), "i": interval, "c": now})
            for (_, ds, _, version, vid), bars in versions.items():
                conn.execute(sa.text(
                    "INSERT INTO dataset_versions (version_id, dataset_id, version, bars, start_at, end_at, bars_npz, created_at) "
                    "VALUES (:v, :d, :n, :b, :s, :e, :blob, :c)"
                ), {"v": vid, "d": ds, "n": version, "b": len(bars["ts"]), "s": now, "e": now, "blob": _old_blob(bars),
                    "c": now})

        db.migrate(market)  # to head, into this store

        assert _diff(db) == []  # bars_npz is gone, storage_key and bytes_stored are there
        store = MarketStore(market)
        with db.engine.connect() as conn:
            rows = {r.version_id: r for r in conn.execute(sa.text("SELECT * FROM dataset_versions"))}
        for (tenant, _, interval, _, vid), bars in versions.items():
            row = rows[vid]
            assert row.storage_key == f"bars/{tenant}/{vid}"
            files = sorted(p for p in (market / row.storage_key).rglob("*") if p.is_file())
            assert row.bytes_stored == sum(p.stat().st_size for p in files) > 0
            assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
            periods = sorted(p.parent.name for p in files)
            if vid.startswith("dsv_a"):
                assert periods == ["month=2024-01", "month=2024-02", "month=2024-03", "month=2024-04"]
            if interval == "1d":
                assert periods == ["year=2019", "year=2020", "year=2021"]
            got = datasets.read_version_bars(store, row.storage_key)
            for c in ("ts", "open", "high", "low", "close", "volume"):
                np.testing.assert_array_equal(getattr(got, c), bars[c])  # bit for bit
        assert not any((market / ".staging").iterdir())

        # Downgrade gives the blobs back, equal; upgrading again republishes over the same files.
        _alembic(db, market, "downgrade", "0014_universe_sweeps")
        with db.engine.connect() as conn:
            blob = conn.execute(sa.text("SELECT bars_npz FROM dataset_versions WHERE version_id = :v"),
                                {"v": "dsv_" + "c" * 24}).scalar()
        with np.load(io.BytesIO(blob)) as z:
            np.testing.assert_array_equal(z["close"], versions[("t-two", "ds_day", "1d", 1, "dsv_" + "c" * 24)]["close"])
        db.migrate(market)
        assert _diff(db) == []
        got = datasets.read_version_bars(store, "bars/t-one/dsv_" + "a" * 24)
        np.testing.assert_array_equal(got.ts, versions[("t-one", "ds_min", "1m", 1, "dsv_" + "a" * 24)]["ts"])
    finally:
        db.close()
