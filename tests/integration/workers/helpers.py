"""Helpers for the worker tests: a real `celery worker` process, and raw reads of Redis.

Workers run as subprocesses exactly as deployed (``celery -A workers.main worker``), configured
through MEDFLOW_* variables; no collector runs, so the ``results`` queue can be read raw.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from api.stack_env import settings_to_env
from config.settings import REPO_ROOT, Settings
from workers.queues import RESULTS_QUEUE, infer_queue

MODEL = "tiny"
LOADED = re.compile(r"model (\S+) loaded in pid (\d+) \(parent (\d+)\)")
START_TIMEOUT_S = 90.0


class WorkerProcess:
    """One `celery worker` process group serving infer.<model>, its output in a log file.

    ``launcher`` replaces ``python -m celery`` (a script that wraps it), ``pool`` Celery's
    prefork pool, and ``env`` adds variables; ``preload=False`` starts it without loading the
    model (for a queue no model serves).
    """

    def __init__(
        self,
        settings: Settings,
        log: Path,
        model: str = MODEL,
        *,
        launcher: list[str] | None = None,
        pool: str | None = None,
        env: dict[str, str] | None = None,
        preload: bool = True,
    ) -> None:
        self.settings, self.log, self.model = settings, log, model
        self.name = f"infer-{model}-{secrets.token_hex(3)}@%h"
        self.proc: subprocess.Popen[bytes] | None = None
        self.launcher = launcher or [sys.executable, "-m", "celery"]
        self.pool, self.extra_env, self.preload = pool, env or {}, preload

    def start(self) -> WorkerProcess:
        env = {**os.environ, **settings_to_env(self.settings), **self.extra_env}
        if self.preload:
            env["MEDFLOW_WORKER_MODEL"] = self.model
        env["PYTHONPATH"] = str(REPO_ROOT)
        argv = [
            *self.launcher,
            "-A",
            "workers.main",
            "worker",
            "-Q",
            infer_queue(self.model),
            *(["--pool", self.pool] if self.pool else []),
            "-c",
            "1",
            "--prefetch-multiplier",
            "1",
            "-n",
            self.name,
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        loaded = (lambda text: LOADED.search(text) is not None) if self.preload else bool
        self.wait_for(lambda text: " ready." in text and loaded(text))
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def loaded(self) -> tuple[str, int, int]:
        """(model ref, pid, parent pid) of the last model load the log reports."""
        ref, pid, parent = LOADED.findall(self.text())[-1]
        return ref, int(pid), int(parent)

    def wait_for(self, check: Callable[[str], bool], timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not check(self.text()):
            assert self.proc is not None and self.proc.poll() is None, self.text()[-3000:]
            assert time.monotonic() < deadline, f"worker not ready:\n{self.text()[-3000:]}"
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the whole group: no warm shutdown, no ack, no restore of unacked messages."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


def decode_message(raw: bytes) -> dict[str, Any]:
    """A kombu Redis message -> {"headers", "args", "raw"} (the body is base64 JSON)."""
    envelope = json.loads(raw)
    body = (
        base64.b64decode(envelope["body"])
        if envelope["properties"].get("body_encoding") == "base64"
        else envelope["body"].encode()
    )
    args, kwargs, _ = json.loads(body)
    return {"headers": envelope["headers"], "args": args, "kwargs": kwargs, "raw": raw + body}


def collect_messages(
    broker: redis.Redis, job_id: str, count: int = 1, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """The medflow.collect messages for ``job_id`` waiting in the results queue (not consumed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        messages = [decode_message(raw) for raw in broker.lrange(RESULTS_QUEUE, 0, -1)]
        mine = [m for m in messages if m["args"] and m["args"][0]["job_id"] == job_id]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.2)
