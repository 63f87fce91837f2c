"""Email notifications on real parts: results → RabbitMQ → notifier → a real SMTP server
(aiosmtpd with STARTTLS required and AUTH), retried like webhooks, recorded with the deliveries."""

from __future__ import annotations

import pytest
from hindsight.notify.v1 import notify_pb2

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _parts(msg) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in msg.walk() if not part.is_multipart()}


async def test_completed_job_email_has_text_and_html_with_parameters_results_and_links(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    job_id = await s.submit(tenant, notify_email="quant@example.com")
    run_id = await s.complete(job_id)
    listing = await s.settled(tenant, job_id)

    (d,) = listing.deliveries
    assert (d.channel, d.target, d.state, d.attempts) == ("email", "quant@example.com", "delivered", 1)
    assert d.history[0].url == "mailto:quant@example.com" and d.history[0].status_code == 250
    msg = next(m for m in s.smtp.messages if job_id in m["Subject"])
    assert msg["To"] == "quant@example.com" and msg["Subject"].startswith("[Hindsight] sweep.completed: BTC-USD")
    assert msg["X-Hindsight-Event-Id"] == listing.event_id and msg["Message-ID"] == f"<{listing.event_id}@hindsight>"
    # Sent over STARTTLS, authenticated as the configured user.
    assert any(auth for _, rcpt, auth in s.smtp.envelopes if rcpt == ["quant@example.com"])
    parts = _parts(msg)
    assert set(parts) == {"text/plain", "text/html"}
    text, html = parts["text/plain"], parts["text/html"]
    for body in (text, html):
        assert job_id in body and "fast_range" in body and "[10, 20]" in body
        assert f"https://hindsight.example/api/v1/sweeps/{run_id}/best" in body
        assert f"https://hindsight.example/api/v1/jobs/{job_id}" in body
    # Top results by score, as a table: 2.50 first.
    assert "Top 3 results" in text and text.index("2.50") < text.index("1.50") < text.index("0.50")
    assert "<table" in html and "<th>score</th>" in html and html.index("2.50") < html.index("1.50")


async def test_failed_job_email_says_why(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    job_id = await s.submit(tenant, notify_email="quant@example.com")
    await s.fail(job_id)
    await s.settled(tenant, job_id)
    msg = next(m for m in s.smtp.messages if job_id in m["Subject"])
    assert "sweep.failed" in msg["Subject"]
    assert "Insufficient historical data for ticker BTC-USD" in _parts(msg)["text/plain"]


async def test_smtp_4xx_is_retried_and_5xx_fails(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    s.smtp.fail_next, s.smtp.fail_reply = 2, "451 4.3.0 Try again later"
    job_id = await s.submit(tenant, notify_email="quant@example.com")
    await s.fail(job_id)
    (d,) = (await s.settled(tenant, job_id, timeout=20)).deliveries
    assert d.state == "delivered" and [a.status_code for a in d.history] == [451, 451, 250]
    assert [a.outcome for a in d.history] == ["retry", "retry", "delivered"]

    s.smtp.fail_next, s.smtp.fail_reply = 1, "554 5.7.1 Rejected"
    job_id = await s.submit(tenant, notify_email="quant@example.com")
    await s.fail(job_id)
    (d,) = (await s.settled(tenant, job_id)).deliveries
    assert d.state == "failed" and d.attempts == 1 and d.history[0].status_code == 554
    assert "Rejected" in d.history[0].error


async def test_webhook_and_email_of_one_job_and_tenant_default_email(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    await s.notifications.UpdateNotificationSettings(
        notify_pb2.UpdateNotificationSettingsRequest(tenant_id=tenant, notify_email="desk@example.com")
    )
    job_id = await s.submit(tenant, webhook_url=s.receiver.url)
    await s.fail(job_id)
    listing = await s.settled(tenant, job_id, n=2)
    assert sorted((d.channel, d.target, d.state) for d in listing.deliveries) == [
        ("email", "desk@example.com", "delivered"),
        ("webhook", s.receiver.url, "delivered"),
    ]
    assert {d.event_id for d in listing.deliveries} == {listing.event_id}
    # Redeliver only the email.
    resp = await s.notifications.Redeliver(
        notify_pb2.RedeliverRequest(tenant_id=tenant, job_id=job_id, channel="email")
    )
    assert [d.channel for d in resp.deliveries] == ["email"]
    await s.settled(tenant, job_id, n=3)
    assert sum(job_id in m["Subject"] for m in s.smtp.messages) == 2
    assert len(s.receiver.for_job(job_id)) == 1
