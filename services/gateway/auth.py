"""Who is calling: API key headers, the session cookie, or (standalone on
loopback, no credentials at all) the dev tenant.

Keys and sessions are checked by results (`Authenticate`), which keeps the
sessions: a login creates one, logout and the revocation of its key end it.
The cookie holds the session's token, signed with HINDSIGHT_SESSION_SECRET so a
forged or stale cookie is refused here without a call. Successful lookups are
cached for a few seconds only, so a revoked key or a session ended elsewhere
stops working quickly (logout drops the cache entry of its own gateway at once).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request

from libs.settings import DEV_TENANT, Settings
from libs.settings import LOOPBACK_HOSTS as LOOPBACK_HOSTS  # re-exported: bind names that count as loopback
from services.gateway.errors import unauthorized

SESSION_COOKIE = "hindsight_session"
# v2: the cookie holds a session token (v1 held a key id, valid until it expired).
_SESSION_SALT = "hindsight.session.v2"


@dataclass(frozen=True)
class Caller:
    """The tenant a request acts for."""

    tenant_id: str
    key_id: str = ""
    # True when no credentials were sent and the dev tenant was assumed.
    dev: bool = False


@dataclass(frozen=True)
class Credentials:
    """What a request presented: a raw key, or a session cookie's signed key id."""

    api_key: str | None = None
    session_token: str | None = None


def dev_tenant_allowed(settings: Settings) -> bool:
    """Requests without credentials act as the dev tenant only in standalone mode,
    bound to loopback, unless HINDSIGHT_REQUIRE_AUTH is set."""
    return settings.dev_access()


def credentials_of(request: Request) -> Credentials | None:
    """The credentials a request carries, or None when it carries none at all.

    X-API-Key wins over Authorization, which wins over the cookie. A present
    but unusable header (empty, or another auth scheme) is a wrong credential,
    not an absent one.
    """
    key = request.headers.get("x-api-key")
    if key is not None:
        return Credentials(api_key=key.strip())
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Authorization must be 'Bearer <api key>'")
        return Credentials(api_key=token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is not None:
        return Credentials(session_token=cookie)
    return None


class SessionSigner:
    """Signs and checks session cookies holding a session token."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SESSION_SALT)
        self.max_age = max_age_seconds

    def sign(self, session_token: str) -> str:
        return self._serializer.dumps(session_token)

    def session_token(self, cookie: str) -> str:
        """The session token of a validly signed, unexpired cookie; raises a 401 otherwise."""
        try:
            value = self._serializer.loads(cookie, max_age=self.max_age)
        except SignatureExpired as exc:
            raise unauthorized("session expired, log in again") from exc
        except BadSignature as exc:
            raise unauthorized("invalid session") from exc
        if not isinstance(value, str) or not value:
            raise unauthorized("invalid session")
        return value


class AuthCache:
    """Short-lived memory of successful lookups: credential digest -> caller."""

    def __init__(self, ttl_seconds: float = 5.0, max_entries: int = 4096) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Caller]] = {}

    @staticmethod
    def digest(kind: str, secret: str) -> str:
        return hashlib.sha256(f"{kind}\0{secret}".encode()).hexdigest()

    def get(self, digest: str) -> Caller | None:
        hit = self._entries.get(digest)
        if hit is None:
            return None
        expires, caller = hit
        if expires < time.monotonic():
            self._entries.pop(digest, None)
            return None
        return caller

    def drop(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def put(self, digest: str, caller: Caller) -> None:
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            for k in [k for k, (exp, _) in self._entries.items() if exp < now]:
                del self._entries[k]
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest] = (time.monotonic() + self.ttl, caller)


DEV_CALLER = Caller(tenant_id=DEV_TENANT, dev=True)
