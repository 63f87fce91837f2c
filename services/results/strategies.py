"""A tenant's rule strategies: create, read, list, replace (or create under a chosen UUID), delete.

Definitions are validated with the engine's rule parser before they are
stored (`services.engine.rules`: plain Python, no compiled code), so a stored
strategy always parses; problems come back as one InvalidArgument listing every
field, with the character position of a condition's error.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.rules.strategy import StrategyInvalid, validate_definition
from services.results import option_chains
from services.results.artifacts import check_strategy_id
from services.results.errors import InvalidArgument, NotFound
from services.results.keys import tenant_exists
from services.results.models_day_by_day import Strategy
from services.results.timefmt import utcnow

MAX_DEFINITION_BYTES = 256 * 1024


class DefinitionInvalid(InvalidArgument):
    """A definition with problems; the message is JSON {"message", "errors": [...]} for the gateway."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__(json.dumps({"message": "invalid strategy", "errors": errors}))


def parse_definition(definition_json: str) -> dict[str, Any]:
    if len(definition_json.encode()) > MAX_DEFINITION_BYTES:
        raise InvalidArgument(f"a strategy definition is at most {MAX_DEFINITION_BYTES} bytes")
    try:
        raw = json.loads(definition_json or "null")
    except json.JSONDecodeError:
        raise DefinitionInvalid([{"field": "body", "message": "not valid JSON"}]) from None
    try:
        return validate_definition(raw)
    except StrategyInvalid as exc:
        raise DefinitionInvalid(exc.errors) from None


def check_option_chain(session: Session, tenant_id: str, definition: dict[str, Any]) -> None:
    """Option legs trade contracts of the underlying's chain: a definition with an instrument on
    an underlying the tenant has no option chain of is refused (issue 15), naming each such node."""
    ticker = definition["dataset"]["ticker"]
    legs = [i for i, e in enumerate(definition["entries"]) if e.get("instrument")]
    if legs and option_chains.resolve_chain(session, tenant_id, ticker) is None:
        raise DefinitionInvalid([
            {"field": f"entries[{i}].instrument",
             "message": f"there is no option chain of {ticker}: import one first "
                        f"(POST /api/v1/datasets, kind=option_chain, ticker={ticker})"}
            for i in legs
        ])


def _owned(session: Session, tenant_id: str, strategy_id: str, lock: bool = False) -> Strategy | None:
    q = sa.select(Strategy).where(Strategy.tenant_id == tenant_id, Strategy.strategy_id == strategy_id)
    if lock:
        q = q.with_for_update()
    return session.scalar(q)


def create_strategy(session: Session, tenant_id: str, definition_json: str) -> Strategy:
    definition = parse_definition(definition_json)
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    check_option_chain(session, tenant_id, definition)
    now = utcnow()
    row = Strategy(
        tenant_id=tenant_id,
        strategy_id=str(uuid.uuid4()),
        name=definition["name"],
        definition=definition,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_strategy(session: Session, tenant_id: str, strategy_id: str) -> Strategy:
    try:
        strategy_id = check_strategy_id(strategy_id)
    except InvalidArgument:
        raise NotFound(f"strategy {strategy_id!r} not found") from None
    row = _owned(session, tenant_id, strategy_id)
    if row is None:
        raise NotFound(f"strategy {strategy_id!r} not found")
    return row


def list_strategies(session: Session, tenant_id: str, limit: int, offset: int) -> tuple[list[Strategy], int]:
    where = Strategy.tenant_id == tenant_id
    total = session.scalar(sa.select(sa.func.count()).select_from(Strategy).where(where)) or 0
    rows = session.scalars(
        sa.select(Strategy).where(where).order_by(Strategy.created_at.desc(), Strategy.strategy_id).limit(limit).offset(offset)
    )
    return list(rows), int(total)


def put_strategy(session: Session, tenant_id: str, strategy_id: str, definition_json: str) -> tuple[Strategy, bool]:
    """Replace the tenant's strategy, or create it under `strategy_id`; (row, created)."""
    strategy_id = check_strategy_id(strategy_id)
    definition = parse_definition(definition_json)
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    check_option_chain(session, tenant_id, definition)
    now = utcnow()
    row = _owned(session, tenant_id, strategy_id, lock=True)
    if row is not None:
        row.name, row.definition, row.updated_at = definition["name"], definition, now
        return row, False
    try:
        with session.begin_nested():
            row = Strategy(
                tenant_id=tenant_id,
                strategy_id=strategy_id,
                name=definition["name"],
                definition=definition,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        return row, True
    except IntegrityError:  # created at the same moment by a concurrent PUT: replace it
        row = _owned(session, tenant_id, strategy_id, lock=True)
        assert row is not None
        row.name, row.definition, row.updated_at = definition["name"], definition, now
        return row, False


def delete_strategy(session: Session, tenant_id: str, strategy_id: str) -> str:
    row = get_strategy(session, tenant_id, strategy_id)
    session.delete(row)
    return row.strategy_id
