"""Real receivers for notification tests: an HTTP webhook receiver and an SMTP
server (aiosmtpd), each on a loopback port of its own, recording what they get."""

from __future__ import annotations

import collections
import email
import email.policy
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.stacks import free_port


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers.get("x-hindsight-event-id", "")


class Receiver:
    """A threaded HTTP server; `plan` answers the next requests (then `default`).

    A plan item is a status code, or ("sleep", seconds, status) for a slow answer.
    `stop()` closes the listening socket (connections are refused), `start()` on
    the same port brings it back.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[Received] = []
        self.plan: collections.deque[Any] = collections.deque()
        self.default: Any = 200
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, *items: Any, default: Any = None) -> None:
        with self.lock:
            self.plan.extend(items)
            if default is not None:
                self.default = default

    def _next(self) -> Any:
        with self.lock:
            return self.plan.popleft() if self.plan else self.default

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver.lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec = Received(time.time(), self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                item = receiver._next()
                if isinstance(item, tuple) and item[0] == "sleep":
                    time.sleep(item[1])
                    item = item[2]
                headers = {}
                if isinstance(item, tuple) and item[0] == "retry-after":
                    headers["Retry-After"] = str(item[1])
                    item = item[2]
                rec.status = int(item)
                with receiver.lock:
                    receiver.requests.append(rec)
                try:
                    self.send_response(rec.status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout): nothing to answer

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: stop listening and drop open (keep-alive) connections."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def delivered(self) -> list[Received]:
        """Requests answered 2xx."""
        with self.lock:
            return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    def for_job(self, job_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.json.get("job_id") == job_id]

    def successes_by_event(self) -> dict[str, int]:
        out: dict[str, int] = collections.Counter()
        for r in self.delivered():
            out[r.event_id] += 1
        return dict(out)


class _SmtpHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp, session, envelope) -> str:
        with self.server.lock:
            self.server.tries += 1
            if self.server.fail_next > 0:
                self.server.fail_next -= 1
                return self.server.fail_reply
            self.server.messages.append(
                email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
            )
            self.server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), session.authenticated))
        return "250 OK"


@dataclass
class SmtpServer:
    """aiosmtpd on a loopback port; optionally STARTTLS (required) and AUTH."""

    tls_dir: Path | None = None
    username: str | None = None
    password: str | None = None
    port: int = field(default_factory=free_port)
    messages: list = field(default_factory=list)
    envelopes: list = field(default_factory=list)
    fail_next: int = 0
    fail_reply: str = "451 4.3.0 Try again later"
    tries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    @property
    def cert(self) -> Path | None:
        return self.tls_dir / "cert.pem" if self.tls_dir else None

    def url(self) -> str:
        auth = f"{self.username}:{self.password}@" if self.username else ""
        query = f"?starttls=required&cafile={self.cert}" if self.tls_dir else "?starttls=never"
        return f"smtp://{auth}127.0.0.1:{self.port}{query}&timeout=5"

    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {}
        if self.tls_dir is not None:
            make_cert(self.tls_dir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.tls_dir / "cert.pem", self.tls_dir / "key.pem")
            kwargs.update(tls_context=ctx, require_starttls=True)
        if self.username:
            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = auth_data.login.decode() == self.username and auth_data.password.decode() == self.password
                return AuthResult(success=ok)

            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
        self._controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def make_cert(directory: Path) -> None:
    """A self-signed certificate for 127.0.0.1 / localhost (openssl)."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "cert.pem").exists():
        return
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True, timeout=60, env=dict(os.environ, OPENSSL_CONF="/dev/null"),
    )
