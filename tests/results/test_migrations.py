"""Migrations: `upgrade head` is idempotent and yields exactly the models' schema, on Postgres and SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.results.db import Database, normalize_url, sqlite_url
from services.results.models import Base

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
