"""Issue 12, item 10: the standalone data directory is private (directories 0700, files
0600: database, its WAL, keys, artifacts), and the secrets the database keeps (webhook
signing secrets) are encrypted with HINDSIGHT_SECRET_KEY; rows written in plaintext
before keep working and are encrypted by the 0005 migration (or at the next start).

Real parts: a standalone stack (process) on a fresh data directory; Postgres with the
real migrations and the real results service; `python -m services.results` refusing to
start without a key in the distributed mode."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hindsight.notify.v1 import notify_pb2, notify_pb2_grpc

from libs.bus import InProcessBus
from libs.grpc_util import channel
from libs.settings import Settings
from services.results.db import Database, make_engine
from services.results.service import start as start_results
from tests.conftest import create_database, drop_database
from tests.security.conftest import start_standalone_at, stop, wait_for
from tests.stacks import DEV_KEY, ROOT

SID = "5708424d-5962-4629-978c-05b3a174e104"
STRATEGY = {
    "name": "RSI reversal", "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"square_off": "15:15"},
    "entries": [{"id": "entry-1", "condition": "RSI(14) < 30 and time >= 09:30", "side": "buy", "quantity": 10}],
    "exits": [{"id": "exit-1", "condition": "RSI(14) > 70"}],
}
SECRET = "my-receivers-secret-" + "q" * 24


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_standalone_data_directory_is_private_and_secrets_are_encrypted(tmp_path_factory):
    data = tmp_path_factory.mktemp("rest") / "data"  # created by the stack
    old_umask = os.umask(0o022)  # the usual one: what the code asks for is what counts
    try:
        s = start_standalone_at(data, tmp_path_factory.mktemp("rest-logs"))
    finally:
        os.umask(old_umask)
    try:
        with s.client(headers={"X-API-Key": DEV_KEY}) as c:
            r = c.put("/api/v1/settings/notifications", json={"webhook_secret": SECRET})
            assert r.status_code == 200 and r.json()["webhook_secret"] == SECRET, r.text
            assert c.put(f"/api/v1/strategies/{SID}", json=STRATEGY).status_code in (200, 201)
            r = c.post("/api/v1/backtest/run", json={"user_id": "user_123", "strategy_id": SID,
                                                     "start_date": "2024-01-01", "end_date": "2024-01-03"})
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            wait_for(lambda: c.get(f"/api/v1/backtest/status/{job_id}").json()["status"] == "completed", 60,
                     "the day-by-day run", s)
            assert c.get("/api/v1/settings/notifications").json()["webhook_secret"] == SECRET
    finally:
        stop(s)

    assert mode(data) == 0o700
    db = data / "hindsight.db"
    files = [db, data / "secret_key", data / "session_secret"]
    files += [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
    assert {str(p): oct(mode(p)) for p in files} == {str(p): "0o600" for p in files}
    artifacts = data / "artifacts"
    dirs = [artifacts, *(p for p in artifacts.rglob("*") if p.is_dir())]
    day_files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert len(day_files) >= 2, day_files
    assert {str(p): oct(mode(p)) for p in dirs} == {str(p): "0o700" for p in dirs}
    assert {str(p): oct(mode(p)) for p in day_files} == {str(p): "0o600" for p in day_files}

    # The secret is nowhere in the database's bytes; the row holds a Fernet token.
    raw = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("hindsight.db"))
    assert SECRET.encode() not in raw
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT webhook_secret FROM notification_settings WHERE tenant_id = 'dev'").fetchone()
    assert stored.startswith("enc:v1:") and SECRET not in stored


def _insert_plaintext(url: str, tenant: str, secret: str) -> None:
    engine = make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO tenants (tenant_id, created_at) VALUES (:t, :n)"), {"t": tenant, "n": now})
        conn.execute(sa.text(
            "INSERT INTO notification_settings (tenant_id, webhook_url, webhook_secret, notify_email, created_at,"
            " updated_at) VALUES (:t, '', :s, '', :n, :n)"), {"t": tenant, "s": secret, "n": now})
    engine.dispose()


def _stored(url: str, tenant: str) -> str:
    engine = make_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text("SELECT webhook_secret FROM notification_settings WHERE tenant_id = :t"),
                             {"t": tenant}).scalar_one()
    engine.dispose()
    return value


def _migrate(url: str, key: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HINDSIGHT_SECRET_KEY"}
    env.update(DATABASE_URL=url, PYTHONUNBUFFERED="1")
    if key:
        env["HINDSIGHT_SECRET_KEY"] = key
    proc = subprocess.run([sys.executable, "-m", "services.results.migrate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def pg_at_0004():
    """A Postgres database migrated to the revision before secrets at rest."""
    from alembic import command
    from alembic.config import Config

    name, url = create_database()
    db = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "services" / "results" / "migrations"))
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004_daybyday")
        conn.commit()
    db.close()
    yield url
    drop_database(name)


async def test_plaintext_rows_are_encrypted_by_the_migration_and_keep_working(pg_at_0004):
    url, key = pg_at_0004, "k" * 16 + os.urandom(16).hex()
    _insert_plaintext(url, "old", "whsec_plaintext-from-before-" + "a" * 20)
    _migrate(url, key)
    assert _stored(url, "old").startswith("enc:v1:")

    # A row a migration without the key left in plaintext: results seals it when it starts.
    _insert_plaintext(url, "older", "whsec_left-in-plaintext-" + "b" * 20)
    settings = Settings(hindsight_mode="distributed", database_url=url, hindsight_secret_key=key,
                        hindsight_bootstrap_keys="")
    bus = InProcessBus()
    await bus.start()
    handle = await start_results(settings, bus, port=0)
    try:
        assert _stored(url, "older").startswith("enc:v1:")
        async with channel(f"127.0.0.1:{handle.port}") as chan:
            stub = notify_pb2_grpc.NotificationsServiceStub(chan)
            for tenant, secret in (("old", "whsec_plaintext-from-before-" + "a" * 20),
                                   ("older", "whsec_left-in-plaintext-" + "b" * 20)):
                got = await stub.GetNotificationSettings(notify_pb2.GetNotificationSettingsRequest(tenant_id=tenant))
                assert got.settings.webhook_secret == secret
            rotated = await stub.UpdateNotificationSettings(
                notify_pb2.UpdateNotificationSettingsRequest(tenant_id="old", rotate_secret=True))
            assert rotated.settings.webhook_secret.startswith("whsec_")
            assert rotated.settings.webhook_secret not in _stored(url, "old")
    finally:
        await handle.stop(grace=0.5)
        await bus.close()


def test_distributed_results_refuses_to_start_without_a_key(pg_url, amqp_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HINDSIGHT_SECRET_KEY"}
    env.update(HINDSIGHT_MODE="distributed", DATABASE_URL=pg_url, AMQP_URL=amqp_url, RESULTS_PORT="0",
               HINDSIGHT_METRICS_PORT="0", PYTHONUNBUFFERED="1", HINDSIGHT_INTERNAL_TOKEN="test-internal-token-0123456789")
    proc = subprocess.Popen([sys.executable, "-m", "services.results"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail("results kept running without HINDSIGHT_SECRET_KEY:\n" + out[-2000:])
    assert proc.returncode != 0 and "HINDSIGHT_SECRET_KEY" in out, out[-2000:]
