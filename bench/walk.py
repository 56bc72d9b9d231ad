"""The walk of one image from upload to result row, function by function (issue 11).

``python -m bench.walk`` runs the real path once to warm up (imports, the model's first load,
the first connections), then once more under ``sys.settrace`` and prints every MedFlow function
the second image passed through, in the order first entered, with the counts the issue asks
for: functions, files, and how many times the request moves between ``api`` and ``db``.

Everything is real except the process boundaries: the Flask app answers ``POST /v1/jobs``
(multipart, through its test client) on a migrated SQLite database and a private Redis server
started here; the chunk it sent is read back from Redis and run by ``medflow.infer_chunk`` in
this process (Celery's ``apply``), and the results message that task sent is read back and run
by ``medflow.collect``. One-time set-up (the app factory, migrations) is not on the walk.
"""

from __future__ import annotations

import argparse
import base64
import dis
import functools
import io
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import numpy as np
from PIL import Image

from config.settings import REPO_ROOT, Settings

PACKAGES = (
    "api",
    "intake",
    "workers",
    "db",
    "storage",
    "config",
    "messages",
    "privacy",
    "pipeline",
)
MODEL = "nodule-detector"
# Cross-cutting, not steps of the walk: log formatting and its PHI filter run on every log line.
NOT_HOPS = ("privacy/log_format.py", "privacy/phi.py")


# The walk's milestones: the spine is every MedFlow function on the stack when one is entered.
MILESTONES = {
    "storage/blobstore.py:FileBatch.put_spool": "blob stored",
    "db/jobs.py:open_job": "job row",
    "db/jobs.py:add_images": "image rows",
    "db/jobs.py:seal_job": "sealed",
    "workers/enqueue.py:enqueue_images": "task sent (after commit)",
    "storage/blobstore.py:FileBlobStore.get": "blob fetched",
    "pipeline/decode.py:decode_image": "decoded",
    "pipeline/preprocess.py:preprocess": "preprocessed",
    "pipeline/runner.py:OnnxRunner.run": "inferred",
    "workers/tasks/infer.py:send_results": "results message sent",
    "db/collect.py:_update_by_id": "result row written",
}
COMPREHENSIONS = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")
GENERATOR = 0x20  # inspect.CO_GENERATOR


@dataclass
class Walk:
    """The MedFlow functions entered, in first-entry order, and the spine through them."""

    hops: list[tuple[str, str]] = field(default_factory=list)  # (stage, "file:qualname")
    spine: list[tuple[str, str]] = field(default_factory=list)
    reached: list[str] = field(default_factory=list)  # milestones, in order
    db_entries: list[str] = field(default_factory=list)  # request: db entered from outside
    statements: Counter[str] = field(default_factory=Counter)  # SQL statements per stage
    stage: str = ""

    def count_statement(self, *_: Any) -> None:
        if self.stage:
            self.statements[self.stage] += 1

    def count_transaction(self, *_: Any) -> None:
        if self.stage:
            self.statements[f"{self.stage} transactions"] += 1

    def tracer(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        name = hop_name(frame)
        if name is None:
            return None
        if not any(name == h for _, h in self.hops):
            self.hops.append((self.stage, name))
        if frame.f_code.co_flags & GENERATOR and frame.f_lasti != _first_resume(frame.f_code):
            return None  # a generator (a context manager) resumed: not a new call
        # The request goes down into db when MedFlow code outside db calls it directly (not
        # SQLAlchemy calling one of db's hooks, such as a column type's conversion).
        caller = _caller(frame.f_back)
        if self.stage == "request" and name.startswith("db/") and caller and caller[:3] != "db/":
            self.db_entries.append(f"{name} (from {caller})")
        if name in MILESTONES:
            self.reached.append(MILESTONES[name])
            chain = [name]
            back = frame.f_back
            while back is not None:
                found = hop_name(back)
                if found is not None:
                    chain.append(found)
                back = back.f_back
            for hop in reversed(chain):
                if not any(hop == h for _, h in self.spine):
                    self.spine.append((self.stage, hop))
        return None

    def run(self, stage: str, work: Callable[[], Any]) -> Any:
        self.stage = stage
        sys.settrace(self.tracer)
        try:
            return work()
        finally:
            sys.settrace(None)
            self.stage = ""


def hop_name(frame: FrameType) -> str | None:
    """``"file:qualname"`` of a MedFlow function (no comprehension, no log formatting)."""
    path = frame.f_code.co_filename
    if not path.startswith(str(REPO_ROOT)):
        return None
    rel = os.path.relpath(path, REPO_ROOT)
    if rel.split(os.sep, 1)[0] not in PACKAGES or rel.startswith(NOT_HOPS):
        return None
    qualname = frame.f_code.co_qualname
    if qualname.endswith(COMPREHENSIONS) or qualname == "<module>":
        return None
    return f"{rel}:{qualname}"


@functools.cache
def _first_resume(code: CodeType) -> int:
    """Where a generator's frame stands when it is first entered (3.11: its first RESUME)."""
    return next(i.offset for i in dis.get_instructions(code) if i.opname == "RESUME")


def _caller(frame: FrameType | None) -> str | None:
    """The MedFlow function that called, through the standard library's wrappers (a context
    manager's ``__enter__``); None when a third-party package (SQLAlchemy) did."""
    while frame is not None:
        path = frame.f_code.co_filename
        if "site-packages" in path:
            return None
        found = hop_name(frame)
        if found is not None or path.startswith(str(REPO_ROOT)):
            return found
        frame = frame.f_back
    return None


def png(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((256, 256)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def pop_message(client: Any, queue: str, task: str) -> dict[str, Any]:
    """The oldest ``task`` message in ``queue`` (others, such as an anchor request, dropped)."""
    while (raw := client.rpop(queue)) is not None:
        message = json.loads(raw)
        if message["headers"]["task"] == task:
            args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            return {"id": message["headers"]["id"], "args": args, "kwargs": kwargs}
    raise SystemExit(f"no {task} in {queue}: the step before did not send it")


class Path1:
    """One image's path through the app and the two tasks, on services started here."""

    def __init__(self, settings: Settings) -> None:
        from api.app import create_app
        from api.bootstrap import in_session, prepare
        from db.keys import create_key
        from db.models import Role
        from workers.app import COLLECTOR_MODULES, INFERENCE_MODULES, make_celery
        from workers.queues import infer_queue
        from workers.resources import redis_client

        prepare(settings)
        _, self.token = in_session(settings, lambda s: create_key(s, "walk", Role.SUBMITTER))
        self.app = create_app(settings)
        self.client = self.app.test_client()
        self.worker = make_celery(settings, include=INFERENCE_MODULES + COLLECTOR_MODULES)
        self.worker.loader.import_default_modules()
        self.redis = redis_client(settings.redis_url)
        self.queue = infer_queue(MODEL)

    def upload(self, seed: int) -> Any:
        data = {"model": MODEL, "seal": "true", "files": (io.BytesIO(png(seed)), f"{seed}.png")}
        answer = self.client.post(
            "/v1/jobs",
            data=data,
            headers={"Authorization": f"Bearer {self.token}"},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 202, answer.get_data(as_text=True)
        return answer.get_json()["id"]

    def infer(self) -> None:
        chunk = pop_message(self.redis, self.queue, "medflow.infer_chunk")
        task = self.worker.tasks["medflow.infer_chunk"]
        task.apply(args=chunk["args"], task_id=chunk["id"], throw=True)

    def collect(self) -> None:
        from workers.queues import RESULTS_QUEUE

        message = pop_message(self.redis, RESULTS_QUEUE, "medflow.collect")
        task = self.worker.tasks["medflow.collect"]
        task.apply(args=message["args"], task_id=message["id"], throw=True)

    def status(self, job_id: str) -> str:
        answer = self.client.get(
            f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        return str(answer.get_json()["status"])


def walk(settings: Settings) -> tuple[Walk, str]:
    path = Path1(settings)
    warm = path.upload(1)
    path.infer()
    path.collect()
    assert path.status(warm) == "completed", path.status(warm)
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    traced = Walk()
    event.listen(Engine, "before_cursor_execute", traced.count_statement)
    event.listen(Engine, "begin", traced.count_transaction)
    try:
        job_id = traced.run("request", lambda: path.upload(2))
        traced.run("worker", path.infer)
        traced.run("collector", path.collect)
    finally:
        event.remove(Engine, "before_cursor_execute", traced.count_statement)
        event.remove(Engine, "begin", traced.count_transaction)
    return traced, path.status(job_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="a Redis database to use (default: start one here)")
    args = parser.parse_args(argv)
    report(*measure(args.redis_url))
    return 0


def measure(redis_url: str | None = None) -> tuple[Walk, str]:
    """The traced walk and the job's status, on a SQLite file and a Redis of its own."""
    with tempfile.TemporaryDirectory(prefix="medflow-walk-") as tmp:
        base = Path(tmp)
        stop: Callable[[], None] = lambda: None  # noqa: E731
        if redis_url is None:
            redis_url, stop = private_redis(base)
        try:
            settings = replace(
                Settings(env="test"),
                database_url=f"sqlite:///{base / 'walk.db'}",
                redis_url=redis_url,
                blob_url=f"file://{base / 'blobs'}",
                models=(MODEL,),
            )
            return walk(settings)
        finally:
            stop()


def private_redis(base: Path) -> tuple[str, Callable[[], None]]:
    from api.children import Child, free_port, stop_all, wait_until
    from api.stack import redis_answers, redis_server_argv

    port = free_port()
    server = Child("redis", redis_server_argv(port, base), os.environ, base / "redis.log").start()
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis_answers(url), [server], 30, "Redis")
    return url, lambda: stop_all([server], 5)


def report(traced: Walk, status: str) -> None:
    print("The spine: every MedFlow function on the stack at a milestone, first entry order\n")
    for number, (stage, hop) in enumerate(traced.spine, 1):
        mark = f"  <- {MILESTONES[hop]}" if hop in MILESTONES else ""
        print(f"{number:3d}  {stage:<9}  {hop}{mark}")
    print(f"\nmilestones reached: {', '.join(dict.fromkeys(traced.reached))}; job {status}")
    print(f"the request entered db from outside it {len(traced.db_entries)} times:")
    for entry in traced.db_entries:
        print(f"    {entry}")
    print("\nEvery MedFlow function entered, first entry order\n")
    for number, (stage, hop) in enumerate(traced.hops, 1):
        print(f"{number:3d}  {stage:<9}  {hop}")
    print()
    for label, hops in (("spine", traced.spine), ("all", traced.hops)):
        files = {hop.split(":", 1)[0] for _, hop in hops}
        outside = [h for _, h in hops if not h.startswith("pipeline/")]
        print(
            f"{label}: {len(hops)} functions in {len(files)} files "
            f"({len(outside)} outside pipeline/)"
        )
    print(f"request: db entered {len(traced.db_entries)} times")
    statements = ", ".join(f"{stage} {n}" for stage, n in traced.statements.items())
    print(f"SQL statements (and transactions): {statements}")


if __name__ == "__main__":
    raise SystemExit(main())
