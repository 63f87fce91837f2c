"""Universes CRUD on the results database (issue 11); the rules are domain.universe's."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import universe as rules
from services.results.errors import FailedPrecondition, InvalidArgument, NotFound
from services.results.models import Tenant
from services.results.models_universes import Universe
from services.results.timefmt import utcnow


def check_name(name: str) -> str:
    problem = rules.name_problem(name)
    if problem:
        raise InvalidArgument(f"name {problem}")
    return name


def check_tickers(tickers: list[str], field: str = "tickers") -> list[str]:
    """The stored spelling of a valid ticker list; InvalidArgument naming every problem."""
    problems = rules.ticker_list_problems(list(tickers), field)
    if problems:
        raise InvalidArgument("; ".join(f"{p.field}: {p.message}" for p in problems))
    return rules.normalize_tickers(list(tickers))


def get_universe(session: Session, tenant_id: str, name: str) -> Universe:
    row = session.get(Universe, (tenant_id, check_name(name)))
    if row is None:
        raise NotFound(f"universe {name!r} not found")
    return row


def list_universes(session: Session, tenant_id: str) -> list[Universe]:
    return list(session.scalars(sa.select(Universe).where(Universe.tenant_id == tenant_id).order_by(Universe.name)))


def put_universe(session: Session, tenant_id: str, name: str, tickers: list[str]) -> tuple[Universe, bool]:
    """Create or replace; (row, created). Counted under a lock on the tenant's row, so two
    PUTs at once cannot pass the per-tenant limit together."""
    check_name(name)
    stored = check_tickers(tickers)
    tenant = session.get(Tenant, tenant_id, with_for_update=True)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    now = utcnow()
    row = session.get(Universe, (tenant_id, name))
    if row is not None:
        row.tickers, row.updated_at = stored, now
        return row, False
    count = session.scalar(sa.select(sa.func.count()).select_from(Universe).where(Universe.tenant_id == tenant_id))
    if (count or 0) >= rules.UNIVERSES_PER_TENANT_MAX:
        raise FailedPrecondition(
            f"a tenant keeps at most {rules.UNIVERSES_PER_TENANT_MAX} universes; delete one first"
        )
    row = Universe(tenant_id=tenant_id, name=name, tickers=stored, created_at=now, updated_at=now)
    session.add(row)
    return row, True


def delete_universe(session: Session, tenant_id: str, name: str) -> str:
    row = get_universe(session, tenant_id, name)
    session.delete(row)
    return row.name
