"""MedflowClient: the HTTP client behind `medflow submit|status|results|models` (stdlib only).

Uploads stream from disk: a multipart body is produced file by file, in bounded batches (one
request each), so memory stays flat whatever the job size. A 502/503/504 or a dropped connection
is retried with exponential backoff (honouring ``Retry-After``); an upload request that fails so
is not re-sent blindly (the server may have stored it): the job's images are listed and only the
files it lacks go again. The same listing resumes an interrupted upload (``--resume JOB``).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
# The server queues each request's images as soon as it commits, so small first requests put
# the workers to work within a fraction of a second, not after a whole 64 MiB upload; requests
# then grow (x4 each) to amortise their fixed costs.
FIRST_BATCH_BYTES = 4 * 1024 * 1024
RAMP = 4
# Files per request, well under the server's default parts cap (MEDFLOW_MAX_FORM_PARTS,
# 1,000): 64 MiB of small images would otherwise be thousands of parts, refused with a 413.
BATCH_FILES = 500
READ_BLOCK = 1024 * 1024
TIMEOUT_S = 300.0
# Transient answers: a restarting API, a full proxy, an overloaded upload pool.
RETRY_STATUSES = frozenset({502, 503, 504})
# A 503 that waiting seconds will not cure: an operator must start a worker for the model.
FINAL_CODES = frozenset({"MODEL_NOT_SERVED"})
# 429s that clear by themselves: this key's other uploads end, the rate limit's window moves.
RETRY_CODES = frozenset({"UPLOADS_PER_KEY", "RATE_LIMITED"})
RETRIES = 8
BACKOFF_S, BACKOFF_MAX_S = 1.0, 30.0
RETRY_AFTER_MAX_S = 300.0


class MedflowError(Exception):
    """An API error: the HTTP status and the body's ``{"error": {code, message, details}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details
        self.retry_after_s = retry_after_s


class MedflowClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout_s: float = TIMEOUT_S,
        retries: int = RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries, self.sleep = retries, sleep

    # Jobs -------------------------------------------------------------------------------------

    def open_job(self, model: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """An empty, open job; with the same idempotency key a retry returns the same job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", "/v1/jobs", {"model": model, "seal": False}, headers)

    def add_files(
        self,
        job_id: str,
        paths: Sequence[Path],
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> int:
        """Upload ``paths`` in requests of at most ``batch_bytes`` (a bigger file goes alone).

        ``on_batch(files, bytes)`` is called after each request; returns the files sent.
        """
        sent = 0
        for batch in batches(paths, batch_bytes):
            length = self._send_batch(job_id, batch)
            sent += len(batch)
            if on_batch is not None:
                on_batch(len(batch), length)
        return sent

    def _send_batch(self, job_id: str, batch: list[Path]) -> int:
        """One upload request, resent after a transient failure with only the files the job
        does not have yet (the failed request may have been stored whole)."""
        attempt = 0
        while True:
            body = MultipartBody(batch)
            path = f"/v1/jobs/{_q(job_id)}/images"
            try:
                self._request("POST", path, body, body.headers(), retry=False).close()
                return body.length
            except (MedflowError, OSError) as exc:
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    raise
            self.sleep(wait)
            attempt += 1
            have = self.uploaded_refs(job_id)
            batch = [p for p in batch if str(p) not in have]
            if not batch:
                return 0

    def uploaded_refs(self, job_id: str) -> set[str]:
        """The names (refs) of the images the job holds: what a resumed upload skips."""
        return {str(item.get("ref")) for item in self.iter_results(job_id)}

    def seal(self, job_id: str) -> dict[str, Any]:
        try:
            return self._json("POST", f"/v1/jobs/{_q(job_id)}/seal")
        except MedflowError as exc:
            if exc.code != "JOB_NOT_OPEN":
                raise
            return self.get_job(job_id)  # a retried seal whose first try had gone through

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{_q(job_id)}")

    def list_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest jobs this key may see, newest first."""
        return list(self._json("GET", f"/v1/jobs?limit={limit}").get("items", []))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/jobs/{_q(job_id)}/cancel")

    def iter_results(self, job_id: str, page_size: int = 500) -> Iterator[dict[str, Any]]:
        path: str | None = f"/v1/jobs/{_q(job_id)}/results?limit={page_size}&after=-1"
        while path:
            page = self._json("GET", path)
            yield from page.get("items", [])
            path = page.get("next")

    def results_csv(self, job_id: str, out: IO[bytes]) -> None:
        """Stream the results table into ``out`` (a binary file)."""
        with self._request("GET", f"/v1/jobs/{_q(job_id)}/results?format=csv") as response:
            shutil.copyfileobj(response, out, READ_BLOCK)

    def infer(
        self,
        path: Path,
        model: str,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST /v1/infer of one file: (200, the result) or (202, the job to poll)."""
        fields = {"model": model}
        if timeout_s is not None:
            fields["timeout_s"] = f"{timeout_s:g}"
        body = MultipartBody([path], part_name="file", fields=fields)
        headers = body.headers()
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        with self._request("POST", "/v1/infer", body, headers) as response:
            return int(response.status), json.loads(response.read() or b"{}")

    def models(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/models").get("items", []))

    # HTTP -------------------------------------------------------------------------------------

    def _json(
        self, method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        extra = {"Content-Type": "application/json"} if data is not None else {}
        with self._request(method, path, data, {**extra, **(headers or {})}) as response:
            return json.loads(response.read() or b"{}")

    def _request(
        self,
        method: str,
        path: str,
        data: Any = None,
        headers: dict[str, str] | None = None,
        *,
        retry: bool = True,
    ) -> Any:
        """The response; a transient failure is retried unless ``retry`` is False (a request
        whose repetition would not be idempotent: the caller decides)."""
        attempt = 0
        while True:
            try:
                return self._open(method, path, data, headers)
            except (MedflowError, OSError) as exc:
                wait = self._retry_wait(exc, attempt) if retry else None
                if wait is None:
                    raise
            self.sleep(wait)
            attempt += 1

    def _open(
        self, method: str, path: str, data: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.api_key}")
        request.add_header("Accept", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None

    def _retry_wait(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``exc``, or None: not transient, or no tries
        left. The server's Retry-After wins; otherwise exponential backoff with jitter."""
        if attempt >= self.retries or not transient(exc):
            return None
        if isinstance(exc, MedflowError) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, RETRY_AFTER_MAX_S)
        return min(BACKOFF_MAX_S, BACKOFF_S * 2**attempt) * random.uniform(0.5, 1.0)


def transient(exc: Exception) -> bool:
    """A failure worth retrying: 502/503/504 (not MODEL_NOT_SERVED), a 429 that clears by
    itself (UPLOADS_PER_KEY, RATE_LIMITED), or a connection refused, reset or dropped."""
    if isinstance(exc, MedflowError):
        if exc.code in RETRY_CODES:
            return True
        return exc.status in RETRY_STATUSES and exc.code not in FINAL_CODES
    if isinstance(exc, urllib.error.URLError):
        return isinstance(exc.reason, ConnectionError)
    return isinstance(exc, ConnectionError | http.client.RemoteDisconnected)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delta form; an HTTP date is rare from our API)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def batches(
    paths: Iterable[Path],
    batch_bytes: int,
    first_bytes: int = FIRST_BATCH_BYTES,
    max_files: int = BATCH_FILES,
) -> Iterator[list[Path]]:
    """Groups in order, the first of at most ``first_bytes``, each next one up to 4 times
    bigger, none over ``batch_bytes`` (a bigger file goes alone) nor ``max_files`` files."""
    batch: list[Path] = []
    size, limit = 0, min(first_bytes, batch_bytes)
    for path in paths:
        length = path.stat().st_size
        if batch and (size + length > limit or len(batch) >= max_files):
            yield batch
            batch, size, limit = [], 0, min(limit * RAMP, batch_bytes)
        batch.append(path)
        size += length
    if batch:
        yield batch


class MultipartBody:
    """``multipart/form-data`` with one ``files`` part per path, read from disk as it is sent.

    urllib sends an iterable body chunk by chunk when Content-Length is given, so the length
    is computed up front from the headers and the file sizes. ``fields`` (text) go first.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        part_name: str = "files",
        fields: dict[str, str] | None = None,
    ) -> None:
        self.boundary = f"medflow-{secrets.token_hex(16)}"
        self.part_name = part_name
        self.head = b"".join(self._field(name, value) for name, value in (fields or {}).items())
        self.parts = [(path, self._part_header(path)) for path in paths]
        self.tail = f"--{self.boundary}--\r\n".encode()
        self.length = (
            len(self.head)
            + len(self.tail)
            + sum(len(header) + path.stat().st_size + 2 for path, header in self.parts)
        )

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.length),
        }

    def __iter__(self) -> Iterator[bytes]:
        if self.head:
            yield self.head
        for path, header in self.parts:
            yield header
            with open(path, "rb") as handle:
                while block := handle.read(READ_BLOCK):
                    yield block
            yield b"\r\n"
        yield self.tail

    def _part_header(self, path: Path) -> bytes:
        name = (
            str(path).replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
        )
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{self.part_name}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()

    def _field(self, name: str, value: str) -> bytes:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        return f"--{self.boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode()


def _api_error(exc: urllib.error.HTTPError) -> MedflowError:
    try:
        error = json.loads(exc.read() or b"{}").get("error", {})
    except (ValueError, AttributeError):
        error = {}
    code = str(error.get("code") or f"HTTP_{exc.code}")
    message = str(error.get("message") or exc.reason)
    wait = retry_after(exc.headers.get("Retry-After") if exc.headers else None)
    return MedflowError(exc.code, code, message, error.get("details"), wait)


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def default_url() -> str:
    return os.environ.get("MEDFLOW_URL", "http://127.0.0.1:8000")


def default_key() -> str:
    return os.environ.get("MEDFLOW_API_KEY", "")
