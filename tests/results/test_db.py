"""Database plumbing: transactions on SQLite are real (savepoints included)."""

from __future__ import annotations

import pytest

from services.results import keys
from services.results.db import Database, sqlite_url


def test_sqlite_write_rolls_back_everything_including_savepoints(tmp_path):
    db = Database(sqlite_url(tmp_path))
    try:
        db.migrate()
        with pytest.raises(RuntimeError), db.write() as s:
            keys.ensure_key(s, "acme", "k-1")  # uses savepoints
            raise RuntimeError("abort the transaction")
        with db.read() as s:
            assert keys.list_tenants(s) == [] and keys.list_keys(s) == []
        with db.write() as s:
            assert keys.ensure_key(s, "acme", "k-1") is True
            assert keys.ensure_key(s, "acme", "k-1") is False
        with db.read() as s:
            assert keys.list_tenants(s) == ["acme"] and len(keys.list_keys(s)) == 1
    finally:
        db.close()
