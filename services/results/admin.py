"""`python -m services.results.admin`: tenants and API keys, for operators.

    python -m services.results.admin create-tenant acme
    python -m services.results.admin create-key acme        # prints the key once
    python -m services.results.admin list-keys [--tenant acme]
    python -m services.results.admin revoke-key key_0123456789abcdef
    python -m services.results.admin list-tenants

The database is DATABASE_URL (or --database-url); without one, the standalone
SQLite file under --data-dir (default HINDSIGHT_DATA_DIR, `./.hindsight`).
Migrations are applied first, so the CLI works on a fresh database.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from libs.settings import Settings
from services.results import keys
from services.results.db import Database, normalize_url, sqlite_url
from services.results.errors import NotFound, ResultsError
from services.results.timefmt import rfc3339


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hindsight-admin", description="Manage tenants and API keys.")
    p.add_argument("--database-url", help="database URL (default: DATABASE_URL)")
    p.add_argument("--data-dir", type=Path, help="standalone data directory holding hindsight.db (default: HINDSIGHT_DATA_DIR)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create-tenant", help="create a tenant")
    c.add_argument("tenant")
    c = sub.add_parser("create-key", help="create an API key for a tenant and print it (shown only once)")
    c.add_argument("tenant")
    c.add_argument("--create-tenant", action="store_true", help="create the tenant too if it does not exist")
    c = sub.add_parser("list-keys", help="list API keys (never the keys themselves)")
    c.add_argument("--tenant", help="only this tenant's keys")
    c = sub.add_parser("revoke-key", help="revoke an API key by its id")
    c.add_argument("key_id")
    sub.add_parser("list-tenants", help="list tenants")
    return p


# Commands that only read or change what exists: they never create a database.
_NEEDS_EXISTING = ("list-keys", "list-tenants", "revoke-key")


class NoDatabase(Exception):
    """The standalone data directory holds no database yet."""


def _database(args: argparse.Namespace) -> tuple[Database, Path]:
    """The database, and the market-data store results uses with it (migrations move data there)."""
    settings = Settings()
    url = args.database_url or settings.database_url
    if url:
        return Database(normalize_url(url)), settings.market_root()
    data_dir = Path(args.data_dir or settings.hindsight_data_dir)
    if args.command in _NEEDS_EXISTING and not (data_dir / "hindsight.db").is_file():
        raise NoDatabase(
            f"no Hindsight database in {data_dir}: give the data directory of a stack that has run "
            "(--data-dir DIR or HINDSIGHT_DATA_DIR; `make run` uses ./.hindsight), or --database-url / DATABASE_URL"
        )
    if args.data_dir:  # that data directory's store, unless HINDSIGHT_MARKET_DIR names another
        settings = settings.model_copy(update={"hindsight_data_dir": data_dir})
    return Database(sqlite_url(data_dir)), settings.market_root()


def _tenant_hint(exc: ResultsError, args: argparse.Namespace) -> str:
    """What to do about an unknown tenant."""
    if isinstance(exc, NotFound) and args.command == "create-key" and "tenant" in str(exc):
        return (f"\n  create it first: hindsight-admin create-tenant {args.tenant}"
                f"\n  or in one step:  hindsight-admin create-key {args.tenant} --create-tenant")
    return ""


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        db, market_root = _database(args)
    except NoDatabase as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    try:
        db.migrate(market_root)
        if args.command == "create-tenant":
            with db.write() as s:
                keys.create_tenant(s, args.tenant)
            _out(f"tenant {args.tenant} created")
        elif args.command == "create-key":
            key = keys.new_key()
            with db.write() as s:
                if args.create_tenant:
                    keys.ensure_tenant(s, args.tenant)
                key_id = keys.add_key(s, args.tenant, key)
            _out(f"key_id: {key_id}")
            _out(f"tenant: {args.tenant}")
            _out(f"api_key: {key}")
            _out("Store the key now: it is not kept and cannot be shown again.")
        elif args.command == "list-keys":
            with db.read() as s:
                rows = keys.list_keys(s, args.tenant)
            _out(f"{'KEY_ID':<22} {'TENANT':<20} {'PREFIX':<10} {'CREATED':<21} REVOKED")
            for k in rows:
                _out(f"{k.key_id:<22} {k.tenant_id:<20} {k.key_prefix + '…':<10} {rfc3339(k.created_at):<21} {rfc3339(k.revoked_at) or '-'}")
        elif args.command == "revoke-key":
            with db.write() as s:
                changed = keys.revoke_key(s, args.key_id)
            _out(f"key {args.key_id} revoked" if changed else f"key {args.key_id} was already revoked")
        elif args.command == "list-tenants":
            with db.read() as s:
                tenants = keys.list_tenants(s)
            for t in tenants:
                _out(t)
            if not tenants:
                sys.stderr.write("no tenants yet: hindsight-admin create-tenant NAME\n")
        return 0
    except ResultsError as exc:
        sys.stderr.write(f"error: {exc}{_tenant_hint(exc, args)}\n")
        return 1
    finally:
        db.close()


def main() -> None:
    """Console-script entry point (`hindsight-admin`)."""
    sys.exit(run())


if __name__ == "__main__":
    main()
