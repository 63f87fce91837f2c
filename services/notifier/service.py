"""Notifier wiring: the consumers of job-ended events and delivery tasks, health, metrics.

All its state is at results (reached over gRPC on RESULTS_ADDR); messages
wait in RabbitMQ (or the in-process bus in standalone mode), so the process
can be killed at any moment and another one picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from libs import grpc_util, ssrf, telemetry
from libs.bus import JOB_EVENTS_QUEUE, NOTIFY_QUEUE, Bus
from libs.settings import Settings
from services.notifier.mail import EmailSender, SmtpConfig
from services.notifier.metrics import NotifierMetrics
from services.notifier.retry import RetryPolicy
from services.notifier.webhook import WebhookSender
from services.notifier.worker import NOTIFY_RECORDS_QUEUE, NotifierWorker

log = logging.getLogger(__name__)

STANDALONE_LOOPBACK_NOTE = (
    "webhooks to loopback (127.0.0.0/8, ::1) are allowed in standalone mode"
    " (bound to loopback, HINDSIGHT_REQUIRE_AUTH unset)"
)


@dataclass
class NotifierHandle:
    """A running notifier: its gRPC server (health, reflection), consumers and metrics."""

    grpc: grpc_util.GrpcServer
    worker: NotifierWorker
    metrics: NotifierMetrics
    _channel: object
    _webhooks: WebhookSender
    _metrics_server: telemetry.MetricsServer | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return self.grpc.port

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking messages, let attempts in flight finish (their outcome is recorded), then close."""
        if self._stopped:
            return
        self._stopped = True
        await self.grpc.set_serving(False)
        await self.worker.stop()
        await self._webhooks.close()
        await self._channel.close()
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.close)
        await self.grpc.stop(grace)


def public_url(settings: Settings) -> str:
    if settings.hindsight_public_url:
        return settings.hindsight_public_url.rstrip("/")
    host = settings.hindsight_host if settings.hindsight_host not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{settings.hindsight_port}"


async def start(
    settings: Settings, bus: Bus, *, port: int | None = None, resolver: ssrf.Resolver | None = None
) -> NotifierHandle:
    """Start the notifier (port None: settings.notifier_port; 0: a free one). `resolver` replaces DNS (tests)."""
    policy = ssrf.policy_for(settings.hindsight_webhook_allow, settings.dev_access())
    smtp = SmtpConfig.parse(settings.hindsight_smtp_url)
    retry = RetryPolicy.from_settings(settings)
    server = await grpc_util.start_server(
        [], host=settings.grpc_bind_host(),
        port=settings.notifier_port if port is None else port,
        token=settings.hindsight_internal_token,
        port_setting="NOTIFIER_PORT",
    )
    chan = grpc_util.channel(settings.results_addr, token=settings.hindsight_internal_token)
    webhooks = WebhookSender(policy, settings.hindsight_webhook_timeout_seconds, resolver=resolver)
    emails = EmailSender(smtp, settings.hindsight_smtp_from, public_url(settings))
    metrics = NotifierMetrics()
    worker = NotifierWorker(
        bus, chan, webhooks, emails, retry, metrics,
        rpc_timeout=settings.hindsight_rpc_timeout, concurrency=settings.hindsight_notify_concurrency,
    )
    try:
        # The queues exist before anything is consumed (results publishes into them too).
        for queue in (JOB_EVENTS_QUEUE, NOTIFY_QUEUE, NOTIFY_RECORDS_QUEUE):
            await bus.declare(queue)
        await worker.start()
    except BaseException:
        await worker.stop()
        await webhooks.close()
        await chan.close()
        await server.stop(0)
        raise
    metrics_server = None
    # HINDSIGHT_METRICS_PORT (the deployments' setting) is served by libs.runner for every gRPC service.
    if not settings.standalone and settings.notifier_metrics_port and not settings.hindsight_metrics_port:
        try:
            metrics_server = await asyncio.to_thread(
                telemetry.serve_metrics, settings.notifier_metrics_port, [metrics.registry],
                host=settings.hindsight_metrics_host, token=settings.hindsight_metrics_token,
            )
        except OSError as exc:  # its own default port: taken by another process on this machine
            log.error("notifier metrics not served: cannot bind port %d: %s", settings.notifier_metrics_port, exc)
    if settings.dev_access():
        log.warning(STANDALONE_LOOPBACK_NOTE)
    elif settings.standalone:
        log.info("webhooks to loopback are refused (%s)", settings.dev_access_off_reason())
    log.info(
        "notifier consuming",
        extra={
            "webhook_allow": ssrf.describe(policy.allow),
            "smtp": f"{smtp.host}:{smtp.port}" if smtp else "not configured",
            "retry_schedule_seconds": ",".join(f"{t:g}" for t in retry.nominal_schedule()[:8]) + ",...",
        },
    )
    await server.set_serving(bus.is_connected())
    return NotifierHandle(server, worker, metrics, chan, webhooks, metrics_server)
