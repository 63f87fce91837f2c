"""The gateway's connection to results, and the per-app state built around it.

Every unary call carries the deadline HINDSIGHT_RPC_TIMEOUT, so an unreachable
or stuck results answers 503 in bounded time instead of hanging the client. SSE
stream requests wait a bounded time for an unreachable results first (`wait`,
services/gateway/results_wait.py).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hindsight.backtest.v1 import backtest_pb2_grpc
from hindsight.engine.v1 import engine_pb2_grpc
from hindsight.notify.v1 import notify_pb2_grpc
from hindsight.results.v1 import results_pb2, results_pb2_grpc
from hindsight.runs.v1 import runs_pb2_grpc
from hindsight.universes.v1 import universes_pb2_grpc

from libs.grpc_util import channel
from libs.settings import Settings
from libs.ssrf import policy_for
from services.gateway.auth import AuthCache, Caller, SessionSigner
from services.gateway.errors import ApiError, from_grpc, unauthorized, unavailable
from services.gateway.login_throttle import LoginThrottle
from services.gateway.metrics import GatewayMetrics
from services.gateway.results_wait import Patience, call_waiting

log = logging.getLogger(__name__)

T = TypeVar("T")
RESULTS_SERVICE = "hindsight.results.v1.ResultsService"
# Health probes should answer fast even when the RPC deadline is long.
HEALTH_TIMEOUT = 2.0
# Longest pause between the channel's attempts to reach a results that went away, so a
# restarted results is found within seconds (gRPC's own backoff grows to 120 s).
RESULTS_RECONNECT_SECONDS = 2.0


def _not_open() -> ApiError:
    return unavailable("gateway is starting or stopping")


class Backend:
    """Everything a request handler needs: settings, the results stub, auth, metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rpc_timeout = float(settings.hindsight_rpc_timeout)
        secret = settings.hindsight_session_secret
        if not secret:
            # Not a default secret: a random one, so sessions end with the process.
            log.warning("HINDSIGHT_SESSION_SECRET is empty: session cookies will not survive a restart")
            secret = secrets.token_urlsafe(32)
        self.session_secret = secret
        self.session_ttl = int(settings.hindsight_session_ttl_seconds)
        self.sessions = SessionSigner(secret, self.session_ttl)
        self.auth_cache = AuthCache(ttl_seconds=5.0)
        self.login_throttle = LoginThrottle.from_settings(settings)
        self.metrics = GatewayMetrics()
        # Where webhooks may point (fails at start on a malformed HINDSIGHT_WEBHOOK_ALLOW).
        self.webhook_policy = policy_for(settings.hindsight_webhook_allow, settings.dev_access())
        self._channel: grpc.aio.Channel | None = None
        self._stub: results_pb2_grpc.ResultsServiceStub | None = None
        self._health: health_pb2_grpc.HealthStub | None = None
        self._runs: runs_pb2_grpc.RunsServiceStub | None = None
        self._notifications: notify_pb2_grpc.NotificationsServiceStub | None = None
        self._strategies: backtest_pb2_grpc.StrategiesServiceStub | None = None
        self._day_by_day: backtest_pb2_grpc.DayBacktestServiceStub | None = None
        self._universes: universes_pb2_grpc.UniversesServiceStub | None = None
        self._engine_channel: grpc.aio.Channel | None = None
        self._engine: engine_pb2_grpc.EngineServiceStub | None = None

    async def open(self) -> None:
        token = self.settings.hindsight_internal_token
        self._channel = channel(self.settings.results_addr, token=token, max_reconnect_backoff=RESULTS_RECONNECT_SECONDS)
        self._stub = results_pb2_grpc.ResultsServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._runs = runs_pb2_grpc.RunsServiceStub(self._channel)
        self._notifications = notify_pb2_grpc.NotificationsServiceStub(self._channel)
        self._strategies = backtest_pb2_grpc.StrategiesServiceStub(self._channel)
        self._day_by_day = backtest_pb2_grpc.DayBacktestServiceStub(self._channel)
        self._universes = universes_pb2_grpc.UniversesServiceStub(self._channel)
        # Synchronous backtests are answered by the engine itself.
        self._engine_channel = channel(self.settings.engine_addr, token=token)
        self._engine = engine_pb2_grpc.EngineServiceStub(self._engine_channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=1.0)
            self._channel = None
            self._notifications = None
            self._strategies = None
            self._day_by_day = None
            self._universes = None
        if self._engine_channel is not None:
            await self._engine_channel.close(grace=1.0)
            self._engine_channel = None

    @property
    def notifications(self) -> notify_pb2_grpc.NotificationsServiceStub:
        """Notification settings and deliveries (served by results)."""
        if self._notifications is None:
            raise _not_open()
        return self._notifications

    @property
    def strategies(self) -> backtest_pb2_grpc.StrategiesServiceStub:
        """Rule strategies (served by results)."""
        if self._strategies is None:
            raise _not_open()
        return self._strategies

    @property
    def universes(self) -> universes_pb2_grpc.UniversesServiceStub:
        """Universes: named ticker lists (served by results)."""
        if self._universes is None:
            raise _not_open()
        return self._universes

    @property
    def day_by_day(self) -> backtest_pb2_grpc.DayBacktestServiceStub:
        """Day-by-day backtests' status, metadata, day files and cleanup (served by results)."""
        if self._day_by_day is None:
            raise _not_open()
        return self._day_by_day

    @property
    def stub(self) -> results_pb2_grpc.ResultsServiceStub:
        if self._stub is None:
            raise _not_open()
        return self._stub

    @property
    def runs(self) -> runs_pb2_grpc.RunsServiceStub:
        """Saved runs (served by results)."""
        if self._runs is None:
            raise _not_open()
        return self._runs

    @property
    def engine(self) -> engine_pb2_grpc.EngineServiceStub:
        """Synchronous backtests (served by the engine)."""
        if self._engine is None:
            raise _not_open()
        return self._engine

    @property
    def sse_results_wait(self) -> float:
        """Seconds an SSE stream waits out an unreachable results (HINDSIGHT_SSE_RESULTS_WAIT_SECONDS)."""
        return float(self.settings.hindsight_sse_results_wait_seconds)

    async def call(
        self, method: Callable[..., Awaitable[T]], request: Any, timeout: float | None = None,
        wait: Patience | None = None,
    ) -> T:
        """A unary results call with our deadline; gRPC failures become `ApiError`s. With
        `wait`, an unreachable results is waited for while that patience lasts (SSE streams)."""
        deadline = timeout if timeout is not None else self.rpc_timeout
        try:
            if wait is not None:
                return await call_waiting(method, request, deadline, wait)
            return await method(request, timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc) from None

    async def results_health(self) -> str:
        """serving, not_serving or unavailable."""
        if self._health is None:
            return "unavailable"
        try:
            resp = await self._health.Check(
                health_pb2.HealthCheckRequest(service=RESULTS_SERVICE),
                timeout=min(HEALTH_TIMEOUT, self.rpc_timeout),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                # Reachable, but does not report this service name: ask the server as a whole.
                return await self._server_health()
            return "unavailable"
        return "serving" if resp.status == health_pb2.HealthCheckResponse.SERVING else "not_serving"

    async def _server_health(self) -> str:
        assert self._health is not None
        try:
            resp = await self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_TIMEOUT)
        except grpc.aio.AioRpcError:
            return "unavailable"
        return "serving" if resp.status == health_pb2.HealthCheckResponse.SERVING else "not_serving"

    async def authenticate_key(self, api_key: str, client: str = "", path: str = "",
                               wait: Patience | None = None) -> Caller:
        """The caller of a raw API key (cached briefly); 401 when results does not know it,
        429 while `client` or the key's prefix has too many failed logins (login_throttle).
        `wait`: how long to wait for an unreachable results (a 503 after it)."""
        self.login_throttle.check(client, api_key)
        if not api_key or len(api_key) > 512:
            self.login_throttle.failed(client, "malformed API key", path, api_key)
            raise unauthorized("invalid API key")
        digest = AuthCache.digest("key", api_key)
        cached = self.auth_cache.get(digest)
        if cached is not None:
            return cached
        try:
            caller = await self._authenticate(results_pb2.AuthenticateRequest(api_key=api_key), "invalid API key", wait)
        except ApiError as err:
            if err.status == 401:
                self.login_throttle.failed(client, "unknown or revoked API key", path, api_key)
            raise
        self.auth_cache.put(digest, caller)
        return caller

    async def authenticate_session(self, cookie: str, client: str = "", path: str = "",
                                   wait: Patience | None = None) -> Caller:
        """The caller of a session cookie: signature and age here, the session (and its key) at
        results (waiting for an unreachable results as `authenticate_key`)."""
        self.login_throttle.check(client)
        try:
            token = self.sessions.session_token(cookie)
        except ApiError:
            self.login_throttle.failed(client, "invalid or expired session cookie", path)
            raise
        digest = AuthCache.digest("session", token)
        cached = self.auth_cache.get(digest)
        if cached is not None:
            return cached
        try:
            caller = await self._authenticate(
                results_pb2.AuthenticateRequest(session_token=token), "session ended, log in again", wait
            )
        except ApiError as err:
            if err.status == 401:
                self.login_throttle.failed(client, "ended or unknown session", path)
            raise
        self.auth_cache.put(digest, caller)
        return caller

    async def login(self, api_key: str, client: str = "", path: str = "") -> tuple[Caller, str]:
        """A new session for an API key: (its caller, the signed cookie value); throttled like every key check."""
        self.login_throttle.check(client, api_key)
        if len(api_key) > 512:
            self.login_throttle.failed(client, "malformed API key", path, api_key)
            raise unauthorized("invalid API key")
        try:
            resp = await self.call(
                self.stub.CreateSession,
                results_pb2.CreateSessionRequest(api_key=api_key, ttl_seconds=self.session_ttl),
            )
        except ApiError as err:
            if err.status < 500:
                self.login_throttle.failed(client, "unknown or revoked API key", path, api_key)
                raise unauthorized("invalid API key") from None
            raise
        return Caller(tenant_id=resp.tenant_id, key_id=resp.key_id), self.sessions.sign(resp.session_token)

    async def logout(self, cookie: str) -> bool:
        """End the session of a cookie at results (and in this gateway's cache); False when
        the cookie holds no valid session (nothing to end)."""
        try:
            token = self.sessions.session_token(cookie)
        except ApiError:
            return False
        self.auth_cache.drop(AuthCache.digest("session", token))
        resp = await self.call(self.stub.RevokeSession, results_pb2.RevokeSessionRequest(session_token=token))
        return resp.revoked

    async def _authenticate(
        self, request: results_pb2.AuthenticateRequest, message: str, wait: Patience | None = None
    ) -> Caller:
        try:
            resp = await self.call(self.stub.Authenticate, request, wait=wait)
        except ApiError as err:
            if err.status < 500:
                raise unauthorized(message) from None
            raise
        if not resp.tenant_id:
            raise unauthorized(message)
        return Caller(tenant_id=resp.tenant_id, key_id=resp.key_id)
