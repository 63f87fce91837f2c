"""Shared fixtures: throwaway Postgres databases and RabbitMQ vhosts on the
machine's real servers, and whole stacks (standalone or distributed) started
as real processes on free ports."""

from __future__ import annotations

import os
import secrets
import subprocess

import psycopg
import pytest

PG_ADMIN = os.environ.get("HINDSIGHT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# The distributed mode needs a key for the secrets the database keeps (libs.secretbox): every
# process the tests start (in this process or as a child) uses this one.
os.environ.setdefault("HINDSIGHT_SECRET_KEY", "test-secret-key-" + secrets.token_hex(16))
AMQP_BASE = os.environ.get("HINDSIGHT_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


def create_database() -> tuple[str, str]:
    """A new empty Postgres database; returns (name, SQLAlchemy URL)."""
    name = f"hs_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_vhost() -> tuple[str, str]:
    """A new RabbitMQ vhost for guest; returns (name, AMQP URL)."""
    name = f"hs_test_{secrets.token_hex(4)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True, timeout=60)
    return name, f"{AMQP_BASE}/{name}"


def delete_vhost(name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def pg_url():
    """URL of a Postgres database created for this test session."""
    name, url = create_database()
    yield url
    drop_database(name)


@pytest.fixture(scope="session")
def amqp_url():
    """URL of a RabbitMQ vhost created for this test session."""
    name, url = create_vhost()
    yield url
    delete_vhost(name)


# The longest test files first (setup and calls, as `--durations` measured them): `make test`
# hands whole files to two workers in collection order, and a long file handed out last would
# leave one worker running it alone at the end.
LONGEST_FIRST = [
    "tests/security/test_schemathesis.py",
    "tests/e2e/test_readme.py",
    "tests/cli/test_cli.py",
    "tests/security/test_sse_ride_out.py",
    "tests/e2e/test_universe_sweeps.py",
    "tests/e2e/test_seed002_flow.py",
    "tests/e2e/test_day_by_day_runs.py",
    "tests/e2e/test_seed001_flow.py",
    "tests/security/test_fair_tenants.py",
    "tests/security/test_dev_key.py",
    "tests/e2e/test_universe_standalone.py",
    "tests/web/test_dashboard.py",
    "tests/security/test_internal_grpc_auth.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    # A stable sort: the other files keep their order, and each file's tests stay together.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
