"""Tenants, API keys and the sessions of logins. Only the SHA-256 of a key or of a
session token is stored; a key is shown once, a session token only to the gateway."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from libs.settings import SEED_DEV_API_KEY, Settings
from services.results.errors import InvalidArgument, NotFound, Unauthenticated
from services.results.models import ApiKey, LoginSession, Tenant
from services.results.timefmt import utcnow

TENANT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KEY_PREFIX = "hs_"
SESSION_PREFIX = "hss_"
# Longest session a login may ask for (the gateway's HINDSIGHT_SESSION_TTL_SECONDS).
MAX_SESSION_TTL_SECONDS = 366 * 24 * 3600


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def check_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID_RE.match(tenant_id or ""):
        raise InvalidArgument(
            f"tenant id {tenant_id!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return tenant_id


@dataclass(frozen=True)
class KeyInfo:
    """An API key as an operator sees it (never the key itself)."""

    key_id: str
    tenant_id: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


def ensure_tenant(session: Session, tenant_id: str) -> bool:
    """Create the tenant if absent; True when created."""
    check_tenant_id(tenant_id)
    if session.get(Tenant, tenant_id) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Tenant(tenant_id=tenant_id, created_at=utcnow()))
    except IntegrityError:  # another replica created it at the same moment
        return False
    return True


def create_tenant(session: Session, tenant_id: str) -> None:
    if not ensure_tenant(session, tenant_id):
        raise InvalidArgument(f"tenant {tenant_id!r} already exists")


def tenant_exists(session: Session, tenant_id: str) -> bool:
    return bool(tenant_id) and session.get(Tenant, tenant_id) is not None


def add_key(session: Session, tenant_id: str, key: str) -> str:
    """Store `key` (hashed) for an existing tenant; returns its key id."""
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    key_id = new_key_id()
    session.add(
        ApiKey(
            key_id=key_id,
            tenant_id=tenant_id,
            key_sha256=key_sha256(key),
            key_prefix=key[:8],
            created_at=utcnow(),
            revoked_at=None,
        )
    )
    session.flush()
    return key_id


def ensure_key(session: Session, tenant_id: str, key: str) -> bool:
    """Create the tenant and the key if absent (bootstrap and dev keys); True when the key was added.

    A key already stored (revoked or not) is left as it is: a revoked bootstrap
    key stays revoked across restarts.
    """
    ensure_tenant(session, tenant_id)
    existing = session.scalar(sa.select(ApiKey).where(ApiKey.key_sha256 == key_sha256(key)))
    if existing is not None:
        return False
    try:
        with session.begin_nested():
            add_key(session, tenant_id, key)
    except IntegrityError:  # added concurrently by another replica
        return False
    return True


def refused_key_hashes(settings: Settings) -> frozenset[str]:
    """SHA-256 of the keys this process refuses even when stored: the dev key (the seeds'
    public one and HINDSIGHT_DEV_API_KEY) outside standalone-on-loopback-without-
    HINDSIGHT_REQUIRE_AUTH, unless HINDSIGHT_BOOTSTRAP_KEYS names it explicitly."""
    if settings.dev_access():
        return frozenset()
    explicit = {key for _, key in settings.bootstrap_keys()}
    dev_keys = {SEED_DEV_API_KEY, settings.hindsight_dev_api_key} - explicit
    return frozenset(key_sha256(k) for k in dev_keys if k)


def authenticate(
    session: Session,
    api_key: str = "",
    key_id: str = "",
    refused: frozenset[str] = frozenset(),
    session_token: str = "",
) -> tuple[str, str]:
    """(tenant_id, key_id) of a valid, unrevoked key that is not `refused` (SHA-256s), or of a
    live session of such a key; Unauthenticated otherwise."""
    if session_token:
        return authenticate_session(session, session_token, refused)
    if api_key:
        row = session.scalar(sa.select(ApiKey).where(ApiKey.key_sha256 == key_sha256(api_key)))
    elif key_id:
        row = session.get(ApiKey, key_id)
    else:
        raise Unauthenticated("no credentials given")
    if row is None or row.revoked_at is not None or row.key_sha256 in refused:
        raise Unauthenticated("invalid or revoked API key")
    return row.tenant_id, row.key_id


@dataclass(frozen=True)
class NewSession:
    """A session just created: its token (shown to the gateway only), owner and end."""

    token: str
    tenant_id: str
    key_id: str
    expires_at: datetime


def create_session(
    session: Session, api_key: str, ttl_seconds: int, refused: frozenset[str] = frozenset()
) -> NewSession:
    """A login: a new session of a valid, unrevoked key, ending `ttl_seconds` from now.

    Sessions that ended (expired, any key) are deleted on the way: logins are few
    (throttled at the gateway) and the table stays small without a sweeper.
    """
    if not 0 < ttl_seconds <= MAX_SESSION_TTL_SECONDS:
        raise InvalidArgument(f"ttl_seconds must be between 1 and {MAX_SESSION_TTL_SECONDS}")
    tenant_id, key_id = authenticate(session, api_key=api_key, refused=refused)
    now = utcnow()
    session.execute(sa.delete(LoginSession).where(LoginSession.expires_at < now))
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=ttl_seconds)
    session.add(LoginSession(token_sha256=key_sha256(token), key_id=key_id, created_at=now, expires_at=expires_at,
                             revoked_at=None))
    session.flush()
    return NewSession(token, tenant_id, key_id, expires_at)


def authenticate_session(session: Session, token: str, refused: frozenset[str] = frozenset()) -> tuple[str, str]:
    """(tenant_id, key_id) of a live session (not expired, not revoked, its key not revoked
    and not `refused`)."""
    row = session.execute(
        sa.select(LoginSession, ApiKey)
        .join(ApiKey, ApiKey.key_id == LoginSession.key_id)
        .where(LoginSession.token_sha256 == key_sha256(token))
    ).first()
    if row is None:
        raise Unauthenticated("invalid session")
    login, key = row
    if login.revoked_at is not None or key.revoked_at is not None or login.expires_at <= utcnow():
        raise Unauthenticated("session ended, log in again")
    if key.key_sha256 in refused:
        raise Unauthenticated("invalid or revoked API key")
    return key.tenant_id, key.key_id


def revoke_session(session: Session, token: str) -> bool:
    """End a session now; False when it was unknown or had already ended."""
    row = session.get(LoginSession, key_sha256(token), with_for_update=True)
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return False
    row.revoked_at = utcnow()
    return True


def list_keys(session: Session, tenant_id: str | None = None) -> list[KeyInfo]:
    q = sa.select(ApiKey).order_by(ApiKey.tenant_id, ApiKey.created_at)
    if tenant_id:
        q = q.where(ApiKey.tenant_id == tenant_id)
    return [KeyInfo(k.key_id, k.tenant_id, k.key_prefix, k.created_at, k.revoked_at) for k in session.scalars(q)]


def revoke_key(session: Session, key_id: str) -> bool:
    """Revoke a key, and end its sessions; False when it was already revoked."""
    row = session.get(ApiKey, key_id, with_for_update=True)
    if row is None:
        raise NotFound(f"key {key_id!r} not found")
    if row.revoked_at is not None:
        return False
    now = utcnow()
    row.revoked_at = now
    session.execute(
        sa.update(LoginSession)
        .where(LoginSession.key_id == key_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return True


def list_tenants(session: Session) -> list[str]:
    return list(session.scalars(sa.select(Tenant.tenant_id).order_by(Tenant.tenant_id)))
