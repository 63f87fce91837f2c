"""Issue 12, item 9: the SMTP password never goes out in clear unless told so.

Real SMTP servers (aiosmtpd, on loopback ports, started here) with AUTH allowed over
plain connections, one without STARTTLS and one with it; the notifier's real sender
(aiosmtplib) talks to them."""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from hindsight.bus.v1 import bus_pb2

from services.notifier.attempt import DELIVERED, RETRYABLE
from services.notifier.mail import EmailSender, JobSummary, SmtpConfig
from tests.notifier.receivers import free_port, make_cert

USER, PASSWORD = "mailer", "s3cret-smtp-pass"


@dataclass
class Server:
    """aiosmtpd that accepts AUTH without TLS and records every AUTH attempt and message."""

    tls_dir: Path | None = None
    port: int = field(default_factory=free_port)
    auths: list[tuple[str, bool]] = field(default_factory=list)  # (login, over TLS?)
    messages: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                with server.lock:
                    server.messages.append(envelope.original_content or envelope.content)
                return "250 OK"

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            with server.lock:
                server.auths.append((auth_data.login.decode(), session.ssl is not None))
            return AuthResult(success=auth_data.password.decode() == PASSWORD)

        kwargs = {}
        if self.tls_dir is not None:
            make_cert(self.tls_dir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.tls_dir / "cert.pem", self.tls_dir / "key.pem")
            kwargs["tls_context"] = ctx
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
                                     auth_required=False, auth_require_tls=False, **kwargs)
        self.controller.start()

    def url(self, mode: str) -> str:
        cafile = f"&cafile={self.tls_dir / 'cert.pem'}" if self.tls_dir else ""
        return f"smtp://{USER}:{PASSWORD}@127.0.0.1:{self.port}?starttls={mode}&timeout=5{cafile}"

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def plain_server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def tls_server(tmp_path):
    s = Server(tls_dir=tmp_path / "tls")
    yield s
    s.stop()


async def send(url: str):
    sender = EmailSender(SmtpConfig.parse(url), "Hindsight <hindsight@localhost>", "https://hindsight.example")
    event = bus_pb2.JobEndedMessage(event_id="evt_1", job_id="sweep_1", tenant_id="t", status="completed",
                                    event_type="sweep.completed", payload_json='{"status": "completed"}')
    msg = sender.message(event, JobSummary(job_id="sweep_1", status="completed"), "quant@example.com")
    return await sender.send(msg)


async def test_auto_does_not_send_the_password_to_a_server_without_starttls(plain_server):
    result = await send(plain_server.url("auto"))
    assert result.kind == RETRYABLE, result
    assert "STARTTLS" in result.error and "password" in result.error
    assert plain_server.auths == [] and plain_server.messages == []  # no AUTH, nothing sent


async def test_required_refuses_a_server_without_starttls(plain_server):
    result = await send(plain_server.url("required"))
    assert result.kind == RETRYABLE and "STARTTLS" in result.error
    assert plain_server.auths == [] and plain_server.messages == []


async def test_never_sends_it_in_clear_and_says_so(plain_server, caplog):
    with caplog.at_level(logging.WARNING, logger="services.notifier.mail"):
        result = await send(plain_server.url("never"))
    assert result.kind == DELIVERED, result
    assert plain_server.auths == [(USER, False)] and len(plain_server.messages) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("starttls=never" in w and "without TLS" in w for w in warnings), warnings
    assert not any(PASSWORD in w for w in warnings)


async def test_auto_authenticates_after_starttls(tls_server):
    result = await send(tls_server.url("auto"))
    assert result.kind == DELIVERED, result
    assert tls_server.auths == [(USER, True)] and len(tls_server.messages) == 1


async def test_auto_without_credentials_still_sends_to_a_plain_server(plain_server):
    url = plain_server.url("auto").replace(f"{USER}:{PASSWORD}@", "")
    result = await send(url)
    assert result.kind == DELIVERED, result
    assert plain_server.auths == [] and len(plain_server.messages) == 1
