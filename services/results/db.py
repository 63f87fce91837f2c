"""Database access: engine and sessions, URL handling, migrations.

The service uses a sync SQLAlchemy engine and calls it from the asyncio
servicer through a small thread pool (`Database.run`). Writes go through
`Database.write()`, which commits and then wakes whoever waits for what the
transaction added (the outbox relay, job event streams).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from libs.private_files import make_private_dir, touch_private
from libs.secretbox import SecretBox
from services.results.sealed import attach, seal_plaintext

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant shared by all replicas: serializes `upgrade head` on Postgres.
_MIGRATION_LOCK_KEY = 0x48534D4947  # "HSMIG"
# Execution option marking the connections of write transactions.
WRITE_OPTION = "hindsight_write"
# Size of the thread pool (and of the connection pool) the servicer uses.
DB_THREADS = 8


def normalize_url(url: str) -> str:
    """`postgresql://` / `postgres://` → the psycopg 3 driver; other URLs unchanged."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_url(data_dir: Path) -> str:
    """The standalone database file inside the data directory (the directory created 0700 if missing)."""
    data_dir = make_private_dir(Path(data_dir))
    return f"sqlite:///{(data_dir / 'hindsight.db').resolve()}"


def secure_sqlite_file(url: str) -> None:
    """The SQLite database file of `url` exists with mode 0600 before SQLite opens it (SQLite
    gives its -wal and -shm files the database file's mode), and so do those files if present."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.exists():
        return  # SQLite reports the missing directory itself
    touch_private(path)
    for suffix in ("-wal", "-shm", "-journal"):
        other = Path(f"{path}{suffix}")
        if other.exists():
            other.chmod(0o600)


def database_url(database_url: str, standalone: bool, data_dir: Path) -> str:
    """DATABASE_URL when given; in standalone mode without one, SQLite in the data directory."""
    if database_url:
        return normalize_url(database_url)
    if standalone:
        return sqlite_url(data_dir)
    raise SystemExit("distributed mode needs DATABASE_URL in the environment")


def _json_default(value: Any) -> Any:
    # NumPy scalars (a float64 is a float to the json module, not to orjson)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def json_bytes(value: Any) -> bytes:
    """A JSON column's value as stored (orjson: a sweep's overfitting object, 12,870 logits,
    takes 0.3 ms where the json module takes 5; a run's equity of a million bars likewise).
    A NaN or an infinity is stored as null (the json module wrote NaN, which Postgres refuses)."""
    return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)


def json_text(value: Any) -> str:
    return json_bytes(value).decode()


def json_value(data: bytes | str) -> Any:
    """A stored JSON value (orjson; the json module for what it wrote and orjson refuses:
    NaN in a SQLite row written before)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def make_engine(url: str) -> sa.Engine:
    """An engine for Postgres (psycopg 3) or SQLite (WAL, foreign keys on, usable from any thread)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        secure_sqlite_file(url)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=DB_THREADS,
            max_overflow=4,
            json_serializer=json_text,
            json_deserializer=json_value,
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # The sqlite3 module's own transaction handling would not BEGIN before a
            # SELECT or a SAVEPOINT; SQLAlchemy emits BEGIN itself (below) instead.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            # Write transactions take the write lock up front, so a read-then-write
            # never fails on a snapshot another writer made stale.
            immediate = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(url, pool_size=DB_THREADS, max_overflow=4, pool_pre_ping=True,
                            json_serializer=json_bytes, json_deserializer=json_value)


def upgrade_head(engine: sa.Engine, secret_box: SecretBox | None = None, market_root: Path | None = None) -> None:
    """Alembic `upgrade head` on this engine (idempotent; serialized across replicas on Postgres).

    `secret_box` seals the secrets migrations encrypt (0005_secrets_at_rest); `market_root` is
    the market-data store migrations move data into (0015_bars_in_market_store; None: the
    settings' market_root()).
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["secret_box"] = secret_box
    cfg.attributes["market_root"] = market_root
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                conn.commit()


class Wakeups:
    """In-process signals from committed transactions to the asyncio side.

    The outbox relay waits on `outbox`; each job event stream registers an
    `asyncio.Event` for its job. Both also poll the database, so writes of
    another replica show up too; these only make the local case immediate.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.outbox = asyncio.Event()
        self._job_waiters: dict[str, set[asyncio.Event]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def watch_job(self, job_id: str) -> asyncio.Event:
        ev = asyncio.Event()
        self._job_waiters.setdefault(job_id, set()).add(ev)
        return ev

    def unwatch_job(self, job_id: str, ev: asyncio.Event) -> None:
        waiters = self._job_waiters.get(job_id)
        if waiters is not None:
            waiters.discard(ev)
            if not waiters:
                del self._job_waiters[job_id]

    def _fire(self, outbox: bool, job_ids: set[str]) -> None:
        if outbox:
            self.outbox.set()
        for job_id in job_ids:
            for ev in self._job_waiters.get(job_id, ()):
                ev.set()

    def after_commit(self, outbox: bool, job_ids: set[str]) -> None:
        """Called from any thread once a transaction is committed."""
        if not outbox and not job_ids:
            return
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fire(outbox, job_ids)
        else:
            loop.call_soon_threadsafe(self._fire, outbox, set(job_ids))


async def wait_any(*events: asyncio.Event, timeout: float) -> None:
    """Wait until one of `events` is set, for `timeout` seconds at most."""
    waiters = [asyncio.ensure_future(ev.wait()) for ev in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def mark_outbox_added(session: Session) -> None:
    """Note on the session that it added outbox rows (wakes the relay after commit)."""
    session.info["outbox_added"] = True


def mark_job_event_added(session: Session, job_id: str) -> None:
    """Note on the session that it appended an event to `job_id` (wakes its streams after commit)."""
    session.info.setdefault("job_events_added", set()).add(job_id)


class Database:
    """The engine, sessions, the thread pool that runs them, and the wake-up signals."""

    def __init__(self, url: str, engine: sa.Engine | None = None, secret_box: SecretBox | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = engine or make_engine(self.url)
        # Seals and opens the secrets the database keeps (services.results.sealed).
        self.secret_box = secret_box
        if secret_box is not None:
            attach(self.engine, secret_box)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        # SQLite allows one writer: serialize this process's write transactions
        # instead of letting them fail with "database is locked".
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="results-db")
        self.wakeups = Wakeups()
        # Called with the session's `info` after each committed write (metrics count ended jobs there).
        self.commit_hooks: list[Callable[[dict], None]] = []

    def migrate(self, market_root: Path | None = None) -> None:
        upgrade_head(self.engine, self.secret_box, market_root)

    def seal_plaintext_secrets(self) -> int:
        """Seal secrets still stored in plaintext (a migration that ran without the key); the count."""
        if self.secret_box is None:
            return 0
        with self.engine.begin() as conn:
            return seal_plaintext(conn, self.secret_box)

    def session(self) -> Session:
        """A bare session; the caller manages its transaction (the outbox relay)."""
        return self._sessions()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries only (rolled back at the end)."""
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a transaction, committed at the end (rolled back on an exception)."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with self._write_sessions() as session:
                with session.begin():
                    yield session
                info = dict(session.info)
        finally:
            if lock is not None:
                lock.release()
        self.wakeups.after_commit(bool(info.get("outbox_added")), set(info.get("job_events_added", ())))
        for hook in list(self.commit_hooks):
            try:
                hook(info)
            except Exception:  # an observer must not fail a committed write
                log.exception("commit hook failed")

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run blocking database code on the pool, from the event loop."""
        loop = asyncio.get_running_loop()
        # Carry context variables (trace context) into the worker thread, like asyncio.to_thread.
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, functools.partial(ctx.run, fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
