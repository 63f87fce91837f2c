"""The CLI's HTTP side: requests to the gateway, its error model, and SSE job streams."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import httpx

# Exit codes a script can trust (documented in `hindsight --help` and README).
EXIT_OK = 0
EXIT_JOB_FAILED = 1  # the job ended failed or cancelled
EXIT_USAGE = 2  # bad command line (argparse's own code)
EXIT_UNREACHABLE = 3  # the API did not answer, or answered 5xx (a server-side problem)
EXIT_REFUSED = 4  # the API refused the request (4xx: invalid input, not found, conflict)
EXIT_AUTH = 5  # credentials missing or wrong (401/403)
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # stdout closed early (piped into `head`): what a shell reports for SIGPIPE

# Reconnects of an SSE stream that dropped before the job ended (resumed with Last-Event-ID).
STREAM_RETRIES = 5


class CliError(Exception):
    """A failure to report to the user, with the exit code it maps to."""

    def __init__(self, message: str, code: int, details: list[str] | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or []
        self.body = body


def _error_of(resp: httpx.Response) -> CliError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or f"HTTP {resp.status_code}")
        problems = (err.get("details") or {}).get("errors") or []
        details = [f"{p.get('field', '')}: {p.get('message', '')}".strip(": ") for p in problems if isinstance(p, dict)]
    else:
        # Not the API's error model: a proxy, or --url pointing at some other server.
        html = "html" in resp.headers.get("content-type", "")
        text = "" if html else " ".join(resp.text[:200].split())
        url = resp.request.url.copy_with(query=None)
        message = f"{resp.request.method} {url} answered without an API error" + (f": {text}" if text else "")
        if resp.status_code == 404:
            message += "; is --url / HINDSIGHT_URL the Hindsight API?"
        details = []
    if resp.status_code in (401, 403):
        code = EXIT_AUTH
    elif resp.status_code >= 500:
        code = EXIT_UNREACHABLE
    else:
        code = EXIT_REFUSED
    return CliError(f"{message} (HTTP {resp.status_code})", code, details, body)


class Api:
    """The gateway at `base_url`, with an API key when one is given."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "hindsight-cli"}
        if api_key:
            headers["X-API-Key"] = api_key
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return self.request_with_status(method, path, **kw)[1]

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A successful response; a CliError when the API is unreachable, slow, or refuses."""
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.TimeoutException as exc:
            raise CliError(f"the API at {self.base_url} did not answer in time ({type(exc).__name__})", EXIT_UNREACHABLE) from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the API at {self.base_url}: {exc}", EXIT_UNREACHABLE) from None
        if resp.status_code >= 400:
            raise _error_of(resp)
        return resp

    def request_with_status(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        """(HTTP status, parsed body) of a successful request; a CliError otherwise."""
        resp = self._send(method, path, **kw)
        if not resp.content:
            return resp.status_code, None
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, resp.text

    def get_bytes(self, path: str, timeout: float | None = None, **params: Any) -> bytes:
        """The raw body of a GET (a file to save as it is); errors as for `request`."""
        kw: dict[str, Any] = {"params": {k: v for k, v in params.items() if v is not None}, "headers": {"Accept": "*/*"}}
        if timeout is not None:
            kw["timeout"] = timeout
        return self._send("GET", path, **kw).content

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=body, **kw) if body is not None else self.request("POST", path, **kw)

    def put(self, path: str, body: Any) -> tuple[int, Any]:
        """PUT a JSON body; (status, body), so a caller can tell 201 (created) from 200 (replaced)."""
        return self.request_with_status("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def upload(self, path: str, file: BinaryIO, filename: str, fields: dict[str, str], timeout: float) -> Any:
        return self.request("POST", path, files={"file": (filename, file, "text/csv")}, data=fields, timeout=timeout)

    def job_events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's SSE events (data objects) until the terminal one; reconnects with
        Last-Event-ID when the connection drops early."""
        last_id: str | None = None
        failures = 0
        timeout = httpx.Timeout(10.0, read=60.0)  # the gateway pings every 15 s
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                with self.http.stream("GET", f"/api/v1/jobs/{job_id}/stream", headers=headers, timeout=timeout) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise _error_of(resp)
                    for event_id, data in _sse(resp.iter_lines()):
                        failures = 0
                        if event_id is not None:
                            last_id = event_id
                        yield data
                        if data.get("done") or data.get("error"):
                            return
            except httpx.HTTPError as exc:
                failures += 1
                if failures > STREAM_RETRIES:
                    raise CliError(f"lost the progress stream of job {job_id}: {exc}", EXIT_UNREACHABLE) from None
                time.sleep(min(0.5 * 2**failures, 5.0))
                continue
            # The server closed the stream without a terminal event: ask the job itself.
            failures += 1
            if failures > STREAM_RETRIES:
                job = self.get(f"/api/v1/jobs/{job_id}")
                yield _terminal_from_job(job)
                return
            time.sleep(0.5)


def _terminal_from_job(job: dict[str, Any]) -> dict[str, Any]:
    if job.get("status") == "completed":
        return {"done": True, "status": "completed", "sweep_run_id": job.get("sweep_run_id")}
    return {"error": True, "message": job.get("error_message") or f"job {job.get('status')}"}


def _sse(lines: Iterator[str]) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(id, data) of each SSE event whose data is a JSON object; comments skipped."""
    event_id: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    value = json.loads("\n".join(data))
                except ValueError:
                    value = None
                if isinstance(value, dict):
                    yield event_id, value
            event_id, data = None, []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "data":
            data.append(value)
        elif key == "id":
            event_id = value


class ProgressReader:
    """A binary file whose reads report how far they got (for upload progress)."""

    def __init__(self, file: BinaryIO, total: int, report: Callable[[int, int], None]) -> None:
        self._file = file
        self._total = total
        self._report = report
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._done += len(chunk)
        self._report(self._done, self._total)
        return chunk

    def __getattr__(self, name: str) -> Any:  # seek, tell, fileno, name: the file's own
        return getattr(self._file, name)
