"""Authenticate: API keys by hash, key ids, revocation."""

from __future__ import annotations

import hashlib

import grpc
import pytest
from hindsight.results.v1 import results_pb2
from sqlalchemy.orm import Session

from services.results import keys


@pytest.mark.asyncio
async def test_good_key_resolves_to_tenant(pg, pg_db):
    tenant, key = pg_db.tenant()
    resp = await pg.stub.Authenticate(results_pb2.AuthenticateRequest(api_key=key))
    assert resp.tenant_id == tenant
    assert resp.key_id.startswith("key_")
    # The key id of a session cookie authenticates too.
    again = await pg.stub.Authenticate(results_pb2.AuthenticateRequest(key_id=resp.key_id))
    assert (again.tenant_id, again.key_id) == (tenant, resp.key_id)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "request_",
    [
        results_pb2.AuthenticateRequest(api_key="not-a-key"),
        results_pb2.AuthenticateRequest(key_id="key_0000000000000000"),
        results_pb2.AuthenticateRequest(),
    ],
)
async def test_unknown_credentials_are_unauthenticated(pg, request_):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pg.stub.Authenticate(request_)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.asyncio
async def test_revoked_key_is_refused(pg, pg_db):
    _tenant, key = pg_db.tenant()
    key_id = (await pg.stub.Authenticate(results_pb2.AuthenticateRequest(api_key=key))).key_id
    with Session(pg_db.engine) as s, s.begin():
        assert keys.revoke_key(s, key_id) is True
    for req in (results_pb2.AuthenticateRequest(api_key=key), results_pb2.AuthenticateRequest(key_id=key_id)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pg.stub.Authenticate(req)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.asyncio
async def test_only_the_hash_is_stored(pg, pg_db):
    tenant, key = pg_db.tenant()
    rows = pg_db.rows("SELECT * FROM api_keys WHERE tenant_id = :t", t=tenant)
    assert len(rows) == 1
    row = rows[0]._mapping
    assert row["key_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert all(key not in str(v) for v in row.values())


def test_admin_cli_creates_lists_and_revokes_keys(tmp_path, capsys):
    from services.results.admin import run

    data = ["--data-dir", str(tmp_path)]
    assert run([*data, "create-tenant", "acme"]) == 0
    assert run([*data, "create-key", "acme"]) == 0
    out = capsys.readouterr().out
    key = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("api_key: "))
    key_id = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("key_id: "))
    assert run([*data, "list-keys"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and key not in listing
    assert run([*data, "create-key", "nobody"]) == 1
    assert run([*data, "revoke-key", key_id]) == 0
    assert "revoked" in capsys.readouterr().out

    from services.results.db import Database, sqlite_url

    db = Database(sqlite_url(tmp_path))
    try:
        with db.read() as s, pytest.raises(Exception, match="revoked"):
            keys.authenticate(s, api_key=key)
    finally:
        db.close()
