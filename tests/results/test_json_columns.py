"""JSON columns (services/results/db.py): stored through orjson on Postgres and SQLite, read back
to the same values, floats to the bit."""

from __future__ import annotations

import json
import math
import secrets
import struct

import numpy as np
import pytest
import sqlalchemy as sa

from services.results.db import json_bytes, json_value, make_engine, sqlite_url


def _value() -> dict:
    rng = np.random.default_rng(11)
    return {
        "logits": rng.normal(0.0, 3.0, 12_870).tolist(),
        "tiny": [5e-324, -0.0, 1e308, 0.1 + 0.2],
        "pbo": np.float64(0.3125),  # a NumPy scalar, as the statistics hand them over
        "reason": None,
        "reading": "Probably overfit: ümlaut and \"quotes\"",
        "nested": {"a": [1, 2, {"b": True}]},
    }


def _bits(xs: list[float]) -> list[bytes]:
    return [struct.pack("<d", x) for x in xs]


def _roundtrip(engine: sa.Engine, value: object) -> object:
    table = sa.Table(f"json_probe_{secrets.token_hex(4)}", sa.MetaData(),
                     sa.Column("id", sa.Integer, primary_key=True), sa.Column("doc", sa.JSON))
    table.create(engine)
    try:
        with engine.begin() as c:
            c.execute(table.insert().values(id=1, doc=value))
        with engine.connect() as c:
            return c.execute(sa.select(table.c.doc)).scalar_one()
    finally:
        table.drop(engine)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_a_json_column_keeps_every_float_to_the_bit(backend, pg_engine, tmp_path):
    engine = pg_engine if backend == "postgres" else make_engine(sqlite_url(tmp_path / "data"))
    value = _value()
    got = _roundtrip(engine, value)
    assert isinstance(got, dict)
    assert _bits(got["logits"]) == _bits(value["logits"])
    assert _bits(got["tiny"]) == _bits(value["tiny"])
    assert got["pbo"] == 0.3125 and got["reason"] is None
    assert got["reading"] == value["reading"] and got["nested"] == value["nested"]


def test_what_json_cannot_write_is_null_and_what_it_wrote_is_read():
    # NaN and infinities: the json module wrote NaN (not JSON: Postgres refuses it); now null
    assert json.loads(json_bytes([math.nan, math.inf, -math.inf, 1.0])) == [None, None, None, 1.0]
    # keys that are not strings become strings, as the json module made them
    assert json.loads(json_bytes({1: "a", 2.5: "b"})) == {"1": "a", "2.5": "b"}
    # a SQLite row the json module wrote with NaN in it still reads
    old = json.dumps({"x": math.nan, "y": [1, 2]})
    got = json_value(old)
    assert math.isnan(got["x"]) and got["y"] == [1, 2]
    with pytest.raises(TypeError):
        json_bytes({"x": object()})
