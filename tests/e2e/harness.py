"""The end-to-end harness: the real stack (api.stack.Stack) against a test database, and
bounded waits that fail with something to read.

``E2EStack`` starts exactly what `medflow up` starts (gunicorn, one Celery worker pool, the
collector, the beat, Flower) as child processes, on free ports, a private Redis database, a
tmp blob directory and a tmp workdir. Every wait is bounded; a timeout fails with the job's view,
the state of the Redis queues and the tail of every process log.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.bootstrap import in_session
from api.children import free_port
from api.client import MedflowClient
from api.stack import Stack, StackError
from config.settings import Settings
from tests.e2e.capture import queue_messages, unacked_messages
from tests.webhook_receiver import WebhookReceiver
from workers.queues import RESULTS_QUEUE, infer_queue

FINAL = ("completed", "completed_with_errors", "failed", "cancelled")
JOB_TIMEOUT_S = 120.0
POLL_S = 0.1
UNACKED = ("unacked", "unacked_index", "unacked_mutex")


class E2EStack:
    """One running stack serving one model, and the views a test needs behind it."""

    def __init__(self, settings: Settings, model: str, workdir: Path) -> None:
        self.model = model
        self.queue = infer_queue(model)
        self.workdir = workdir
        self.stack = Stack(
            settings, [model], api_port=free_port(), flower_port=free_port(), workdir=workdir
        )
        self.settings = self.stack.settings
        self.client: MedflowClient
        self.admin: MedflowClient
        self.redis: redis.Redis
        self._celery: Any = None
        self._engine: Any = None
        self.webhooks: WebhookReceiver | None = None  # the receiver its webhooks go to, if any

    # Life cycle -------------------------------------------------------------------------------

    def start(self) -> E2EStack:
        started = time.monotonic()
        try:
            self.stack.start()
        except StackError as exc:
            tail = self.logs_tail()
            self.stack.stop()
            raise RuntimeError(f"the stack did not start: {exc}\n{tail}") from None
        self.settings = self.stack.settings  # with the Redis URL it settled on
        self.start_s = time.monotonic() - started
        self.redis = redis.Redis.from_url(self.settings.redis_url, socket_timeout=10)
        from db.keys import create_key
        from db.models import Role

        token = in_session(self.settings, lambda s: create_key(s, "e2e submitter", Role.SUBMITTER))
        self.client = MedflowClient(self.api_url, token[1], timeout_s=60)
        self.admin = MedflowClient(self.api_url, self.stack.api_key, timeout_s=60)
        return self

    def stop(self) -> None:
        self.stack.stop()
        if self._celery is not None:
            self._celery.close()
        if self._engine is not None:
            self._engine.dispose()
        if getattr(self, "redis", None) is not None:
            self.redis.close()

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def celery(self) -> Any:
        """A sending/control Celery app on the stack's broker (what the API holds)."""
        if self._celery is None:
            from workers.app import make_celery

            self._celery = make_celery(self.settings)
        return self._celery

    def sessions(self) -> Session:
        if self._engine is None:
            from db.session import make_engine

            self._engine = make_engine(self.settings)
        return Session(self._engine)

    # Diagnostics ------------------------------------------------------------------------------

    def logs(self) -> dict[str, str]:
        return {
            path.name: path.read_text(errors="replace")
            for path in sorted((self.workdir / "logs").glob("*.log"))
        }

    def logs_tail(self, lines: int = 30) -> str:
        parts = []
        for name, text in self.logs().items():
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"----- {name} (last {lines} lines) -----\n{tail}")
        return "\n".join(parts)

    def queues_state(self) -> str:
        try:
            return (
                f"LLEN {self.queue}={self.redis.llen(self.queue)} "
                f"{RESULTS_QUEUE}={self.redis.llen(RESULTS_QUEUE)} "
                f"unacked={self.redis.hlen('unacked')}"
            )
        except redis.RedisError as exc:
            return f"redis unreadable: {exc!r}"

    def diagnose(self, job_id: str | None = None) -> str:
        parts = []
        dead = [f"{c.name} (exit {c.proc.poll() if c.proc else '?'})" for c in self.stack.dead()]
        if dead:
            parts.append(f"DEAD CHILDREN: {', '.join(dead)}")
        if job_id is not None:
            try:
                parts.append(f"job view: {json.dumps(self.client.get_job(job_id), indent=1)}")
            except Exception as exc:
                parts.append(f"job view unavailable: {exc!r}")
        parts.append(self.queues_state())
        parts.append(self.logs_tail())
        return "\n".join(parts)

    def check_alive(self) -> None:
        dead = self.stack.dead()
        if dead:
            raise AssertionError(f"a stack process exited:\n{self.diagnose()}")

    # Waiting ----------------------------------------------------------------------------------

    def wait_until(
        self,
        check: Callable[[], Any],
        timeout_s: float,
        what: str,
        job_id: str | None = None,
        poll_s: float = POLL_S,
        *,
        supervise: bool = False,
    ) -> Any:
        """Poll ``check`` until it returns something truthy; fail with a diagnosis otherwise.

        With ``supervise``, a crashed worker is started again (as ``medflow up`` and Kubernetes
        do) instead of failing the wait; the fault suite uses it, every other test does not.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            value = check()
            if value:
                return value
            if supervise:
                self.stack.restart_crashed_workers()
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s:.0f} s waiting for {what}\n{self.diagnose(job_id)}"
                )
            time.sleep(poll_s)

    def wait_for_job(
        self,
        job_id: str,
        statuses: Sequence[str] = FINAL,
        timeout_s: float = JOB_TIMEOUT_S,
        poll_s: float = POLL_S,
    ) -> dict[str, Any]:
        """The job's view once its status is one of ``statuses``."""

        def reached() -> dict[str, Any] | None:
            view = self.client.get_job(job_id)
            return view if view["status"] in statuses else None

        what = f"job {job_id} to reach {'/'.join(statuses)}"
        view: dict[str, Any] = self.wait_until(reached, timeout_s, what, job_id, poll_s)
        return view

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Until no chunk and no collect message is queued or in flight (the beat's reconcile
        runs may come and go)."""

        def idle() -> bool:
            return (
                self.redis.llen(self.queue) == 0
                and not [m for m in queue_messages(self.redis, RESULTS_QUEUE) if _is_work(m)]
                and not [m for m in unacked_messages(self.redis) if _is_work(m)]
            )

        self.wait_until(idle, timeout_s, "the queues to drain")

    # Submitting -------------------------------------------------------------------------------

    def submit_files(
        self,
        paths: Sequence[Path],
        *,
        idempotency_key: str | None = None,
        token: str | None = None,
        names: Sequence[str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One ``POST /v1/jobs`` (multipart ``model`` + ``files``, sealed): (status, body)."""
        body, content_type = multipart(
            {"model": self.model}, paths, names or [str(path) for path in paths]
        )
        headers = {"Content-Type": content_type}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self.http("POST", "/v1/jobs", body, headers, token=token)

    def submit_uris(self, uris: Sequence[str]) -> tuple[int, dict[str, Any]]:
        payload = {"model": self.model, "images": [{"uri": uri} for uri in uris]}
        headers = {"Content-Type": "application/json"}
        return self.http("POST", "/v1/jobs", json.dumps(payload).encode(), headers)

    def upload_job(self, paths: Sequence[Path]) -> str:
        """What `medflow submit` does: open a job, upload in batches, seal; returns the id."""
        job = self.client.open_job(self.model, idempotency_key=secrets.token_hex(8))
        self.client.add_files(job["id"], list(paths), batch_bytes=8 * 1024 * 1024)
        self.client.seal(job["id"])
        return str(job["id"])

    def http(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """A raw API request: (status, JSON body), error statuses included."""
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.client.api_key}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def get_text(self, url: str, auth: tuple[str, str] | None = None) -> str:
        request = urllib.request.Request(url)
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {pair}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(response.read().decode("utf-8", errors="replace"))

    def results(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.client.iter_results(job_id, page_size=500))

    # The workers' consumption, for tests that need a queue to stand still ----------------------

    @contextmanager
    def paused(self, *queues: str) -> Iterator[None]:
        """Workers stop taking chunks from ``queues`` (default: the model's batch queue), as an
        operator does in Flower with "cancel consumer"; chunks already taken finish. Resumed on
        exit, in the order given."""
        node = self.worker_node()
        control = self.celery.control
        for queue in queues or (self.queue,):
            replies = control.cancel_consumer(queue, destination=[node], reply=True, timeout=10)
            assert replies, f"no reply from {node} to cancel_consumer\n{self.diagnose()}"
        try:
            yield
        finally:
            for queue in queues or (self.queue,):
                replies = control.add_consumer(queue, destination=[node], reply=True, timeout=10)
                assert replies, f"no reply from {node} to add_consumer\n{self.diagnose()}"

    def worker_node(self) -> str:
        return f"infer-{self.model}@{socket.gethostname()}"

    def job_messages(self, job_id: str) -> list[dict[str, Any]]:
        """The infer_chunk messages of ``job_id`` waiting in the model's queue."""
        return [m for m in queue_messages(self.redis, self.queue) if m["args"][:1] == [job_id]]

    def wait_queued(self, job_id: str, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The job's messages in the queue once there are at least ``count`` (paused workers).

        A worker's last BRPOP, sent before the pause, may still take one message and put it
        back a moment later ("Requeuing undeliverable message ... No consumers"): until then
        the queue is one short.
        """
        found: list[dict[str, Any]] = self.wait_until(
            lambda: (m := self.job_messages(job_id)) and len(m) >= count and m,
            timeout_s,
            f"{count} queued chunks of job {job_id}",
            job_id,
            poll_s=0.02,
        )
        return found

    # Behind the API: the database --------------------------------------------------------------

    def image_rows(self, job_id: str) -> list[Any]:
        from db.models import Image

        with self.sessions() as session:
            query = select(Image).where(Image.job_id == job_id).order_by(Image.position)
            return list(session.scalars(query))

    def audit_rows(self) -> list[Any]:
        from db.models import AuditEvent

        with self.sessions() as session:
            return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


# Multipart ------------------------------------------------------------------------------------


def multipart(
    fields: dict[str, str], paths: Sequence[Path], names: Sequence[str]
) -> tuple[bytes, str]:
    """A small in-memory ``multipart/form-data`` body: text fields, then one ``files`` part
    per path (the test images are small)."""
    boundary = f"e2e-{secrets.token_hex(12)}"
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for path, filename in zip(paths, names, strict=True):
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        out += Path(path).read_bytes() + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _is_work(message: dict[str, Any]) -> bool:
    return message["task"] in ("medflow.infer_chunk", "medflow.collect")
