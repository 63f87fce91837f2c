"""Email notifications: composing the message and sending it over SMTP (aiosmtplib).

HINDSIGHT_SMTP_URL is `smtp://[user:password@]host[:port][?starttls=auto|required|never&timeout=S&cafile=PATH]`
or `smtps://...` (TLS from the first byte, port 465). Plain `smtp://` upgrades
with STARTTLS whenever the server offers it (`auto`); `required` refuses a
server that does not. Credentials are sent with AUTH only over TLS: with
`auto`, a server that offers no STARTTLS gets no password (the attempt fails
and is retried); only `starttls=never` sends it in clear, and the notifier
warns about that at start.

The message has a plain-text and an HTML part: the job, its parameters, its
top results as a table, and links to them. SMTP 4xx answers and connection
problems are retried like webhooks; 5xx answers end the delivery as failed.
"""

from __future__ import annotations

import email.policy
import html
import json
import logging
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import aiosmtplib
from hindsight.jobs.v1 import jobs_pb2

from domain.overfitting import overfitting_reading
from services.notifier.attempt import DELIVERED, PERMANENT, RETRYABLE, AttemptResult
from services.notifier.payloads import callback_payload, event_type
from services.notifier.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER

log = logging.getLogger(__name__)

# The dashboard page that follows a job of each kind (`?job=`); other jobs: the jobs list.
DASHBOARD_PAGES = {jobs_pb2.JOB_KIND_SWEEP: "/ui/sweeps", jobs_pb2.JOB_KIND_DAY_BY_DAY: "/ui/days",
                   jobs_pb2.JOB_KIND_WALK_FORWARD: "/ui/walkforward"}

# Columns of the results table: (label, field, format).
RESULT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("fast", "fast_period", "{}"),
    ("slow", "slow_period", "{}"),
    ("score", "score", "{:.2f}"),
    ("sharpe", "sharpe_ratio", "{:.2f}"),
    ("return %", "total_return_pct", "{:.1f}"),
    ("max DD %", "max_drawdown_pct", "{:.1f}"),
    ("win %", "win_rate_pct", "{:.1f}"),
    ("trades", "total_trades", "{}"),
)


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send mail."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    # implicit TLS (smtps)
    use_tls: bool = False
    # None: STARTTLS when offered; True: required; False: never
    start_tls: bool | None = None
    timeout: float = 10.0
    cafile: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpConfig | None:
        """None for an empty URL; ValueError for a malformed one."""
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("HINDSIGHT_SMTP_URL must be smtp://[user:password@]host[:port] or smtps://...")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        mode = query.get("starttls", "auto").lower()
        if mode not in ("auto", "required", "never"):
            raise ValueError("HINDSIGHT_SMTP_URL starttls must be auto, required or never")
        use_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if use_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=None if use_tls or mode == "auto" else mode == "required",
            timeout=float(query.get("timeout", 10)),
            cafile=query.get("cafile"),
        )

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)

    @property
    def plain_auth(self) -> bool:
        """Credentials go out without TLS (`starttls=never` with a user): allowed, but said."""
        return bool(self.username) and not self.use_tls and self.start_tls is False


def _fmt(value: Any, pattern: str) -> str:
    if value is None or value == "":
        return "-"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def _overfitting(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(the DSR and PBO of a completed sweep's callback, their plain-language reading), or
    None for a job whose callback has none."""
    data = payload.get("result_data")
    if not isinstance(data, dict) or not ({"deflated_sharpe_ratio", "pbo"} & set(data)):
        return None
    dsr, pbo = data.get("deflated_sharpe_ratio"), data.get("pbo")
    dsr = dsr if isinstance(dsr, int | float) else None
    pbo = pbo if isinstance(pbo, int | float) else None
    numbers = f"deflated Sharpe ratio {_fmt(dsr, '{:.3f}')}, probability of backtest overfitting {_fmt(pbo, '{:.3f}')}"
    return numbers, overfitting_reading(dsr, pbo)


@dataclass(frozen=True)
class JobSummary:
    """What an email tells about a job (from results; any part may be missing)."""

    job_id: str
    status: str
    # A hindsight.jobs.v1.JobKind.
    kind: int = jobs_pb2.JOB_KIND_UNSPECIFIED
    parameters: dict[str, Any] | None = None
    results: list[dict[str, Any]] | None = None
    sweep_run_id: str = ""
    ticker: str = ""
    error_message: str = ""
    total_results: int = 0


def compose(
    event_id: str,
    etype: str,
    payload: dict[str, Any],
    job: JobSummary,
    *,
    to: str,
    sender: str,
    public_url: str,
) -> EmailMessage:
    """The notification email (text + HTML alternatives)."""
    base = public_url.rstrip("/")
    ok = payload.get("status") == "completed"
    ticker = job.ticker or str(payload.get("ticker", ""))
    subject = f"[Hindsight] {etype}: {ticker + ' ' if ticker else ''}{job.job_id}"
    page = DASHBOARD_PAGES.get(job.kind)
    # A person reading the email opens the dashboard; the API links are for scripts.
    links = [("Dashboard", f"{base}{page}?job={quote(job.job_id)}" if page else f"{base}/ui/jobs")]
    links.append(("Job", f"{base}/api/v1/jobs/{quote(job.job_id)}"))
    if job.sweep_run_id:
        q = f"?ticker={quote(ticker)}&limit=10" if ticker else "?limit=10"
        links.append(("Best results", f"{base}/api/v1/sweeps/{quote(job.sweep_run_id)}/best{q}"))
    links.append(("Deliveries", f"{base}/api/v1/jobs/{quote(job.job_id)}/deliveries"))
    params = job.parameters or {}
    rows = job.results or []
    overfitting = _overfitting(payload) if ok else None
    data = payload.get("result_data")
    # A walk-forward's summary: mean out-of-sample CAGR / mean in-sample CAGR.
    walkforward = ok and isinstance(data, dict) and "walk_forward_efficiency" in data
    wfe = _fmt(data.get("walk_forward_efficiency"), "{:.3f}") if walkforward else ""

    text = [f"Job {job.job_id} {'completed' if ok else 'failed'}.", ""]
    text.append(f"Event:  {etype} ({event_id})")
    if ticker:
        text.append(f"Ticker: {ticker}")
    if not ok:
        text.append(f"Error:  {payload.get('error_message') or job.error_message or 'unknown'}")
    if overfitting:
        text += ["", f"Overfitting: {overfitting[0]}", f"  {overfitting[1]}"]
    if walkforward:
        text += ["", f"Walk-forward efficiency: {wfe} ({data.get('folds')} folds)"]
    if params:
        text += ["", "Parameters:"] + [f"  {k}: {json.dumps(v)}" for k, v in params.items()]
    if rows:
        text += ["", f"Top {len(rows)} results (of {job.total_results or len(rows)}), by score:"]
        widths = [max(len(label), *(len(_fmt(r.get(f), p)) for r in rows)) for label, f, p in RESULT_COLUMNS]
        text.append("  " + "  ".join(label.rjust(w) for (label, _, _), w in zip(RESULT_COLUMNS, widths)))
        for r in rows:
            text.append("  " + "  ".join(_fmt(r.get(f), p).rjust(w) for (_, f, p), w in zip(RESULT_COLUMNS, widths)))
    text += [""] + [f"{name}: {url}" for name, url in links]

    e = html.escape
    parts = [f"<h2>Job {e(job.job_id)} {'completed' if ok else 'failed'}</h2>", "<p>"]
    parts.append(f"Event: <code>{e(etype)}</code> ({e(event_id)})<br>")
    if ticker:
        parts.append(f"Ticker: <b>{e(ticker)}</b><br>")
    if not ok:
        parts.append(f"Error: {e(str(payload.get('error_message') or job.error_message or 'unknown'))}<br>")
    parts.append("</p>")
    if overfitting:
        parts.append(f"<h3>Overfitting</h3><p><b>{e(overfitting[0])}</b><br>{e(overfitting[1])}</p>")
    if walkforward:
        parts.append(f"<p>Walk-forward efficiency: <b>{e(wfe)}</b> ({e(str(data.get('folds')))} folds)</p>")
    if params:
        parts.append("<h3>Parameters</h3><table>")
        parts += [f"<tr><th align='left'>{e(k)}</th><td>{e(json.dumps(v))}</td></tr>" for k, v in params.items()]
        parts.append("</table>")
    if rows:
        parts.append(f"<h3>Top {len(rows)} results (of {job.total_results or len(rows)}), by score</h3>")
        parts.append("<table border='1' cellpadding='4' cellspacing='0'><tr>")
        parts += [f"<th>{e(label)}</th>" for label, _, _ in RESULT_COLUMNS]
        parts.append("</tr>")
        for r in rows:
            cells = "".join(f"<td align='right'>{e(_fmt(r.get(f), p))}</td>" for _, f, p in RESULT_COLUMNS)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("<p>" + " | ".join(f"<a href='{e(url)}'>{e(name)}</a>" for name, url in links) + "</p>")

    # Long header lines are allowed up to RFC 5322's 998 characters: a folded Subject reads badly.
    msg = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(usegmt=True)
    # The same id on every attempt and redelivery: mail clients show one message.
    msg["Message-ID"] = f"<{event_id}@hindsight>"
    msg[EVENT_ID_HEADER] = event_id
    msg[EVENT_TYPE_HEADER] = etype
    msg.set_content("\n".join(text) + "\n")
    msg.add_alternative("<html><body>\n" + "\n".join(parts) + "\n</body></html>\n", subtype="html")
    return msg


class EmailSender:
    """Sends notification emails; one SMTP session per message."""

    def __init__(self, config: SmtpConfig | None, sender: str, public_url: str) -> None:
        self.config = config
        self.sender = sender
        self.public_url = public_url
        if config is not None and config.plain_auth:
            log.warning("HINDSIGHT_SMTP_URL has starttls=never: the SMTP password is sent without TLS to %s:%s",
                        config.host, config.port)

    @property
    def timeout_seconds(self) -> float:
        return self.config.timeout if self.config else 10.0

    def message(self, event, job: JobSummary, to: str) -> EmailMessage:
        return compose(
            event.event_id, event_type(event), callback_payload(event), job,
            to=to, sender=self.sender, public_url=self.public_url,
        )

    async def send(self, message: EmailMessage) -> AttemptResult:
        """One SMTP transaction; never raises (every failure is an AttemptResult)."""
        start = time.perf_counter()

        def done(kind: str, code: int | None = None, error: str = "") -> AttemptResult:
            return AttemptResult(kind, code, error, (time.perf_counter() - start) * 1000)

        c = self.config
        if c is None:
            return done(PERMANENT, error="email is not configured (HINDSIGHT_SMTP_URL is empty)")
        # Flattened here (CRLF, long header lines kept whole) rather than by aiosmtplib, which folds at 78.
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        try:
            # STARTTLS is decided here, not by aiosmtplib, so that AUTH never goes out in clear by accident.
            smtp = aiosmtplib.SMTP(
                hostname=c.host,
                port=c.port,
                use_tls=c.use_tls,
                start_tls=False,
                tls_context=c.tls_context() if (c.use_tls or c.start_tls is not False) else None,
                timeout=c.timeout,
            )
            async with smtp:
                encrypted = c.use_tls
                if not c.use_tls and c.start_tls is not False:
                    await smtp.ehlo()
                    if smtp.supports_extension("starttls"):
                        await smtp.starttls()
                        encrypted = True
                    elif c.start_tls is True:
                        return done(RETRYABLE, error="the SMTP server offers no STARTTLS (starttls=required)")
                if c.username:
                    if not encrypted and not c.plain_auth:
                        return done(RETRYABLE, error="the SMTP server offers no STARTTLS: the password is not sent "
                                                     "without TLS (starttls=never would allow it)")
                    await smtp.login(c.username, c.password or "")
                await smtp.sendmail(parseaddr(str(message["From"]))[1], [str(message["To"])], raw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused is not None else 550
            return done(RETRYABLE if 400 <= code < 500 else PERMANENT, code, f"recipient refused: {code} {getattr(refused, 'message', '')}")
        except aiosmtplib.SMTPResponseException as exc:
            kind = RETRYABLE if 400 <= exc.code < 500 else PERMANENT
            return done(kind, exc.code, f"SMTP {exc.code}: {exc.message}")
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            return done(RETRYABLE, error=f"SMTP timed out after {c.timeout:g}s")
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            return done(RETRYABLE, error=f"{type(exc).__name__}: {exc}")
        return done(DELIVERED, 250)
